/** The one subprocess runner: argv only, a timeout on every call, outcomes as data. */
import { sleep } from "./time.ts";

export interface RunOptions {
  /** Kill the process (its whole group) after this long. Default 60 s. */
  timeoutMs?: number;
  cwd?: string;
  /** Variables added over the Env's variables for this call; `undefined` removes one. */
  env?: Record<string, string | undefined>;
  stdin?: string;
  /** Let the child write straight to our stdout/stderr instead of capturing. */
  inheritStdio?: boolean;
  /** Start the child in its own session/process group so a timeout kills its children too. Default true. */
  newProcessGroup?: boolean;
  /** See LEAF: no session of its own when the program is the system's (in /usr/bin or /bin). */
  systemLeaf?: boolean;
  signal?: AbortSignal;
  /** Called with each chunk of stderr/stdout as it arrives (for live progress); output is still captured. */
  onOutput?: (stream: "stdout" | "stderr", text: string) => void;
  /** Let the child read our stdin (for commands run on the user's behalf, like `lock run`). */
  inheritStdin?: boolean;
  /** Called once the child runs, with its pid and a way to signal it (signal forwarding, owner records). */
  onSpawn?: (child: SpawnedChild) => void;
}

/**
 * For one of the system's own programs that start no child (coreutils' stat and df): when PATH finds it in
 * /usr/bin or /bin it is started directly, without a session of its own, saving setsid(1)'s second exec
 * (~3 ms of CPU per child here; the prologue starts three, one before the venv's interpreter). Anywhere else
 * on PATH (a site's wrapper, which may start children) it gets its session as every child does.
 */
export const LEAF = { systemLeaf: true } as const satisfies RunOptions;

/** Where a program found on PATH is the system's own. */
const SYSTEM_BIN = /^\/(usr\/)?bin\/[^/]+$/;

export interface SpawnedChild {
  pid: number;
  kill(signal: Deno.Signal): void;
}

export type RunResult =
  | {
    kind: "exited";
    argv: string[];
    code: number;
    /** Set when the child died of a signal (code is then 128 + n). */
    signal: string | null;
    stdout: string;
    stderr: string;
    durationMs: number;
  }
  | { kind: "not-found"; argv: string[]; program: string }
  | { kind: "timed-out"; argv: string[]; afterMs: number; stdout: string; stderr: string };

export type Runner = (argv: string[], opts?: RunOptions) => Promise<RunResult>;

/** The real runner, which also knows the children still running. */
export interface TrackingRunner extends Runner {
  /**
   * Kills every child still running, with its process group: a probe abandoned at a deadline (a hung
   * nvidia-smi, a stat on a dead mount) must not outlive mlagent. Called once, on the way out.
   */
  stopAll(): void;
}

export interface RunnerDeps {
  vars: () => Record<string, string>;
  /** Where children run unless a call says otherwise: the caller's directory, not the program's. */
  cwd: () => string;
  log: (line: string) => void;
}

/** Finds `program` on the given PATH the way execvp does; absolute or relative paths are returned as they are. */
export function findOnPath(program: string, path: string | undefined): string | null {
  if (program.includes("/")) return isExecutable(program) ? program : null;
  for (const dir of (path ?? "").split(":")) {
    if (!dir) continue;
    const candidate = `${dir}/${program}`;
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

function isExecutable(path: string): boolean {
  try {
    const st = Deno.statSync(path);
    return st.isFile && ((st.mode ?? 0o755) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * A root-owned setsid(1), or null. A child gets its own session (so a timeout kills its whole group) by being
 * started as `setsid PROGRAM ARGS`: setsid(1) calls setsid() and execs the program in the same process, as
 * the child is not a group leader, so its pid is the program's and its group. Deno's own `detached` makes
 * the runtime fork its whole address space instead of posix_spawn: 7 ms of the main thread per child here,
 * against 1 ms (`deno task bench status`, prologue row).
 */
function trustedSetsid(): string | null {
  for (const path of ["/usr/bin/setsid", "/bin/setsid"]) {
    try {
      const st = Deno.statSync(path);
      if (st.isFile && st.uid === 0 && ((st.mode ?? 0) & 0o022) === 0 && ((st.mode ?? 0) & 0o111) !== 0) {
        return path;
      }
    } catch { /* not here */ }
  }
  return null;
}

/** setsid(1)'s own complaint when it could not exec the program (it exits 126 or 127; the rest is localized). */
const SETSID_EXEC_FAILED = /^setsid: /;

/** Builds the real runner. The child sees exactly the Env's variables (plus per-call ones), never Deno's own. */
export function makeRunner(deps: RunnerDeps): TrackingRunner {
  const live = new Set<() => void>();
  let setsid: string | null | undefined;
  const runner: Runner = async (argv, opts = {}) => {
    const vars: Record<string, string> = { ...deps.vars() };
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      if (v === undefined) delete vars[k];
      else vars[k] = v;
    }
    const program = findOnPath(argv[0], vars.PATH);
    deps.log(`run: ${argv.map(quoteArg).join(" ")}`);
    if (!program) return { kind: "not-found", argv, program: argv[0] };
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const started = performance.now();
    const group = opts.newProcessGroup ?? !(opts.systemLeaf && SYSTEM_BIN.test(program));
    if (group && setsid === undefined) setsid = trustedSetsid();
    const viaSetsid = group && setsid !== null;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(viaSetsid ? setsid! : program, {
        args: viaSetsid ? [program, ...argv.slice(1)] : argv.slice(1),
        cwd: opts.cwd ?? deps.cwd(),
        env: vars,
        clearEnv: true,
        stdin: opts.stdin !== undefined ? "piped" : opts.inheritStdin ? "inherit" : "null",
        stdout: opts.inheritStdio ? "inherit" : "piped",
        stderr: opts.inheritStdio ? "inherit" : "piped",
        detached: group && !viaSetsid,
      }).spawn();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) {
        return { kind: "not-found", argv, program: argv[0] };
      }
      throw e;
    }
    opts.onSpawn?.({
      pid: child.pid,
      kill: (sig) => {
        try {
          child.kill(sig);
        } catch { /* already gone */ }
      },
    });
    let timedOut = false;
    const killAll = () => {
      try {
        if (group) Deno.kill(-child.pid, "SIGKILL");
        else child.kill("SIGKILL");
      } catch { /* already gone */ }
    };
    const stopTimer = new AbortController();
    sleep(timeoutMs, stopTimer.signal).then(() => {
      if (stopTimer.signal.aborted) return;
      timedOut = true;
      killAll();
    });
    const onAbort = () => killAll();
    opts.signal?.addEventListener("abort", onAbort);
    live.add(killAll);
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin)).catch(() => {});
      await w.close().catch(() => {});
    }
    let stdout = "";
    let stderr = "";
    let status: Deno.CommandStatus;
    if (opts.inheritStdio) status = await child.status;
    else if (!opts.onOutput) {
      // Read by the runtime in one go: no stream chunks through JavaScript when nobody watches them arrive.
      const out = await child.output();
      [stdout, stderr] = [new TextDecoder().decode(out.stdout), new TextDecoder().decode(out.stderr)];
      status = out;
    } else {
      [stdout, stderr] = await Promise.all([
        collect(child.stdout, (t) => opts.onOutput?.("stdout", t)),
        collect(child.stderr, (t) => opts.onOutput?.("stderr", t)),
      ]);
      status = await child.status;
    }
    live.delete(killAll);
    stopTimer.abort();
    opts.signal?.removeEventListener("abort", onAbort);
    const durationMs = Math.round(performance.now() - started);
    if (timedOut) return { kind: "timed-out", argv, afterMs: timeoutMs, stdout, stderr };
    // The program vanished or lost its exec bit after findOnPath looked: what spawning it directly would say.
    if (viaSetsid && (status.code === 126 || status.code === 127) && SETSID_EXEC_FAILED.test(stderr)) {
      return { kind: "not-found", argv, program: argv[0] };
    }
    return {
      kind: "exited",
      argv,
      code: status.code,
      signal: status.signal ?? null,
      stdout,
      stderr,
      durationMs,
    };
  };
  return Object.assign(runner, {
    stopAll() {
      for (const kill of [...live]) kill();
      live.clear();
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>, onText: (t: string) => void): Promise<string> {
  const decoder = new TextDecoder();
  let out = "";
  // A grandchild that keeps the pipe open after a group kill would block us forever; the kill covers the group.
  for await (const chunk of stream) {
    const text = decoder.decode(chunk, { stream: true });
    out += text;
    onText(text);
  }
  return out + decoder.decode();
}

/** Quotes an argument for log lines only; commands are never run through a shell. */
export function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
}

/** A one-line description of a failed run, for messages. */
export function describeRun(r: RunResult): string {
  const cmd = r.argv.map(quoteArg).join(" ");
  switch (r.kind) {
    case "not-found":
      return `${r.program}: not found on PATH`;
    case "timed-out":
      return `${cmd}: no answer within ${r.afterMs} ms (killed)`;
    case "exited":
      return r.signal ? `${cmd}: killed by ${r.signal}` : `${cmd}: exit ${r.code}`;
  }
}
