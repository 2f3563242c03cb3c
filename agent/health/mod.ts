/**
 * `mlagent health`: the node checks a scheduler's health hook runs (Slurm's HealthCheckProgram, LSF from
 * root's cron), side by side under one deadline, and the one action that follows from them: drain the node
 * on a node fault, resume a node mlagent drained once it is healthy again, otherwise leave it alone. A check
 * that cannot judge (it missed its deadline, mlagent failed) makes the verdict unknown, which changes nothing.
 */
import type { Env } from "../core/env.ts";
import { EXIT } from "../core/errors.ts";
import { isoTime } from "../core/output.ts";
import { absolute, venvRoot } from "../core/paths.ts";
import { pathAnswers } from "../core/mounts.ts";
import { xidSeverity } from "../prologue/kernel_log.ts";
import { check, gpuFaults, HEALTH_TASKS, type HealthContext, judgeCuda } from "./checks.ts";
import {
  appendDrainLog,
  applyAction,
  makeReason,
  planAction,
  readNodeState,
  type SchedulerKind,
} from "./scheduler.ts";
import { runSideBySide } from "../core/deadline.ts";
import type { HealthCheck, HealthOptions, HealthReport, HealthVerdict, NodeState } from "./types.ts";

export {
  appendDrainLog,
  applyAction,
  defaultNodeName,
  detectScheduler,
  makeReason,
  planAction,
  readNodeState,
  REASON_PREFIX,
  showCommand,
} from "./scheduler.ts";
export type { SchedulerKind } from "./scheduler.ts";
export type { HealthCheck, HealthReport, HealthVerdict, SchedulerAction } from "./types.ts";

const GIB = 1024 ** 3;
/** The id the recipes use when the mlagent binary itself is missing; any run of health proves it present. */
export const BINARY_CHECK_ID = "mlagent.binary";

/** The verdict: a judged fault wins; else anything unjudged makes it unknown. */
export function verdictOf(checks: HealthCheck[]): HealthVerdict {
  if (checks.some((c) => c.status === "fail")) return "unhealthy";
  if (checks.some((c) => c.status === "unknown")) return "unknown";
  return "healthy";
}

export function exitCodeFor(verdict: HealthVerdict): number {
  return verdict === "healthy" ? EXIT.ok : verdict === "unhealthy" ? EXIT.failed : EXIT.cannotJudge;
}

/**
 * The check ids this run judged and found passing, which a drain reason must name to be lifted. The
 * prologue's gpu.visible (a job's GPU missing) is judged when the driver answers and the count the scheduler
 * configures is there.
 */
export function judgedIds(checks: HealthCheck[]): Set<string> {
  const ok = new Set(
    checks.filter((c) => c.status === "pass" || c.status === "warn").map((c) => c.id as string),
  );
  if (ok.has("gpu.driver") && ok.has("gpu.count")) ok.add("gpu.visible");
  ok.add(BINARY_CHECK_ID);
  return ok;
}

/** The drain reason for the failing checks: the first names the check, the others follow. */
export function reasonFor(checks: HealthCheck[]): string | null {
  const fails = checks.filter((c) => c.status === "fail");
  if (!fails.length) return null;
  const detail = [
    fails[0].reason ?? fails[0].message,
    ...fails.slice(1).map((c) => `${c.id} ${c.reason ?? c.message}`),
  ]
    .join("; ");
  return makeReason(fails[0].id, detail);
}

/** Runs the checks and the action. Never throws for a node problem; a bug surfaces to the caller. */
export async function runHealth(env: Env, opts: HealthOptions): Promise<HealthReport> {
  const started = env.now();
  const total = opts.timeoutMs;
  // The scheduler's commands run after the checks: keep time for them.
  const reserve = opts.scheduler && opts.drain && !opts.dryRun ? Math.min(5000, Math.round(total / 4)) : 0;
  const checksMs = Math.max(100, total - reserve);
  const left = () => Math.max(50, checksMs - (env.now() - started));
  // A probe must end (killed, judged a fault) before the whole deadline does, or a hung GPU reads as "cannot
  // judge": on a loaded node killing and reaping it takes a while, so the margin grows with the deadline.
  const margin = Math.max(100, Math.round(checksMs / 8));
  const probeMs = () => Math.max(50, left() - margin);

  const root = venvRoot(env, opts.root);
  const tmp = env.vars.TMPDIR ? absolute(env, env.vars.TMPDIR) : "/tmp";
  const stateRead = opts.scheduler
    ? readNodeState(env, opts.scheduler, opts.node, probeMs())
    : Promise.resolve({ problem: "no scheduler" } as const);
  const nodeState = stateRead.then((r) => ("state" in r ? r.state : null));
  // Paths that may sit on a network mount are asked about by a `stat` child first; others on demand.
  const probes = new Map<string, Promise<boolean>>();
  const hung = (p: string) => {
    if (!probes.has(p)) probes.set(p, pathAnswers(env, p, probeMs()).then((answered) => !answered));
    return probes.get(p)!;
  };
  hung(root);
  hung(tmp);
  const ctx: HealthContext = {
    env,
    root,
    tmp,
    minFreeBytes: opts.minFreeBytes ?? Number(env.vars.MLAGENT_HEALTH_MIN_FREE_GIB ?? 1) * GIB,
    xidWindowS: opts.xidWindowS ?? Number(env.vars.MLAGENT_XID_WINDOW_S ?? 3600),
    probeMs,
    hung,
    nodeState,
    found: { gpu: null, xids: null, venvs: null, cache: null },
  };

  const results = await runSideBySide(
    env,
    HEALTH_TASKS.map((t) => ({ deadlineMs: checksMs, run: () => t.run(ctx) })),
    left(),
  );
  const checks: HealthCheck[] = [];
  const timedOut: string[] = [];
  for (const [i, r] of results.entries()) {
    const t = HEALTH_TASKS[i];
    if (r.kind === "done") {
      for (const c of r.value) {
        if (c.timed_out) timedOut.push(c.id);
        checks.push({ ...c, duration_ms: r.ms });
      }
    } else if (r.kind === "timed-out") {
      timedOut.push(...t.ids);
      for (const id of t.ids) {
        checks.push({
          ...check(id, "unknown", `${t.what} did not finish within ${r.ms} ms: cannot judge`, {
            timedOut: true,
          }),
          duration_ms: r.ms,
        });
      }
    } else {
      // A bug in a check must neither look healthy nor drain the node.
      const msg = r.error instanceof Error ? r.error.message : String(r.error);
      for (const id of t.ids) {
        checks.push({ ...check(id, "unknown", `internal error: ${msg}`), duration_ms: r.ms });
      }
    }
  }
  const cuda = ctx.found.venvs
    ? judgeCuda(ctx.found.gpu, ctx.found.venvs)
    : { check: check("cuda.wheels", "skip", "not judged: the venvs were not read"), venvs: [] };
  checks.push(cuda.check);

  const verdict = verdictOf(checks);
  const state = await Promise.race([stateRead, Promise.resolve({ problem: "no answer in time" } as const)]);
  const nodeStateNow: NodeState | null = "state" in state ? state.state : null;
  const planned = planAction({
    scheduler: opts.scheduler,
    node: opts.node,
    verdict,
    reason: reasonFor(checks),
    state: nodeStateNow,
    stateProblem: "problem" in state ? state.problem : null,
    judged: judgedIds(checks),
    enabled: opts.drain,
    dryRun: opts.dryRun,
    unknownWhy: checks.filter((c) => c.status === "unknown").map((c) => c.id).join(", "),
  });
  const action = await applyAction(env, planned, total - (env.now() - started));
  if (opts.scheduler && action.kind !== "none" && !action.dry_run) {
    await appendDrainLog(env, {
      by: "health",
      scheduler: opts.scheduler as SchedulerKind,
      node: opts.node,
      action,
    });
  }
  const gpu = ctx.found.gpu;
  return {
    ok: verdict === "healthy",
    verdict,
    exit_code: exitCodeFor(verdict),
    host: env.hostname(),
    node: opts.node,
    scheduler: opts.scheduler,
    checked_at: isoTime(started),
    duration_ms: env.now() - started,
    timeout_ms: total,
    checks,
    timed_out: [...new Set(timedOut)],
    facts: {
      driver_version: gpu?.driver_version ?? null,
      cuda_version: gpu?.cuda_version ?? null,
      gpu_count: gpu ? gpu.devices.length : null,
      expected_gpus: nodeStateNow?.gres_gpus ?? null,
      gpus: gpu ? gpuFaults(gpu.devices) : [],
      xids: (ctx.found.xids?.recent ?? []).map((x) => ({
        code: x.code,
        pci: x.pci,
        time: x.time_ms ? isoTime(x.time_ms) : null,
        severity: xidSeverity(x.code),
      })),
      venvs: cuda.venvs,
      cache: ctx.found.cache
        ? {
          path: ctx.found.cache.path,
          corrupt_entries: ctx.found.cache.corrupt_entries,
          last_heal_at: ctx.found.cache.last_heal_at,
          problem: ctx.found.cache.problem,
        }
        : null,
    },
    node_state: nodeStateNow,
    node_state_problem: "problem" in state && opts.scheduler ? state.problem : null,
    action,
    internal_error: null,
  };
}

/**
 * The report when mlagent itself failed: verdict unknown, nothing asked of the scheduler, the error named.
 * Health must never drain a node for its own crash.
 */
export function internalErrorReport(
  env: Env,
  opts: HealthOptions,
  started: number,
  error: unknown,
): HealthReport {
  const msg = error instanceof Error ? error.message : String(error);
  return {
    ok: false,
    verdict: "unknown",
    exit_code: EXIT.cannotJudge,
    host: env.hostname(),
    node: opts.node,
    scheduler: opts.scheduler,
    checked_at: isoTime(started),
    duration_ms: env.now() - started,
    timeout_ms: opts.timeoutMs,
    checks: [],
    timed_out: [],
    facts: {
      driver_version: null,
      cuda_version: null,
      gpu_count: null,
      expected_gpus: null,
      gpus: [],
      xids: [],
      venvs: [],
      cache: null,
    },
    node_state: null,
    node_state_problem: null,
    action: {
      kind: "none",
      reason: null,
      why: `mlagent failed (${msg}): left as it is`,
      commands: [],
      dry_run: opts.dryRun,
      done: false,
      error: null,
    },
    internal_error: msg,
  };
}
