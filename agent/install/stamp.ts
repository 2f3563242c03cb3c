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
