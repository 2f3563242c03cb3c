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
  signal?: AbortSignal;
  /** Called with each chunk of stderr/stdout as it arrives (for live progress); output is still captured. */
  onOutput?: (stream: "stdout" | "stderr", text: string) => void;
  /** Let the child read our stdin (for commands run on the user's behalf, like `lock run`). */
  inheritStdin?: boolean;
  /** Called once the child runs, with its pid and a way to signal it (signal forwarding, owner records). */
  onSpawn?: (child: SpawnedChild) => void;
}

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

/** Builds the real runner. The child sees exactly the Env's variables (plus per-call ones), never Deno's own. */
export function makeRunner(deps: RunnerDeps): TrackingRunner {
  const live = new Set<() => void>();
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
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(program, {
        args: argv.slice(1),
        cwd: opts.cwd ?? deps.cwd(),
        env: vars,
        clearEnv: true,
        stdin: opts.stdin !== undefined ? "piped" : opts.inheritStdin ? "inherit" : "null",
        stdout: opts.inheritStdio ? "inherit" : "piped",
        stderr: opts.inheritStdio ? "inherit" : "piped",
        detached: opts.newProcessGroup ?? true,
      }).spawn();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) {
        return { kind: "not-found", argv, program: argv[0] };
      }
      throw e;
    }
    const group = opts.newProcessGroup ?? true;
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
    const [stdout, stderr] = opts.inheritStdio ? ["", ""] : await Promise.all([
      collect(child.stdout, (t) => opts.onOutput?.("stdout", t)),
      collect(child.stderr, (t) => opts.onOutput?.("stderr", t)),
    ]);
    const status = await child.status;
    live.delete(killAll);
    stopTimer.abort();
    opts.signal?.removeEventListener("abort", onAbort);
    const durationMs = Math.round(performance.now() - started);
    if (timedOut) return { kind: "timed-out", argv, afterMs: timeoutMs, stdout, stderr };
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
