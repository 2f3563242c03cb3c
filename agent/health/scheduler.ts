/**
 * Draining and resuming a node through the scheduler's own commands, as LBNL NHC does: read the node's
 * current state and reason first, drain with a reason that starts with "mlagent:" and names the check, and
 * lift only a drain whose reason mlagent set (never one an admin set). Shared by `health` and the prologue.
 *
 *   Slurm  scontrol --oneliner show node NODE                       (State=IDLE+DRAIN ... Reason=TEXT [root@time])
 *          scontrol update nodename=NODE state=drain reason=TEXT   /   state=resume
 *   LSF    bhosts -l HOST                                           (STATUS closed_Adm, ADMIN ACTION COMMENT: "TEXT")
 *          badmin hclose -C TEXT HOST                              /   badmin hopen -C TEXT HOST
 *
 * Parsing and planning are pure; only readNodeState and applyAction run anything, through the Env's runner.
 */
import type { Env } from "../core/env.ts";
import { findOnPath, quoteArg, type RunResult } from "../core/run.ts";
import { stateDir } from "../core/paths.ts";
import { isoTime } from "../core/output.ts";
import { within } from "../core/deadline.ts";
import type { ActionKind, HealthVerdict, NodeState, SchedulerAction } from "./types.ts";

export type SchedulerKind = "slurm" | "lsf";

/** Every reason mlagent sets starts with this; nothing else is ever lifted. */
export const REASON_PREFIX = "mlagent:";
/** Slurm keeps any length, but sinfo -R and bhosts columns are read by people: keep reasons short. */
export const MAX_REASON_CHARS = 200;

/**
 * The scheduler on this node: Slurm when slurmd's variables are set (SLURMD_NODENAME in the Prolog and
 * HealthCheckProgram, SLURM_JOB_ID in jobs), LSF when LSF's are (LSF_ENVDIR, LSB_JOBID); else whichever
 * admin command is on PATH (scontrol, then badmin); null when neither.
 */
export function detectScheduler(vars: Record<string, string>): SchedulerKind | null {
  if (vars.SLURMD_NODENAME || vars.SLURM_JOB_ID || vars.SLURM_CONF) return "slurm";
  if (vars.LSB_JOBID || vars.LSF_ENVDIR || vars.LSF_BINDIR) return "lsf";
  if (findOnPath("scontrol", vars.PATH)) return "slurm";
  if (findOnPath("badmin", vars.PATH)) return "lsf";
  return null;
}

/** The node's name in the scheduler: SLURMD_NODENAME under Slurm, else the short host name; LSF the host name. */
export function defaultNodeName(env: Env, scheduler: SchedulerKind | null): string {
  if (scheduler === "slurm") return env.vars.SLURMD_NODENAME || env.hostname().split(".")[0];
  return env.hostname();
}

/** `mlagent: <id> <detail>[ (<context>)]`, one line, at most MAX_REASON_CHARS. */
export function makeReason(id: string, detail: string, context?: string): string {
  // Control characters (a newline from a check's message) would break the reason into lines in sinfo -R.
  // deno-lint-ignore no-control-regex
  const clean = (s: string) => s.replace(/[\x00-\x1f\x7f]+/g, " ").replace(/\s+/g, " ").trim();
  const tail = context ? ` (${clean(context)})` : "";
  let body = `${REASON_PREFIX} ${clean(id)} ${clean(detail)}`.trim();
  const room = MAX_REASON_CHARS - tail.length;
  if (body.length > room) body = body.slice(0, Math.max(0, room - 3)).trimEnd() + "...";
  return body + tail;
}

/** The check id a reason names (`mlagent: gpu.health GPU 3 ...` -> gpu.health); null for other reasons. */
export function reasonCheckId(reason: string | null): string | null {
  if (!reason || !reason.startsWith(REASON_PREFIX)) return null;
  return /^\S+/.exec(reason.slice(REASON_PREFIX.length).trimStart())?.[0] ?? null;
}

/** The GPU count in a Slurm Gres string: `gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:a100:2,gpu:v100:1`; null if none. */
export function slurmGresGpus(gres: string | undefined): number | null {
  if (!gres || gres === "(null)") return null;
  let total: number | null = null;
  for (const part of gres.split(/,(?![^(]*\))/)) {
    const m = /^gpu(?::[^:(]+)?:(\d+)/.exec(part.trim());
    if (m) total = (total ?? 0) + Number(m[1]);
  }
  return total;
}

/**
 * One `scontrol --oneliner show node NODE` line. Reason is last in the line and may hold spaces and `=`, so
 * it is cut at " Reason=" and stripped of the `[user@time]` Slurm appends; the other fields are single words.
 */
export function parseSlurmNode(line: string, node: string): NodeState | null {
  const text = line.trim();
  if (!/^NodeName=/.test(text)) return null;
  const at = text.indexOf(" Reason=");
  const head = at >= 0 ? text.slice(0, at) : text;
  const field = (k: string) => new RegExp(`(?:^| )${k}=(\\S*)`).exec(head)?.[1];
  const state = field("State") ?? "UNKNOWN";
  let reason: string | null = null;
  if (at >= 0) {
    const raw = text.slice(at + " Reason=".length);
    reason = raw.replace(/\s*\[[^\]\s@]+@[^\]\s]+\]\s*$/, "").trim() || null;
    if (reason === "(null)") reason = null;
  }
  const flags = state.split("+");
  const drained = flags.some((f) => /^(DRAIN|DRAINED|DRAINING|FAIL|FAILING)$/.test(f)) ||
    /^DOWN/.test(flags[0]);
  return {
    scheduler: "slurm",
    node: field("NodeName") ?? node,
    state,
    drained,
    reason,
    by_mlagent: !!reason?.startsWith(REASON_PREFIX),
    gres_gpus: slurmGresGpus(field("Gres")),
  };
}

/**
 * `bhosts -l HOST`: the STATUS column of the row under the STATUS header, and the admin's comment
 * (` ADMIN ACTION COMMENT: "TEXT"`). Only closed_Adm is an administrator's close; closed_Full, closed_Busy
 * and the like are LSF's own and pass by themselves; unavail and unreach are down.
 */
export function parseBhostsLong(text: string, host: string): NodeState | null {
  const lines = text.split("\n");
  const header = lines.findIndex((l) => /^\s*STATUS\s+/.test(l));
  if (header < 0) return null;
  const status = lines.slice(header + 1).find((l) => l.trim())?.trim().split(/\s+/)[0];
  if (!status) return null;
  const name = /^\s*HOST\s+(\S+)/m.exec(text)?.[1] ?? host;
  const comment = /^\s*ADMIN ACTION COMMENT:\s*(.*)$/m.exec(text)?.[1]?.trim().replace(/^"(.*)"$/, "$1") ||
    null;
  const drained = status === "closed_Adm" || status === "unavail" || status === "unreach";
  const reason = status === "closed_Adm" ? comment : null;
  return {
    scheduler: "lsf",
    node: name,
    state: status,
    drained,
    reason,
    by_mlagent: !!reason?.startsWith(REASON_PREFIX),
    gres_gpus: null,
  };
}

const failure = (r: RunResult): string =>
  r.kind === "not-found"
    ? `${r.program} is not on PATH`
    : r.kind === "timed-out"
    ? `${r.argv.map(quoteArg).join(" ")} did not answer within ${r.afterMs} ms`
    : `${r.argv.map(quoteArg).join(" ")} exited ${r.code}${
      r.stderr.trim() ? `: ${r.stderr.trim().split("\n")[0]}` : ""
    }`;

/** Asks the scheduler about the node; a problem (command missing, node unknown, no answer) is data. */
export async function readNodeState(
  env: Env,
  scheduler: SchedulerKind,
  node: string,
  timeoutMs: number,
): Promise<{ state: NodeState } | { problem: string }> {
  const argv = scheduler === "slurm"
    ? ["scontrol", "--oneliner", "show", "node", node]
    : ["bhosts", "-l", node];
  const r = await env.run(argv, { timeoutMs });
  if (r.kind !== "exited" || r.code !== 0) return { problem: failure(r) };
  const state = scheduler === "slurm"
    ? parseSlurmNode(r.stdout.split("\n").find((l) => l.startsWith("NodeName=")) ?? "", node)
    : parseBhostsLong(r.stdout, node);
  if (!state) {
    return { problem: `${argv.join(" ")} printed nothing mlagent can read: ${r.stdout.slice(0, 200)}` };
  }
  return { state };
}

/** The commands for an action, as argv (never through a shell: the reason is one argument). */
export function commandsFor(
  scheduler: SchedulerKind,
  node: string,
  kind: ActionKind,
  reason: string | null,
): string[][] {
  if (kind === "none") return [];
  if (scheduler === "slurm") {
    return kind === "resume"
      ? [["scontrol", "update", `nodename=${node}`, "state=resume"]]
      : [["scontrol", "update", `nodename=${node}`, "state=drain", `reason=${reason}`]];
  }
  return kind === "resume"
    ? [["badmin", "hopen", "-C", `${REASON_PREFIX} healthy again`, node]]
    : [["badmin", "hclose", "-C", reason ?? REASON_PREFIX, node]];
}

export interface PlanInput {
  scheduler: SchedulerKind | null;
  node: string;
  verdict: HealthVerdict;
  /** The reason to set when unhealthy. */
  reason: string | null;
  state: NodeState | null;
  stateProblem: string | null;
  /** Check ids the caller judged this run: a drain naming one of them may be lifted once healthy. */
  judged: ReadonlySet<string>;
  /** false with --no-drain: say what would be done, do nothing. */
  enabled: boolean;
  dryRun: boolean;
  /** Why the verdict is unknown, for the message. */
  unknownWhy?: string;
}

/**
 * What to do with the node, decided from the verdict and its current state alone. A node is drained only on
 * a judged fault and only when nobody else drained it; it is resumed only when its reason is mlagent's and
 * names a check this run judged and found passing (a prologue drain for a check health cannot judge, such
 * as a job's venv, stays until an admin lifts it). Anything uncertain leaves the node as it is.
 */
export function planAction(p: PlanInput): SchedulerAction {
  const none = (why: string): SchedulerAction => ({
    kind: "none",
    reason: null,
    why,
    commands: [],
    dry_run: p.dryRun,
    done: false,
    error: null,
  });
  const act = (kind: ActionKind, why: string, reason: string | null = null): SchedulerAction => {
    if (!p.enabled) return none(`${why}; not done (--no-drain)`);
    return {
      kind,
      reason,
      why,
      commands: commandsFor(p.scheduler!, p.node, kind, reason),
      dry_run: p.dryRun,
      done: false,
      error: null,
    };
  };
  if (!p.scheduler) return none("no scheduler on this node: nothing to drain or resume");
  if (p.verdict === "unknown") {
    return none(`cannot judge this node${p.unknownWhy ? ` (${p.unknownWhy})` : ""}: left as it is`);
  }
  // A dry run still shows the commands when the state cannot be read, as for a node in service.
  const s = p.state ?? (p.dryRun ? assumedInService(p.node, p.scheduler) : null);
  if (!s) return none(`could not read the node's state (${p.stateProblem ?? "no answer"}): left as it is`);
  const theirs = s.reason ? `"${s.reason}"` : `no reason (state ${s.state})`;
  if (p.verdict === "unhealthy") {
    if (s.drained && !s.by_mlagent) {
      return none(`already drained by someone else with ${theirs}: their reason is kept`);
    }
    if (s.drained && s.reason === p.reason) return none("already drained by mlagent for this fault");
    if (s.drained) {
      return act("update-reason", `drained by mlagent for "${s.reason}"; the fault now is another`, p.reason);
    }
    return act("drain", `node fault: ${p.reason}`, p.reason);
  }
  if (!s.drained) return none("healthy; the node is in service");
  if (!s.by_mlagent) return none(`healthy, but drained by someone else with ${theirs}: left drained`);
  const id = reasonCheckId(s.reason);
  if (!id || !p.judged.has(id)) {
    return none(
      `healthy, but drained by mlagent for ${
        id ?? "an unnamed check"
      } ("${s.reason}"), which health does not judge: resume it by hand once fixed`,
    );
  }
  return act("resume", `healthy again; lifting mlagent's drain "${s.reason}"`);
}

function assumedInService(node: string, scheduler: SchedulerKind): NodeState {
  return {
    scheduler,
    node,
    state: "unknown (assumed in service)",
    drained: false,
    reason: null,
    by_mlagent: false,
    gres_gpus: null,
  };
}

/** Runs the action's commands (none with dryRun); failures are recorded, never thrown. */
export async function applyAction(
  env: Env,
  action: SchedulerAction,
  timeoutMs: number,
): Promise<SchedulerAction> {
  if (action.kind === "none" || action.dry_run) return action;
  for (const argv of action.commands) {
    const r = await env.run(argv, { timeoutMs: Math.max(1000, timeoutMs) });
    if (r.kind !== "exited" || r.code !== 0) return { ...action, done: false, error: failure(r) };
  }
  return { ...action, done: true };
}

/** One line per drain, resume or failed attempt in $XDG_STATE_HOME/mlagent/drain.log; bounded, best effort. */
export async function appendDrainLog(
  env: Env,
  record: {
    by: "health" | "prologue";
    scheduler: SchedulerKind;
    node: string;
    action: SchedulerAction;
    job_id?: string | null;
  },
): Promise<string | null> {
  const dir = stateDir(env);
  const path = `${dir}/drain.log`;
  const line = JSON.stringify({
    time: isoTime(env.now()),
    host: env.hostname(),
    by: record.by,
    scheduler: record.scheduler,
    node: record.node,
    job_id: record.job_id ?? null,
    action: record.action.kind,
    reason: record.action.reason,
    done: record.action.done,
    error: record.action.error,
    commands: record.action.commands.map((c) => c.map(quoteArg).join(" ")),
  }) + "\n";
  const r = await within(env, 2000, async () => {
    await env.fs.mkdir(dir, { recursive: true });
    await env.fs.writeTextFile(path, line, { append: true, mode: 0o644 });
    return path;
  });
  return r.kind === "done" ? r.value : null;
}

/** A command line for people (`would run: ...`). */
export const showCommand = (argv: string[]) => argv.map(quoteArg).join(" ");
