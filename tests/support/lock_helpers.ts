/** Real `mlagent lock run` processes for the lock tests: contenders, holders to kill, other hosts via unshare. */
import { mlagentArgv } from "./cli.ts";
import { hermeticVars, REPO_ROOT } from "./env.ts";

export interface LockProc {
  pid: number;
  child: Deno.ChildProcess;
  /** Resolves when the process ends, with its exit code and output. */
  done: Promise<{ code: number; signal: string | null; stdout: string; stderr: string }>;
}

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  /** Run under `unshare --uts` with this host name (another host sharing the same directory). */
  host?: string;
  /** Its own process group, so a test can kill mlagent and its command together. */
  detached?: boolean;
}

/** `mlagent lock run NAME -- sh -c SCRIPT`. */
export const lockRunSh = (name: string, script: string) => ["lock", "run", name, "--", "sh", "-c", script];

/** Spawns `mlagent ARGS` (e.g. ["lock", "run", NAME, "--", ...]). */
export function spawnMlagent(args: string[], opts: SpawnOptions = {}): LockProc {
  let argv = mlagentArgv(args);
  if (opts.host) argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', opts.host, ...argv];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: REPO_ROOT,
    env: hermeticVars(opts.env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: opts.detached ?? false,
  }).spawn();
  const done = child.output().then((o) => ({
    code: o.code,
    signal: o.signal,
    stdout: new TextDecoder().decode(o.stdout),
    stderr: new TextDecoder().decode(o.stderr),
  }));
  return { pid: child.pid, child, done };
}

/** A critical section: appends "begin ID", sleeps, appends "end ID". */
export function section(file: string, id: string | number, sleepS = 0.05): string[] {
  return ["sh", "-c", `echo "begin ${id}" >> '${file}'; sleep ${sleepS}; echo "end ${id}" >> '${file}'`];
}

/** Checks the log is a sequence of begin X / end X pairs (no overlap) and returns the ids in order. */
export function sectionsInOrder(log: string): string[] {
  const lines = log.split("\n").filter(Boolean);
  const ids: string[] = [];
  for (let i = 0; i < lines.length; i += 2) {
    const b = lines[i].match(/^begin (.+)$/);
    const e = lines[i + 1]?.match(/^end (.+)$/);
    if (!b || !e || b[1] !== e[1]) {
      throw new Error(`critical sections overlap or are cut at line ${i + 1}:\n${log}`);
    }
    ids.push(b[1]);
  }
  return ids;
}

export async function readOr(path: string, fallback = ""): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return fallback;
  }
}

/** Polls until `check` is true (real processes need real waiting); throws after `timeoutMs`. */
export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const fileExists = async (path: string) => (await readOr(path, "\0missing")) !== "\0missing";

/** Is the process alive (and not a zombie)? */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** True where `unshare --uts` works (root or user namespaces): the other-host tests need it. */
export async function canUnshareUts(): Promise<boolean> {
  try {
    const o = await new Deno.Command("unshare", { args: ["--uts", "hostname", "probe-host"], stderr: "null" })
      .output();
    return o.success;
  } catch {
    return false;
  }
}

/** Variables for a lock test in `dir`: its own lock dir, fast heartbeats and polls, a short TTL. */
export function lockVars(dir: string, extra: Record<string, string | undefined> = {}) {
  return {
    MLAGENT_LOCK_DIR: `${dir}/locks`,
    MLAGENT_LOCK_HEARTBEAT: "0.2",
    MLAGENT_LOCK_TTL: "1.5",
    MLAGENT_LOCK_POLL_MS: "20",
    MLAGENT_LOCK_NOTICE: "0.5",
    ...extra,
  };
}
