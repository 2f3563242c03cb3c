/** `mlagent health`: node checks for the scheduler's health hook; drains on a node fault, resumes its own drains. */
import type { Command } from "../cli.ts";
import { writeJsonAtomic } from "../core/atomic.ts";
import type { Env } from "../core/env.ts";
import { badInput, usageError } from "../core/errors.ts";
import { type Outcome, renderStatusLines, SCHEMA_VERSION } from "../core/output.ts";
import { stateDir } from "../core/paths.ts";
import { NODE_FILE_SUFFIX, nodeFilePath } from "../fleet/paths.ts";
import {
  defaultNodeName,
  detectScheduler,
  type HealthReport,
  internalErrorReport,
  runHealth,
  type SchedulerKind,
  showCommand,
} from "../health/mod.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";

const HELP =
  `Usage: mlagent health [--scheduler slurm|lsf|auto] [--drain|--no-drain] [--dry-run] [--timeout SECONDS]
                      [--node NAME] [--root DIR] [--output PATH] [--json]

Checks this node for the scheduler's health hook (Slurm's HealthCheckProgram, LSF from root's cron; see
scripts/slurm/health.sh and scripts/lsf/health.sh), side by side under one deadline:
  gpu.driver     nvidia-smi answers, the driver is loaded and matches its utilities (fail: hung, not
                 answering, NVML mismatch, no GPUs shown; a node with no driver and no GPUs configured skips)
  gpu.count      as many GPUs as the scheduler configures (Slurm Gres=gpu:N)
  gpu.health     no ERR!, uncorrectable ECC errors or failed row remapping on any GPU
  kernel.xid     no GPU-fault Xid in the kernel log in the last hour (application Xids only warn)
  disk.space     at least 1 GiB free for the venv root and TMPDIR (MLAGENT_HEALTH_MIN_FREE_GIB)
  tmpdir         TMPDIR writable
  cuda.wheels    the driver runs the CUDA wheels of the venvs installed here (warns only)
  venv.damaged   ready venvs still have every pinned package (warns only: \`mlagent install\` repairs)
  cache.corrupt  the installer cache's record of its last scan (warns only: \`mlagent cache heal\` repairs;
                 the record, not a scan, because a scan of a large cache takes seconds on every call)
A fail is a node fault. Paths are first asked about by a \`stat\` child, so a dead mount is a fault, not a hang.

What it does with the node (read first with \`scontrol show node\` / \`bhosts -l\`):
  fault      drain it with a reason naming the check: scontrol update nodename=NODE state=drain
             reason="mlagent: gpu.health GPU 3 uncorrectable ECC (2)"   (LSF: badmin hclose -C "..." HOST)
  healthy    resume it if mlagent drained it (reason starts with "mlagent:") for a check this run judged;
             never a node someone else drained, nor a prologue drain for a check health does not judge
  unknown    a check missed its deadline or mlagent failed: nothing is changed
Every drain and resume is appended to $MLAGENT_STATE_DIR/drain.log; the last report to last-health.json.

Options:
  --scheduler S  slurm, lsf or auto (default: Slurm when SLURMD_NODENAME/SLURM_CONF is set, LSF when
                 LSF_ENVDIR is; else whichever of scontrol, badmin is on PATH; none: report only)
  --drain        drain and resume (the default when a scheduler is found)
  --no-drain     report only
  --dry-run      read the node's state and print the commands it would run; run none
  --timeout S    deadline for everything, scheduler commands included (default 30; Slurm allows 60)
  --node NAME    the node's name in the scheduler (default SLURMD_NODENAME, else the host name)
  --root DIR     venv root (default MLAGENT_ROOT)
  --output PATH  also write the JSON report there, atomically; a directory or a PATH ending in / gets
                 HOST.health.json inside (for \`mlagent fleet\`); {host} in PATH becomes the host name
  --json         one JSON document on stdout

Exit codes: 0 healthy, 1 node fault (drained unless --no-drain), 2 bad input, 4 cannot judge (nothing
changed). Slurm ignores a HealthCheckProgram's exit code: the drain is the signal.

Environment: MLAGENT_XID_WINDOW_S (default 3600), MLAGENT_HEALTH_MIN_FREE_GIB (default 1), MLAGENT_ROOT,
MLAGENT_CACHE_DIR, MLAGENT_STATE_DIR, TMPDIR, SLURMD_NODENAME, PATH (scontrol, bhosts, badmin, nvidia-smi).`;

export const healthCommand: Command = {
  name: "health",
  help: HELP,
  run: runHealthCommand,
};

async function runHealthCommand(env: Env, argv: string[]): Promise<Outcome> {
  const started = env.now();
  const { values } = parseCommandArgs("health", argv, {
    scheduler: { type: "string" },
    drain: { type: "boolean" },
    "no-drain": { type: "boolean" },
    "dry-run": { type: "boolean" },
    timeout: { type: "string" },
    node: { type: "string" },
    root: { type: "string" },
    output: { type: "string" },
  }, { allowPositionals: false });
  if (values.drain && values["no-drain"]) {
    throw usageError("health: --drain and --no-drain contradict each other", "pick one");
  }
  const choice = (values.scheduler ?? "auto").toLowerCase();
  if (!["slurm", "lsf", "auto"].includes(choice)) {
    throw usageError(
      `health: unknown --scheduler "${values.scheduler}"`,
      "use --scheduler slurm, lsf or auto",
    );
  }
  const scheduler = choice === "auto" ? detectScheduler(env.vars) : choice as SchedulerKind;
  if (values.drain && !scheduler) {
    throw usageError(
      "health: --drain needs a scheduler, and none was found (no SLURMD_NODENAME or LSF_ENVDIR, no scontrol or badmin on PATH)",
      "name it with --scheduler slurm|lsf, or drop --drain to only report",
    );
  }
  const timeoutS = parseNumberFlag("health", "timeout", values.timeout, { min: 1 }) ?? 30;
  const opts = {
    scheduler,
    node: values.node ?? defaultNodeName(env, scheduler),
    drain: !values["no-drain"] && scheduler !== null,
    dryRun: values["dry-run"] ?? false,
    timeoutMs: Math.round(timeoutS * 1000),
    root: values.root,
  };
  const output = values.output ? await nodeFilePath(env, values.output, NODE_FILE_SUFFIX.health) : null;
  if (output) await requireDirectory(env, output.slice(0, output.lastIndexOf("/")) || "/");

  let report: HealthReport;
  try {
    report = await runHealth(env, opts);
  } catch (e) {
    // Its own crash is never the node's fault: report it as unknown and change nothing.
    env.log.error(`health: mlagent failed: ${e instanceof Error ? (e.stack ?? e.message) : e}`);
    report = internalErrorReport(env, opts, started, e);
  }
  const a = report.action;
  if (a.error) env.log.warn(`health: ${a.kind} failed: ${a.error}`);
  const doc = { schema_version: SCHEMA_VERSION, ...report };
  await recordLast(env, doc);
  if (output) {
    // The exit code stays the verdict's (the scheduler and scripts act on it): a failed write is said.
    await writeJsonAtomic(env, output, doc).catch((e) =>
      env.log.error(`health: cannot write ${output}: ${e instanceof Error ? e.message : e}`)
    );
  }
  return {
    exitCode: report.exit_code,
    json: { ...report, ...(output ? { output } : {}) },
    text: renderText(report, output),
  };
}

/** --output's directory must exist before the checks run: a typo is bad input, not a node fault. */
async function requireDirectory(env: Env, dir: string): Promise<void> {
  const st = await env.fs.stat(dir).catch(() => null);
  if (!st?.isDirectory) {
    throw badInput(
      `health: --output: ${dir} is not a directory`,
      "create it first (the shared fleet directory), or point --output at an existing one",
    );
  }
}

/** The last report for people and for `status`-like readers; best effort, never fails the run. */
async function recordLast(env: Env, doc: Record<string, unknown>): Promise<void> {
  try {
    const dir = stateDir(env);
    await env.fs.mkdir(dir, { recursive: true });
    await writeJsonAtomic(env, `${dir}/last-health.json`, doc);
  } catch (e) {
    env.log.debug(`health: could not record the report: ${e instanceof Error ? e.message : e}`);
  }
}

const VERDICT_WORDS = { healthy: "healthy", unhealthy: "NODE FAULT", unknown: "CANNOT JUDGE" } as const;

function renderText(r: HealthReport, output: string | null): string {
  const lines = [
    renderStatusLines(r.checks.map((c) => ({
      id: c.id,
      status: c.status === "unknown" ? "??  " : c.status,
      message: `${c.timed_out ? "(timed out) " : ""}${c.message}`,
      remedy: c.remedy,
    }))),
    `mlagent health: ${VERDICT_WORDS[r.verdict]} (exit ${r.exit_code}${
      r.scheduler ? `, ${r.scheduler} node ${r.node}` : ""
    }, ${r.duration_ms} ms${r.timed_out.length ? `; timed out: ${r.timed_out.join(", ")}` : ""})`,
  ];
  if (r.internal_error) lines.push(`mlagent failed: ${r.internal_error}`);
  if (r.node_state) {
    lines.push(
      `node ${r.node_state.node}: ${r.node_state.state}${
        r.node_state.reason ? ` "${r.node_state.reason}"` : ""
      }`,
    );
  }
  const a = r.action;
  if (a.kind === "none") lines.push(`action: none (${a.why})`);
  else {
    const verb = a.dry_run ? "would run" : a.done ? "ran" : "FAILED";
    for (const c of a.commands) lines.push(`${verb}: ${showCommand(c)}`);
    lines.push(`  (${a.why})${a.error ? `: ${a.error}` : ""}`);
  }
  if (output) lines.push(`report written to ${output}`);
  return lines.join("\n");
}
