/** `mlagent prologue`: gate a job's start for LSF (pre-exec) or Slurm (Prolog/TaskProlog), in bounded time. */
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import type { Outcome } from "../core/output.ts";
import { renderStatusLines } from "../core/output.ts";
import { resolveProfile } from "../install/recorded.ts";
import type { Profile } from "../profiles/types.ts";
import {
  appendPrologueLog,
  jobFaultReport,
  logLine,
  type PrologueReport,
  runPrologue,
} from "../prologue/mod.ts";
import {
  detectScheduler,
  parseSchedulerFlag,
  resolveScheduler,
  type Scheduler,
} from "../prologue/scheduler.ts";

const HELP =
  `Usage: mlagent prologue [--profile NAME] [--scheduler lsf|slurm|auto] [--timeout SECONDS] [--check-timeout SECONDS]
                        [--install] [--verify] [--root DIR] [--drain] [--json]

Decides whether this node may start this job, within a deadline. Checks, side by side, each with its own
deadline and its probes in their own process group:
  gpu.visible       the GPUs the job was given are visible, in the count it asked for
                    (CUDA_VISIBLE_DEVICES, SLURM_STEP_GPUS/SLURM_JOB_GPUS/SLURM_GPUS_ON_NODE, LSB_GPU_REQ)
  gpu.request       the job asked for at least the profile's GPU count
  gpu.memory        each GPU or MIG slice the job was given has the profile's min_memory_mib
  gpu.health        no ERR!, uncorrectable ECC errors or failed row remapping on those GPUs
  cuda.wheels       the driver runs the venv's CUDA wheels (or one of the profile's variants)
  kernel.xid        no GPU-fault Xid errors in the kernel log in the last hour (where the log is readable)
  tmpdir, disk.space TMPDIR writable; at least 1 GiB free for the venv root and TMPDIR
  venv.ready        the profile's venv is ready, built for the current profile, its python runs, and every
                    pinned package is whole (present at its pin, every RECORD file at its size)
  venv.verify       with --verify: the profile's verify steps pass in the venv
  models.complete   the profile's models are complete on disk
Filesystems are first touched by a \`stat\` child with a timeout, so a dead NFS mount is reported as timed
out instead of hanging the job start. No network access unless --install.

Options:
  --profile NAME     the job's profile (a built-in name, a name in MLAGENT_PROFILE_PATH, or a .json path)
  --scheduler S      lsf, slurm or auto (default: LSF when LSB_JOBID is set, Slurm when SLURM_JOB_ID is)
  --timeout S        deadline for the whole prologue in seconds (default 30; 3600 with --install)
  --check-timeout S  deadline for each check (default: the whole deadline)
  --install          install a missing or outdated venv (under the venv's lock) instead of failing
  --verify           also run the profile's verify steps in the venv (a failing GPU step is a node fault)
  --root DIR         venv root (default MLAGENT_ROOT)
  --drain            under Slurm (the Prolog, as root): on a node fault, drain the node with a reason naming
                     the failed check ("mlagent: gpu.health ... (prologue, job N)") before exiting 1, so
                     sinfo -R shows it instead of "Prolog error"; an admin's drain is kept, and
                     \`mlagent health\` lifts mlagent's once the node is healthy (scripts/slurm/prolog.sh)
  --json             one JSON document on stdout

Exit codes (a node fault is the node's problem, another node would do; a job fault is the job's own):
  LSF (bsub -E / PRE_EXEC)   0 run; node fault 1: the job goes back to PEND and is dispatched again;
                             job fault 99 (or $LSB_EXIT_PRE_ABORT): the job exits instead of pending forever
  Slurm (Prolog/TaskProlog)  0 run; node fault 1: Slurm drains the node and requeues the job;
                             job fault 0: the problem is printed to the job's output ("print ..." lines,
                             which TaskProlog shows in the task's stdout) and the job starts anyway
  no scheduler               0 run, 1 node or job fault, 2 bad input (unknown profile or scheduler,
                             malformed CUDA_VISIBLE_DEVICES, bad flag)
Unknown profiles and malformed CUDA_VISIBLE_DEVICES are job faults inside a job.

Every run appends one JSON line to $XDG_STATE_HOME/mlagent/prologue.log (MLAGENT_STATE_DIR) and writes it
to stderr, so an admin can see why a node refused jobs.

Environment: MLAGENT_XID_WINDOW_S (default 3600), MLAGENT_PROLOGUE_MIN_FREE_GIB (default 1), MLAGENT_ROOT,
MLAGENT_MODELS_DIR, TMPDIR, CUDA_VISIBLE_DEVICES, LSB_JOBID, LSB_EXIT_PRE_ABORT, SLURM_JOB_ID.`;

export const prologueCommand: Command = {
  name: "prologue",
  help: HELP,
  run: runPrologueCommand,
};

async function runPrologueCommand(env: Env, argv: string[]): Promise<Outcome> {
  const started = env.now();
  const { values } = parseCommandArgs("prologue", argv, {
    profile: { type: "string" },
    scheduler: { type: "string" },
    timeout: { type: "string" },
    "check-timeout": { type: "string" },
    install: { type: "boolean" },
    verify: { type: "boolean" },
    root: { type: "string" },
    drain: { type: "boolean" },
  }, { allowPositionals: false });

  // Inside a job, bad input is the job's fault and must map to the scheduler's code, not to exit 2.
  let scheduler: Scheduler | null = detectScheduler(env.vars);
  let report: PrologueReport | null = null;
  let profile: Profile | null = null;
  try {
    scheduler = resolveScheduler(parseSchedulerFlag(values.scheduler), env.vars);
    const timeoutS = parseNumberFlag("prologue", "timeout", values.timeout, { min: 0.1 }) ??
      (values.install ? 3600 : 30);
    const checkS = parseNumberFlag("prologue", "check-timeout", values["check-timeout"], { min: 0.05 });
    if (values.profile) profile = (await resolveProfile(env, values.profile, values.root)).profile;
    report = await runPrologue(env, {
      profile,
      profileRef: values.profile ?? null,
      scheduler,
      root: values.root,
      timeoutMs: Math.round(timeoutS * 1000),
      checkTimeoutMs: checkS !== undefined ? Math.round(checkS * 1000) : undefined,
      install: values.install ?? false,
      verify: values.verify ?? false,
    });
  } catch (e) {
    if (!(e instanceof MlagentError) || scheduler === null) throw e;
    report = jobFaultReport(
      env,
      scheduler,
      e.code === "usage" ? "usage" : "profile",
      e.message,
      e.hint ?? null,
      values.profile ?? null,
      started,
    );
  }

  const line = logLine(report);
  const logged = await appendPrologueLog(env, line);
  env.log.info(line);
  if (!logged) {
    env.log.warn("prologue: could not append to the prologue log (state dir not writable or not answering)");
  }
  if (values.drain) await setDrainReason(env, report);

  return { exitCode: report.exit_code, json: { ...report }, text: renderText(report) };
}

/** --drain: the node fault's own reason instead of Slurm's "Prolog error" (see prologue/drain_reason.ts). */
async function setDrainReason(env: Env, report: PrologueReport): Promise<void> {
  // The scheduler actions (health's drain module) load only with --drain.
  const { drainForNodeFault } = await import("../prologue/drain_reason.ts");
  const a = await drainForNodeFault(env, report);
  if (!a) return;
  if (a.error) env.log.warn(`prologue: could not set the drain reason: ${a.error}`);
  else if (a.done) env.log.info(`prologue: drained this node: ${a.reason}`);
  else env.log.info(`prologue: drain reason left as it is: ${a.why}`);
}

function renderText(r: PrologueReport): string {
  const lines = [
    renderStatusLines(r.checks.map((c) => ({
      id: c.id,
      status: c.status,
      message: `${c.fault ? `[${c.fault} fault] ` : ""}${c.timed_out ? "(timed out) " : ""}${c.message}`,
      remedy: c.remedy,
    }))),
    `mlagent prologue: ${
      r.verdict === "run" ? "ok, the job may start" : r.verdict === "node-fault" ? "NODE FAULT" : "JOB FAULT"
    } (exit ${r.exit_code}${r.scheduler ? `, ${r.scheduler}` : ""}, ${r.duration_ms} ms${
      r.timed_out.length ? `; timed out: ${r.timed_out.join(", ")}` : ""
    })`,
  ].join("\n");
  // Slurm's TaskProlog shows lines starting with "print " in the task's output; a Prolog's stdout is dropped.
  return r.scheduler === "slurm" ? lines.split("\n").map((l) => `print ${l}`).join("\n") : lines;
}
