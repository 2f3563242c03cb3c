/**
 * The seams. Every side effect below main.ts passes through an Env, so tests can point each one at
 * temp dirs, fixtures, fake executables and local servers. realEnv() is the only place that reads
 * Deno's own process state.
 */
import { makeBoard, type Progress } from "./progress.ts";
import { makeRunner, type Runner } from "./run.ts";
import { every, sleep } from "./time.ts";

/** The signals mlagent handles: interruption, and the ones `mlagent run` passes on to its command. */
export type HandledSignal = "SIGINT" | "SIGTERM" | "SIGHUP" | "SIGQUIT" | "SIGUSR1" | "SIGUSR2";

export interface Logger {
  /** Shown only with --verbose (command lines, retries' details). */
  debug(msg: string): void;
  info(msg: string): void;
  /** Shown unless --quiet: a cron line that worked stays silent. */
  warn(msg: string): void;
  /** Always shown. */
  error(msg: string): void;
  /** The fix for the error just shown, as "hint: ..."; always shown. */
  hint(msg: string): void;
  /** Progress that may be redrawn in place on a terminal; dropped when stderr is not a terminal. */
  progress(msg: string): void;
}

/** The filesystem calls mlagent uses. Real files always (tests use temp dirs); the seam exists for fault injection. */
export type Fs = Pick<
  typeof Deno,
  | "readTextFile"
  | "readFile"
  | "writeTextFile"
  | "writeFile"
  | "stat"
  | "lstat"
  | "mkdir"
  | "remove"
  | "rename"
  | "readDir"
  | "open"
  | "link"
  | "symlink"
  | "readLink"
  | "realPath"
  | "chmod"
  | "makeTempDir"
  | "makeTempFile"
  | "truncate"
  | "copyFile"
  | "utime"
  | "statSync"
  | "lstatSync"
  | "readTextFileSync"
  | "readFileSync"
  | "readDirSync"
  | "realPathSync"
  // Per-file steps of a download of many small files: a page-cache operation is cheaper than a trip through
  // the async pool (measured: scripts/bench/download.ts).
  | "openSync"
  | "renameSync"
  | "writeTextFileSync"
  | "mkdirSync"
  | "symlinkSync"
  | "removeSync"
  | "readLinkSync"
>;

export interface Env {
  /** Environment variables as this run sees them; children get exactly these. */
  vars: Record<string, string>;
  run: Runner;
  /** Kills the children still running (abandoned probes); main.ts calls it once before exiting. */
  stopChildren(): void;
  fs: Fs;
  fetch: typeof fetch;
  /** Milliseconds since the epoch. */
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls `fn` every `ms` until the returned function is called (progress, watchdogs, saving state). */
  every(ms: number, fn: () => void): () => void;
  /** Random number in [0, 1) for jitter. */
  random(): number;
  hostname(): string;
  pid: number;
  uid: number;
  gid: number;
  cwd: string;
  /** Root of procfs (tests point it at a fixture tree). */
  procRoot: string;
  /** Root of sysfs. */
  sysRoot: string;
  /** Where passwd and group live (tests point it at a fixture tree). */
  etcRoot: string;
  log: Logger;
  /** Live progress rows on a terminal, heartbeat lines in a log (see core/progress.ts). */
  progress: Progress;
  /** True when stderr is an interactive terminal (progress, colour). */
  stderrIsTerminal: boolean;
  /** Writes to stdout. Only agent/output.ts and main.ts should call it. */
  writeStdout(text: string): Promise<void>;
  /** Registers a handler for a signal; returns a function that removes it. */
  onSignal(sig: HandledSignal, handler: () => void): () => void;
  /** Ends the process; only for a signal handler that has cleaned up (a held lock released on SIGTERM). */
  exit?(code: number): never;
}

export interface LogOptions {
  verbose: boolean;
  quiet?: boolean;
  color: boolean;
  isTerminal: boolean;
}

export function makeLogger(write: (line: string) => void, opts: LogOptions): Logger {
  const paint = (code: string, s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  return {
    debug: (m) => opts.verbose && write(paint("2", m)),
    info: (m) => !opts.quiet && write(m),
    warn: (m) => !opts.quiet && write(paint("33", `warning: ${m}`)),
    error: (m) => write(paint("31", `error: ${m}`)),
    hint: (m) => write(`hint: ${m}`),
    progress: (m) => opts.isTerminal && !opts.quiet && write(m),
  };
}

/**
 * The directory the user typed their paths against. `deno task` (the README's way of running) starts the
 * program in the project folder and passes the caller's directory as INIT_CWD. INIT_CWD counts only then:
 * a binary, or a program started elsewhere, may inherit a stale one from an npm or deno parent (a test run
 * under `deno task test` does), and its own cwd is the truth.
 */
function callerDir(vars: Record<string, string>): string {
  const cwd = Deno.cwd();
  const init = vars.INIT_CWD;
  if (!init?.startsWith("/") || cwd !== projectDir()) return cwd;
  try {
    if (Deno.statSync(init).isDirectory) return init;
  } catch { /* gone: fall back */ }
  return cwd;
}

/** The folder main.ts was started from, when it runs from source (a compiled binary's is never a cwd). */
function projectDir(): string | undefined {
  const main = Deno.mainModule;
  if (!main.startsWith("file://")) return undefined;
  const path = decodeURIComponent(new URL(".", main).pathname).replace(/\/$/, "");
  return path || "/";
}

/** Builds the real Env from the process. `overrides` lets tests and main.ts replace single seams. */
export function realEnv(
  overrides: Partial<Env> & { verbose?: boolean; quiet?: boolean; noProgress?: boolean } = {},
): Env {
  const vars = overrides.vars ?? Deno.env.toObject();
  const isTerminal = Deno.stderr.isTerminal();
  const color = isTerminal && !("NO_COLOR" in vars);
  const encoder = new TextEncoder();
  const board = makeBoard({
    writeRaw: (text) => {
      const data = encoder.encode(text);
      for (let off = 0; off < data.length;) off += Deno.stderr.writeSync(data.subarray(off));
    },
    info: (line) => env.log.info(line),
    isTerminal,
    enabled: !overrides.quiet && !overrides.noProgress,
    now: () => env.now(),
    every: (ms, fn) => env.every(ms, fn),
  });
  // Every stderr line goes above the live progress rows, which stay at the bottom of the terminal.
  const writeErr = (line: string) => board.printLine(line);
  const log = overrides.log ??
    makeLogger(writeErr, { verbose: overrides.verbose ?? false, quiet: overrides.quiet, color, isTerminal });
  const runner = makeRunner({ vars: () => env.vars, cwd: () => env.cwd, log: (l) => env.log.debug(l) });
  const env: Env = {
    vars,
    run: runner,
    stopChildren: () => runner.stopAll(),
    fs: Deno,
    fetch: globalThis.fetch,
    now: () => Date.now(),
    sleep,
    every,
    random: Math.random,
    hostname: () => vars.MLAGENT_HOSTNAME ?? Deno.hostname(),
    pid: Deno.pid,
    uid: Deno.uid() ?? 0,
    gid: Deno.gid() ?? 0,
    cwd: callerDir(vars),
    procRoot: "/proc",
    sysRoot: "/sys",
    etcRoot: "/etc",
    log,
    progress: board,
    stderrIsTerminal: isTerminal,
    writeStdout: async (text) => {
      const data = encoder.encode(text);
      let off = 0;
      while (off < data.length) off += await Deno.stdout.write(data.subarray(off));
    },
    onSignal: (sig, handler) => {
      Deno.addSignalListener(sig, handler);
      return () => Deno.removeSignalListener(sig, handler);
    },
    exit: (code) => Deno.exit(code),
  };
  const { verbose: _v, quiet: _q, noProgress: _p, ...rest } = overrides;
  return Object.assign(env, rest);
}
