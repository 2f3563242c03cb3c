/**
 * Venvs: create one from a chosen interpreter (`uv venv` or `python -m venv`), inspect one, ask its Python
 * what it is and what it has installed. A venv cannot be moved (its scripts embed absolute paths), so it is
 * built where it lives and judged by running its interpreter, never by the directory existing.
 */
import type { Env } from "../core/env.ts";
import { describeRun, type RunResult } from "../core/run.ts";
import { failed, fromSystemError } from "../core/errors.ts";
import { indentBlock } from "../core/output.ts";

export interface PythonInfo {
  /** The interpreter as the caller named it (a path or a name on PATH). */
  command: string;
  /** sys.executable, resolved. */
  executable: string;
  /** "3.11.7" */
  version: string;
  /** sys.prefix != sys.base_prefix */
  inVenv: boolean;
}

/**
 * What an interpreter is, as three NUL-separated fields (a path holds no NUL). Only `os` and `sys`, which the
 * interpreter has loaded before it runs any code: `import json` was a fifth of the probe's time, and this runs
 * on every prologue and no-op install.
 */
export const PYTHON_PROBE = "import os, sys; print(os.path.realpath(sys.executable), " +
  "'.'.join(map(str, sys.version_info[:3])), int(sys.prefix != sys.base_prefix), sep='\\0', end='')";

/** Runs `python -c` to learn what an interpreter is; null when it does not run. */
export async function probePython(env: Env, command: string, timeoutMs = 15_000): Promise<PythonInfo | null> {
  const r = await env.run([command, "-I", "-c", PYTHON_PROBE], { timeoutMs });
  if (r.kind !== "exited" || r.code !== 0) return null;
  const [executable, version, inVenv] = r.stdout.split("\0").slice(-3);
  if (!executable || !/^\d+\.\d+\.\d+$/.test(version ?? "") || !/^[01]$/.test(inVenv ?? "")) return null;
  return { command, executable, version, inVenv: inVenv === "1" };
}

export const venvPython = (venvDir: string) => `${venvDir}/bin/python`;

export type VenvInspection =
  | { kind: "missing" }
  /** The directory exists but is not a venv (no pyvenv.cfg): never delete it, it may be someone's data. */
  | { kind: "not-a-venv"; entries: number }
  /** pyvenv.cfg is there but bin/python does not run (base interpreter removed, half-created). */
  | { kind: "broken"; reason: string }
  | { kind: "ok"; python: PythonInfo };

/** What is at venvDir: nothing, something else, a broken venv, or a working one (with its Python). */
export async function inspectVenv(env: Env, venvDir: string, timeoutMs = 15_000): Promise<VenvInspection> {
  try {
    const st = await env.fs.stat(venvDir);
    if (!st.isDirectory) return { kind: "not-a-venv", entries: 1 };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { kind: "missing" };
    throw e;
  }
  let hasCfg = true;
  try {
    await env.fs.stat(`${venvDir}/pyvenv.cfg`);
  } catch {
    hasCfg = false;
  }
  if (!hasCfg) {
    let entries = 0;
    for await (const e of env.fs.readDir(venvDir)) if (e.name !== ".mlagent") entries++;
    // An empty directory (or one holding only our state) is ours to build in.
    return entries === 0 ? { kind: "missing" } : { kind: "not-a-venv", entries };
  }
  const python = await probePython(env, venvPython(venvDir), timeoutMs);
  if (!python) return { kind: "broken", reason: `${venvPython(venvDir)} does not run` };
  return { kind: "ok", python };
}

export interface CreateVenvOptions {
  /** Path of uv to create it with; null uses `python -m venv`. */
  uv: string | null;
  /** The venv must carry pip (the pip installer runs `<venv>/bin/python -m pip`). */
  withPip: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Creates a venv at venvDir from `python` (venvDir may exist holding only .mlagent/). Throws `failed` with the output. */
export async function createVenv(
  env: Env,
  python: string,
  venvDir: string,
  opts: CreateVenvOptions,
): Promise<void> {
  const venvArgv = [python, "-m", "venv", ...(opts.withPip ? [] : ["--without-pip"]), venvDir];
  const row = env.progress.row(`creating venv ${venvDir}`);
  try {
    await createVenvWith(env, python, venvDir, venvArgv, opts);
    row.done();
  } catch (e) {
    row.done();
    throw e;
  }
}

async function createVenvWith(
  env: Env,
  python: string,
  venvDir: string,
  venvArgv: string[],
  opts: CreateVenvOptions,
): Promise<void> {
  const run = (argv: string[]) =>
    env.run(argv, { timeoutMs: opts.timeoutMs ?? 300_000, signal: opts.signal });
  let r: RunResult;
  if (opts.uv) {
    r = await run([
      opts.uv,
      "venv",
      "--allow-existing",
      "--python",
      python,
      ...(opts.withPip ? ["--seed"] : []),
      venvDir,
    ]);
    if (r.kind === "exited" && r.code === 0) return;
    if (opts.signal?.aborted) throw failed(`venv creation interrupted`);
    // uv broken on this node (old glibc, bad download): the interpreter's own venv module still works.
    env.log.warn(`uv venv failed (${describeRun(r)}); creating the venv with ${python} -m venv`);
  }
  r = await run(venvArgv);
  if (r.kind === "exited" && r.code === 0) return;
  const tail = r.kind === "not-found" ? "" : tailLines(r.stderr || r.stdout, 15);
  // A full disk or a read-only mount also fails inside ensurepip: name those before blaming python3-venv.
  const system = fromSystemError(new Error(tail));
  const hint = system
    ? `${system.hint} (${system.message.split(" (")[0]} at ${venvDir})`
    : /No module named (venv|ensurepip)|ensurepip is not available|python3-venv/.test(tail)
    ? "The interpreter lacks the venv/ensurepip modules (Debian: apt install python3-venv)"
    : "check that the interpreter runs and the directory is writable";
  throw failed(
    `could not create the venv at ${venvDir}: ${describeRun(r)}${tail ? `\n${indentBlock(tail)}` : ""}`,
    hint,
  );
}

// Each read of .metadata (and .version) parses METADATA again, a README-sized file for many packages: once here.
const LIST_INSTALLED = `import importlib.metadata as m, json, re
out = {}
for d in m.distributions():
    md = d.metadata
    if md["Name"]:
        out[re.sub(r"[-_.]+", "-", md["Name"]).lower()] = md["Version"]
print(json.dumps(out))`;

/** name -> version of every distribution in the venv (importlib.metadata: works without pip, as in uv venvs). */
export async function listInstalled(
  env: Env,
  venvDir: string,
  timeoutMs = 60_000,
): Promise<Record<string, string>> {
  const r = await env.run([venvPython(venvDir), "-I", "-c", LIST_INSTALLED], { timeoutMs });
  if (r.kind !== "exited" || r.code !== 0) return {};
  try {
    const all = JSON.parse(r.stdout.trim()) as Record<string, string>;
    return Object.fromEntries(Object.entries(all).sort(([a], [b]) => a.localeCompare(b)));
  } catch {
    return {};
  }
}

/** The last n non-empty lines of text. */
export function tailLines(text: string, n: number): string {
  return text.split("\n").filter((l) => l.trim()).slice(-n).join("\n");
}
