/**
 * `mlagent run`: a command in a profile's venv, with its models named, while the venv and the model dirs
 * are held shared, so `install --force`, `remove` and `models rm` (which take them exclusively) wait for
 * the job instead of pulling files from under it. The command's stdio is mlagent's; its exit code (or
 * 128+N for a signal, 126/127 when it cannot be run, as a shell says) is mlagent's.
 *
 * The holds are taken before readiness is judged: a venv judged ready cannot be removed until the command
 * ends. Each hold records the command's pid (and the command carries the venv hold's token): if mlagent is
 * SIGKILLed while the command still runs, the holds stay held; once both are gone they are stale and the
 * next exclusive acquirer removes them (agent/lock/shared.ts).
 */
import type { Env, HandledSignal } from "../core/env.ts";
import { failed } from "../core/errors.ts";
import { isoTime } from "../core/output.ts";
import type { SpawnedChild } from "../core/run.ts";
import { requireTrustedDir } from "../core/trust.ts";
import { acquireShared, downloadLockSpec, type LockHandle, venvLockSpec } from "../lock/mod.ts";
import type { Profile } from "../profiles/types.ts";
import { childVars, profileEnvironment } from "./environment.ts";
import { judgeReadiness } from "./ready.ts";
import { modelsRoot } from "../core/paths.ts";

export {
  childVars,
  modelVariable,
  profileEnvironment,
  quoteFish,
  quoteSh,
  renderShell,
} from "./environment.ts";
export type { ProfileEnvironment } from "./environment.ts";
export { judgeReadiness, type Readiness } from "./ready.ts";

/** Signal numbers on Linux, for 128+N and the record. */
export const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGXCPU: 24,
  SIGXFSZ: 25,
};

/** The signals passed on to the command. */
export const FORWARDED: HandledSignal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];

export interface RunRequest {
  profile: Profile;
  venvDir: string;
  command: string[];
  noWait: boolean;
  /** How long to wait for an exclusive holder (install, remove) to finish; default the lock's 30 min. */
  timeoutMs?: number;
}

export interface RunResult {
  /** What mlagent exits with: the command's code, 128+N for a signal, 126/127 when it could not be run. */
  exitCode: number;
  signal: string | null;
  /** Time spent waiting for the holds (an install or remove in progress). */
  waitedMs: number;
  /** The command's own run time; null when it never started. */
  commandMs: number | null;
  /** Why the command did not run or did not finish as itself (one line, also logged). */
  error: string | null;
}

/** Runs the command; throws MlagentError when the profile is not ready or a hold cannot be had. */
export async function runInVenv(env: Env, req: RunRequest): Promise<RunResult> {
  const { profile, venvDir, command } = req;
  requireTrustedDir(env, venvDir, "venv");
  if (profile.models.length) requireTrustedDir(env, modelsRoot(env), "models dir");
  const pe = profileEnvironment(env, profile, venvDir);

  const interrupt = new AbortController();
  let caught: HandledSignal | null = null;
  let child: SpawnedChild | null = null;
  let ended = false;
  const unwatch = FORWARDED.map((sig) =>
    env.onSignal(sig, () => {
      if (ended) return;
      caught ??= sig;
      // Keys typed on a terminal (Ctrl-C, Ctrl-\) already reached the command, which shares our process
      // group; a second one would cut its cleanup short. Anything sent to mlagent alone is passed on.
      if (child) {
        if (!((sig === "SIGINT" || sig === "SIGQUIT") && env.stderrIsTerminal)) child.kill(sig);
      } else interrupt.abort();
    })
  );
  const holds: LockHandle[] = [];
  const waitStart = env.now();
  let waitedMs = 0;
  try {
    const opts = {
      noWait: req.noWait,
      timeoutMs: req.timeoutMs,
      signal: interrupt.signal,
      command,
      handleSignals: false,
    };
    try {
      holds.push(await acquireShared(env, venvLockSpec(venvDir, `run ${profile.name}`), opts));
      // A model dir that does not exist has nothing to hold (and taking a hold would create it).
      for (const root of new Set(pe.models.map((m) => m.lock_root))) {
        if (!(await isDir(env, root))) continue;
        holds.push(await acquireShared(env, downloadLockSpec(root, `run ${profile.name}`), opts));
      }
    } catch (e) {
      if (caught) return interruptedBefore(caught, env.now() - waitStart);
      throw e;
    }
    waitedMs = env.now() - waitStart;
    if (caught) return interruptedBefore(caught, waitedMs);

    const readiness = await judgeReadiness(env, profile, venvDir);
    if (!readiness.ready) {
      throw failed(
        `run: profile ${profile.name} is not ready: ${readiness.problems.join("; ")}`,
        `mlagent install ${profile.name}   (or: mlagent run ${profile.name} --install -- ...)`,
        { venv: readiness.venv, models: readiness.models },
      );
    }

    const vars = { ...env.vars, ...childVars(pe) };
    const cannot = cannotRun(env, command[0], vars.PATH);
    if (cannot) {
      env.log.error(`run: ${cannot.message}`);
      return { exitCode: cannot.code, signal: null, waitedMs, commandMs: null, error: cannot.message };
    }

    let lostMessage: string | null = null;
    for (const h of holds) {
      h.lost.addEventListener("abort", () => {
        lostMessage ??= h.lost.reason instanceof Error ? h.lost.reason.message : "hold lost";
        child?.kill("SIGTERM");
      });
    }
    const recordings: Promise<void>[] = [];
    let r;
    try {
      r = await env.run(command, {
        inheritStdio: true,
        inheritStdin: true,
        // One process group with mlagent, as a shell's foreground job: killing the job kills both.
        newProcessGroup: false,
        timeoutMs: 2 ** 31 - 1,
        env: { ...childVars(pe), MLAGENT_LOCK_TOKEN: holds[0].token },
        onSpawn: (c) => {
          child = c;
          if (caught) c.kill(caught);
          for (const h of holds) {
            recordings.push(h.recordCommand?.(c.pid).catch(() => {}) ?? Promise.resolve());
          }
        },
      });
    } catch (e) {
      // execve refused a file it found (no shebang and not a binary for this machine): a shell says 126.
      const message = `${command[0]}: cannot execute: ${e instanceof Error ? e.message : e}`;
      env.log.error(`run: ${message}`);
      return { exitCode: 126, signal: null, waitedMs, commandMs: null, error: message };
    }
    ended = true;
    await Promise.all(recordings);
    if (r.kind === "not-found") {
      const message = `${command[0]}: cannot execute (permission denied)`;
      env.log.error(`run: ${message}`);
      return { exitCode: 126, signal: null, waitedMs, commandMs: null, error: message };
    }
    if (r.kind === "timed-out") throw failed(`run: ${command[0]} did not finish`);
    if (lostMessage) env.log.error(`run: ${lostMessage}; the command was stopped`);
    const exitCode = r.signal ? 128 + (SIGNAL_NUMBERS[r.signal] ?? 0) : r.code;
    return { exitCode, signal: r.signal, waitedMs, commandMs: r.durationMs, error: lostMessage };
  } finally {
    ended = true;
    for (const h of holds.reverse()) await h.release().catch(() => {});
    for (const u of unwatch) u();
  }
}

function interruptedBefore(sig: HandledSignal, waitedMs: number): RunResult {
  return {
    exitCode: 128 + SIGNAL_NUMBERS[sig],
    signal: sig,
    waitedMs,
    commandMs: null,
    error: `interrupted by ${sig} before the command started`,
  };
}

async function isDir(env: Env, path: string): Promise<boolean> {
  try {
    return (await env.fs.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Why `program` cannot be run, as a shell would judge it, or null: 127 when nothing by that name is found
 * (on PATH, or at the path given), 126 when what is found is not an executable file.
 */
export function cannotRun(
  env: Env,
  program: string,
  path: string | undefined,
): { code: 126 | 127; message: string } | null {
  const judge = (file: string): "ok" | "missing" | "not-executable" => {
    try {
      const st = env.fs.statSync(file);
      if (!st.isFile) return "not-executable";
      return ((st.mode ?? 0o755) & 0o111) !== 0 ? "ok" : "not-executable";
    } catch {
      return "missing";
    }
  };
  if (program === "") return { code: 127, message: `'': command not found` };
  if (program.includes("/")) {
    const j = judge(program.startsWith("/") ? program : `${env.cwd}/${program}`);
    if (j === "ok") return null;
    return j === "missing"
      ? { code: 127, message: `${program}: no such file` }
      : { code: 126, message: `${program}: not an executable file` };
  }
  let seen: string | null = null;
  for (const dir of (path ?? "").split(":")) {
    if (!dir) continue;
    const j = judge(`${dir}/${program}`);
    if (j === "ok") return null;
    if (j === "not-executable") seen ??= `${dir}/${program}`;
  }
  return seen
    ? { code: 126, message: `${program}: ${seen} is not an executable file` }
    : { code: 127, message: `${program}: command not found (PATH is the venv's bin, then yours)` };
}

/** ISO times and durations of one run, for the --json-status record. */
export function timesOf(startedMs: number, endedMs: number) {
  return { started_at: isoTime(startedMs), ended_at: isoTime(endedMs), duration_ms: endedMs - startedMs };
}
