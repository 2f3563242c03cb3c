/**
 * The interpreter's stamp: what the files a venv's Python starts from looked like when that Python last
 * proved it runs (the install's own package listing and verify steps, just before `ready` was written).
 * A no-op install compares the stamp instead of starting Python again (a spawn costs more than the rest
 * of the no-op together). The files: the venv's `bin/python` link and `pyvenv.cfg`, the interpreter it
 * resolves to, that interpreter's standard library, its `encodings` package and `lib-dynload` (without
 * which Python does not start), and a shared libpython beside it. Each is kept as
 * device, inode, size, mode, mtime and ctime, so replacing, rebuilding, upgrading, chmod-ing or removing any
 * of them, or retargeting the link, changes the stamp. A stamp that differs proves nothing either way: the
 * caller starts the interpreter as before.
 */
import type { Env } from "../core/env.ts";
import { venvPython } from "./venv.ts";
import { findOnPath } from "../core/run.ts";

/** path -> its identity ("absent" when it did not exist), in a fixed order. */
export type InterpreterStamp = Record<string, string>;

function identity(env: Env, path: string, link = false): string {
  try {
    const st = link ? env.fs.lstatSync(path) : env.fs.statSync(path);
    const kind = st.isSymlink ? "link" : st.isDirectory ? "dir" : st.isFile ? "file" : "other";
    return [
      kind,
      st.dev,
      st.ino,
      st.size,
      st.mode,
      st.mtime?.getTime() ?? "",
      st.ctime?.getTime() ?? "",
    ].join(":");
  } catch {
    return "absent";
  }
}

/** The files the venv's Python starts from (see above); `executable` is the interpreter as recorded. */
function stampedPaths(venvDir: string, executable: string, version: string): string[] {
  const prefix = executable.replace(/\/bin\/[^/]+$/, "");
  const [major, minor] = version.split(".");
  const paths = [`${venvDir}/pyvenv.cfg`, executable];
  // A free-threaded build keeps its library under pythonX.Yt: stamping both names, one is absent.
  for (const lib of [`python${major}.${minor}`, `python${major}.${minor}t`]) {
    const stdlib = `${prefix}/lib/${lib}`;
    paths.push(stdlib, `${stdlib}/encodings`, `${stdlib}/lib-dynload`);
  }
  paths.push(`${prefix}/lib/libpython${major}.${minor}.so.1.0`);
  return paths;
}

/**
 * The stamp as the files are now; null when the venv's Python does not resolve to `executable` (then there
 * is nothing to compare: the interpreter the state names is not the one the venv starts).
 */
export function stampInterpreter(
  env: Env,
  venvDir: string,
  executable: string,
  version: string,
): InterpreterStamp | null {
  let resolved: string;
  try {
    resolved = env.fs.realPathSync(venvPython(venvDir));
  } catch {
    return null;
  }
  if (resolved !== executable) return null;
  const stamp: InterpreterStamp = { [venvPython(venvDir)]: identity(env, venvPython(venvDir), true) };
  for (const p of stampedPaths(venvDir, executable, version)) stamp[p] = identity(env, p);
  return stamp;
}

/** True when the files are as stamped: the interpreter that last ran here is, file for file, still the one. */
export function stampHolds(
  env: Env,
  venvDir: string,
  executable: string,
  version: string,
  recorded: InterpreterStamp | undefined,
): boolean {
  if (!recorded) return false;
  const now = stampInterpreter(env, venvDir, executable, version);
  if (!now) return false;
  const keys = Object.keys(recorded);
  return keys.length === Object.keys(now).length && keys.every((k) => recorded[k] === now[k]);
}

/**
 * The NVIDIA driver as a no-op needs it: which CUDA variant fits. nvidia-smi answers that (and costs from
 * 50 ms to seconds on a GPU node); the loaded kernel module's version text and the nvidia-smi on PATH
 * (installed with the user-space libraries, so a driver upgrade replaces it) are read without a process.
 * While both are as they were when nvidia-smi last answered for this venv, that answer stands.
 */
export interface DriverStamp {
  /** /proc/driver/nvidia/version as read, build line included; null without a loaded driver. */
  module: string | null;
  /** nvidia-smi's identity (as the interpreter's files are kept), "absent" when not on PATH. */
  smi: string;
}

/** The driver's answer for a venv, kept with the stamp taken just before nvidia-smi gave it. */
export interface DriverRecord extends DriverStamp {
  driver_version: string | null;
  cuda_version: string | null;
}

export function stampDriver(env: Env): DriverStamp {
  let module: string | null = null;
  try {
    module = env.fs.readTextFileSync(`${env.procRoot}/driver/nvidia/version`);
  } catch { /* no driver loaded */ }
  const smi = findOnPath("nvidia-smi", env.vars.PATH);
  return { module, smi: smi ? identity(env, smi) : "absent" };
}

/** The recorded answer when the driver is, by its stamp, the one that gave it; null otherwise. */
export function driverAsRecorded(env: Env, recorded: DriverRecord | undefined): DriverRecord | null {
  if (!recorded || recorded.module === null) return null;
  const now = stampDriver(env);
  return now.module === recorded.module && now.smi === recorded.smi ? recorded : null;
}
