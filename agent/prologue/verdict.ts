/** From checks to a verdict and the scheduler's exit code. */
import type { Env } from "../core/env.ts";
import { EXIT } from "../core/errors.ts";
import { isoTime } from "../core/output.ts";
import { schedulerJob } from "../core/proc.ts";
import type { Scheduler } from "./scheduler.ts";
import type {
  Fault,
  PrologueCheck,
  PrologueCheckId,
  PrologueReport,
  PrologueStatus,
  Verdict,
} from "./types.ts";

export const GIB = 1024 ** 3;

/**
 * The exit code for a verdict, per scheduler:
 * - LSF (pre-exec): 0 runs the job; any other code re-pends it, so a node fault exits 1 and LSF tries to
 *   dispatch it again (elsewhere, if the node is closed by then); 99 (or $LSB_EXIT_PRE_ABORT) aborts the job
 *   instead of pending it, for faults retrying cannot fix.
 * - Slurm (Prolog/TaskProlog): non-zero drains the node and requeues the job, so only a node fault exits 1;
 *   a job fault exits 0 and is reported on the job's output.
 * - No scheduler (a person or a script): 0 ok, 1 either fault.
 */
export function exitCodeFor(
  verdict: Verdict,
  scheduler: Scheduler | null,
  vars: Record<string, string>,
): number {
  if (verdict === "run") return EXIT.ok;
  if (verdict === "node-fault") return EXIT.failed;
  if (scheduler === "lsf") {
    const abort = Number(vars.LSB_EXIT_PRE_ABORT);
    return Number.isInteger(abort) && abort > 0 && abort < 256 ? abort : EXIT.lsfJobAbort;
  }
  if (scheduler === "slurm") return EXIT.ok;
  return EXIT.failed;
}

/** Node faults win: a broken node must stop taking jobs whatever the job's own problems are. */
export function verdictOf(checks: PrologueCheck[]): Verdict {
  const failing = checks.filter((c) => c.status === "fail");
  if (failing.some((c) => c.fault === "node")) return "node-fault";
  if (failing.length) return "job-fault";
  return "run";
}

export const check = (
  id: PrologueCheckId,
  status: PrologueStatus,
  message: string,
  opts: { fault?: Fault; remedy?: string | null; timedOut?: boolean } = {},
): PrologueCheck => ({
  id,
  status,
  fault: status === "fail" ? (opts.fault ?? "node") : null,
  message,
  remedy: opts.remedy ?? null,
  timed_out: opts.timedOut ?? false,
  duration_ms: 0,
});

/** A report for a job fault found before any check could run (unknown profile, malformed variable). */
export function jobFaultReport(
  env: Env,
  scheduler: Scheduler | null,
  id: PrologueCheckId,
  message: string,
  remedy: string | null,
  profile: string | null,
  started: number,
): PrologueReport {
  const c = check(id, "fail", message, { fault: "job", remedy });
  return {
    ok: false,
    verdict: "job-fault",
    exit_code: exitCodeFor("job-fault", scheduler, env.vars),
    scheduler,
    host: env.hostname(),
    job_id: schedulerJob(env)?.job_id ?? null,
    profile,
    gpu_request: null,
    checks: [c],
    timed_out: [],
    started_at: isoTime(started),
    duration_ms: env.now() - started,
    installed: null,
  };
}
