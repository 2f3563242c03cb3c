/**
 * Under Slurm a Prolog that exits non-zero drains the node with only "Prolog error" as the reason. With
 * --drain the prologue sets its own reason first, naming the failed check, through the drain module `health`
 * uses (so an admin's drain is never overwritten, and `health` lifts it once the node is healthy again).
 * Slurm keeps a reason set before the Prolog fails.
 */
import type { Env } from "../core/env.ts";
import {
  appendDrainLog,
  applyAction,
  defaultNodeName,
  makeReason,
  planAction,
  readNodeState,
  type SchedulerAction,
} from "../health/mod.ts";
import type { PrologueReport } from "./types.ts";

/** Drains this node for the report's node fault (Slurm only); null when there is nothing to do. */
export async function drainForNodeFault(
  env: Env,
  report: PrologueReport,
  timeoutMs = 5000,
): Promise<SchedulerAction | null> {
  if (report.verdict !== "node-fault" || report.scheduler !== "slurm") return null;
  const fails = report.checks.filter((c) => c.status === "fail" && c.fault === "node");
  if (!fails.length) return null;
  const node = defaultNodeName(env, "slurm");
  // A check's message can run long (every signal of every GPU): the reason keeps the first clause of the
  // first failure and names the other failing checks; the prologue log has the rest.
  const detail = [fails[0].message.split("; ")[0], ...fails.slice(1).map((c) => c.id)].join("; ");
  const reason = makeReason(fails[0].id, detail, `prologue${report.job_id ? `, job ${report.job_id}` : ""}`);
  const read = await readNodeState(env, "slurm", node, timeoutMs);
  const planned = planAction({
    scheduler: "slurm",
    node,
    verdict: "unhealthy",
    reason,
    state: "state" in read ? read.state : null,
    stateProblem: "problem" in read ? read.problem : null,
    judged: new Set(),
    enabled: true,
    dryRun: false,
  });
  const action = await applyAction(env, planned, timeoutMs);
  if (action.kind !== "none") {
    await appendDrainLog(env, { by: "prologue", scheduler: "slurm", node, action, job_id: report.job_id });
  }
  return action;
}
