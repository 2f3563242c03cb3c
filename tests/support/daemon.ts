/**
 * What the real-daemon harnesses (sshfs.ts, slurm.ts) share: finding executables, free ports, bounded
 * commands, daemons whose output goes to a log file, and stopping a process with everything it started.
 */

const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The absolute path of `name` on PATH or in the system directories (daemons live in sbin), or undefined. */
export function findExecutable(name: string): string | undefined {
  const dirs = `${Deno.env.get("PATH") ?? ""}:${SYSTEM_PATH}`.split(":").filter(Boolean);
  for (const dir of dirs) {
    try {
      const st = Deno.statSync(`${dir}/${name}`);
      if (st.isFile && (st.mode ?? 0) & 0o111) return `${dir}/${name}`;
    } catch { /* not here */ }
  }
  return undefined;
}

/** A TCP port free on 127.0.0.1 right now (the kernel's pick; a daemon binds it a moment later). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs argv to completion within `timeoutMs` (killed past it); a non-zero exit is data, not an error. */
export async function runBounded(
  argv: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; stdin?: string } = {},
): Promise<Ran> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: opts.env,
    clearEnv: opts.env !== undefined,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* exited meanwhile */ }
  }, opts.timeoutMs ?? 10_000);
  try {
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin)).catch(() => {});
      await w.close().catch(() => {});
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr), timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** Like runBounded, but a non-zero exit or a timeout throws with the command line and its stderr. */
export async function runOk(
  argv: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; stdin?: string } = {},
): Promise<string> {
  const r = await runBounded(argv, opts);
  if (r.code !== 0 || r.timedOut) {
    const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? 10_000} ms` : `exited ${r.code}`;
    throw new Error(`${argv.join(" ")} ${why}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

/** A long-running process whose stdout and stderr are appended to `log`. */
export interface Daemon {
  name: string;
  pid: number;
  log: string;
  /** Resolves once it has exited and its output is flushed to the log. */
  exited: Promise<Deno.CommandStatus>;
  /** True once it has exited. */
  hasExited(): boolean;
}

export async function spawnDaemon(
  name: string,
  argv: string[],
  log: string,
  opts: { env?: Record<string, string> } = {},
): Promise<Daemon> {
  const out = await Deno.open(log, { write: true, create: true, append: true });
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: opts.env,
    clearEnv: opts.env !== undefined,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Both streams go to one file; each chunk is written whole, so lines from the two interleave but never tear.
  const writer = out.writable.getWriter();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) await writer.write(chunk).catch(() => {});
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let done = false;
  const exited = (async () => {
    const status = await child.status;
    await pumps;
    await writer.close().catch(() => {});
    done = true;
    return status;
  })();
  return { name, pid: child.pid, log, exited, hasExited: () => done };
}

/** Polls `probe` every `everyMs` until it returns a value other than undefined; throws `onTimeout()` past `timeoutMs`. */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  opts: { timeoutMs: number; everyMs?: number; onTimeout: () => Promise<Error> | Error },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw await opts.onTimeout();
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 50));
  }
}

/** The last `n` lines of a file, for error messages ("" when unreadable). */
export async function tailOf(path: string, n = 20): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

/** pid -> [ppid, state] for every process, read from /proc. */
function processTable(): Map<number, { ppid: number; state: string }> {
  const table = new Map<number, { ppid: number; state: string }>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      // The command name may hold spaces and parentheses: the fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      table.set(Number(e.name), { state: fields[0], ppid: Number(fields[1]) });
    } catch { /* gone meanwhile */ }
  }
  return table;
}

/** Whether pid is running (PID 1 here does not reap orphans, so a zombie counts as dead). */
export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The live descendants of `pid` (children, grandchildren, ...), collected before anything is killed. */
export function descendantsOf(pid: number): number[] {
  const table = processTable();
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const [p, info] of table) {
      if (info.ppid === parent && info.state !== "Z" && !found.includes(p)) {
        found.push(p);
        walk(p);
      }
    }
  };
  walk(pid);
  return found;
}

/** The live processes whose environment holds `NAME=VALUE` (how a harness finds what its daemons detached). */
export function processesWithVar(name: string, value: string): number[] {
  const needle = new TextEncoder().encode(`\0${name}=${value}\0`);
  const found: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      const raw = Deno.readFileSync(`/proc/${e.name}/environ`);
      const env = new Uint8Array(raw.length + 1);
      env.set(raw, 1);
      if (indexOfBytes(env, needle) >= 0 && isAlive(Number(e.name))) found.push(Number(e.name));
    } catch { /* gone meanwhile, or a kernel thread */ }
  }
  return found;
}

function indexOfBytes(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function signal(pid: number, sig: Deno.Signal) {
  try {
    Deno.kill(pid, sig);
  } catch { /* already gone */ }
}

/**
 * Stops processes: SIGTERM, up to `graceMs` for them to exit, then SIGKILL to any left. Returns the pids that
 * needed SIGKILL. Waits for `daemons` to be reaped so a test's sanitizers see no open process.
 */
export async function stopProcesses(
  pids: number[],
  opts: { graceMs?: number; daemons?: Daemon[] } = {},
): Promise<number[]> {
  const all = [...new Set(pids)];
  for (const p of all) signal(p, "SIGTERM");
  const deadline = Date.now() + (opts.graceMs ?? 3000);
  while (all.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  const killed = all.filter(isAlive);
  for (const p of killed) signal(p, "SIGKILL");
  for (const d of opts.daemons ?? []) await d.exited;
  const killDeadline = Date.now() + 2000;
  while (killed.some(isAlive) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 25));
  return killed;
}

/** Stops a daemon together with every process below it. */
export function stopDaemon(d: Daemon, graceMs = 3000): Promise<number[]> {
  if (d.hasExited()) return Promise.resolve([]);
  return stopProcesses([d.pid, ...descendantsOf(d.pid)], { graceMs, daemons: [d] });
}

/**
 * The live processes (other than this one) whose working directory or an open file lies inside `dir`: what a
 * daemon detached from itself and forgot, found by what it still holds (slurmstepd keeps slurmd's log open).
 */
export function processesUsing(dir: string): number[] {
  const inside = (p: string) => p === dir || p.startsWith(dir + "/");
  const found: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    const pid = Number(e.name);
    try {
      let hit = inside(Deno.readLinkSync(`/proc/${pid}/cwd`));
      if (!hit) {
        for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
          try {
            if (inside(Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`))) {
              hit = true;
              break;
            }
          } catch { /* closed meanwhile */ }
        }
      }
      if (hit && isAlive(pid)) found.push(pid);
    } catch { /* gone meanwhile */ }
  }
  return found;
}
