/**
 * The job prologue: decides in a bounded time whether this node may start this job. Every check runs side
 * by side under its own deadline, its probes in their own process groups (agent/run.ts), and the whole run
 * under one more; a check that misses its deadline is reported as timed out and never awaited again, so a
 * hung nvidia-smi or a dead NFS mount cannot hang a job start. Filesystem paths that may sit on a network
 * mount are touched first by a `stat` child with a timeout; in-process reads follow only where it answered.
 *
 * Each problem is a node fault (another node would do: bad GPU, hung driver, dead mount, full disk) or a
 * job fault (the job's own making: unknown profile, venv failed to install, too few GPUs asked for), and the
 * exit code follows the scheduler (see exitCodeFor).
 */
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import { isoTime } from "../core/output.ts";
import { absolute, modelsRoot, venvDir as venvDirOf, venvRoot } from "../core/paths.ts";
import { schedulerJob } from "../core/proc.ts";
import { PROLOGUE_TASKS, type PrologueContext } from "./checks.ts";
import { type Timed, within } from "../core/deadline.ts";
import { pathAnswers } from "../core/mounts.ts";
import { evaluateDriverCompat } from "./gpus.ts";
import { deviceLabel, type GpuRequest, gpuRequest } from "./scheduler.ts";
import type { PrologueCheck, PrologueOptions, PrologueReport, PrologueStatus } from "./types.ts";
import { check, exitCodeFor, GIB, verdictOf } from "./verdict.ts";
import { numberVar } from "../core/vars.ts";

export { matchRequestedDevices } from "./gpus.ts";
export { appendPrologueLog, logLine } from "./log.ts";
export type { PrologueCheck, PrologueReport } from "./types.ts";
export { exitCodeFor, jobFaultReport, verdictOf } from "./verdict.ts";

/** Runs the prologue. Never throws for a node or job problem: the report carries it. */
export async function runPrologue(env: Env, opts: PrologueOptions): Promise<PrologueReport> {
  const started = env.now();
  const overallMs = opts.timeoutMs;
  const checkMs = Math.max(100, Math.min(opts.checkTimeoutMs ?? overallMs - 500, overallMs));
  const left = () => Math.max(50, overallMs - (env.now() - started));
  const probeMs = () => Math.max(50, Math.min(checkMs, left()) - 50);
  const profile = opts.profile;
  const job = schedulerJob(env);

  let request: GpuRequest | null = null;
  const early: PrologueCheck[] = [];
  try {
    request = gpuRequest(env.vars, opts.scheduler);
  } catch (e) {
    // By hand a malformed variable is bad input (exit 2); inside a job it is the job's fault.
    if (!(e instanceof MlagentError) || opts.scheduler === null) throw e;
    early.push(check("gpu.request", "fail", e.message, { fault: "job", remedy: e.hint ?? null }));
  }

  const root = venvRoot(env, opts.root);
  const tmp = env.vars.TMPDIR ? absolute(env, env.vars.TMPDIR) : "/tmp";
  const mroot = modelsRoot(env);
  const venvPath = profile ? venvDirOf(env, profile.name, opts.root) : null;
  // Paths that may sit on a network mount are asked about by a `stat` child first (see the module doc): the
  // deepest one read in process, the venv itself rather than its root. A client's cache may still answer for
  // the root of a dead mount (sshfs's does, as NFS's attribute cache does) while a name below it waits for
  // the server, and the venv check reads the venv in process once its path answered.
  const fsPaths = [venvPath ?? root, tmp, ...(profile?.models.length ? [mroot] : [])];
  // Each path's answer on its own: the venv check starts its interpreter once the venv answered, not once
  // the slowest of the paths did.
  const fsLimit = Math.min(checkMs, left());
  const fsAnswered = new Map([...new Set(fsPaths)].map((p) => [
    p,
    within(env, fsLimit, () => pathAnswers(env, p, probeMs())).then((r) => r.kind === "done" && r.value),
  ]));
  // A path answered when it or a path below it did: the stat walked through it.
  const answerFor = (p: string) =>
    fsAnswered.get(p) ?? [...fsAnswered].find(([q]) => q.startsWith(p.endsWith("/") ? p : `${p}/`))?.[1];
  const running = new Map<string, Promise<Timed<PrologueCheck[]>>>();
  const ctx: PrologueContext = {
    env,
    opts,
    profile,
    request,
    root,
    venvPath,
    tmp,
    modelsRoot: mroot,
    minFreeBytes: opts.minFreeBytes ?? numberVar(env, "MLAGENT_PROLOGUE_MIN_FREE_GIB", 1) * GIB,
    xidWindowS: opts.xidWindowS ?? numberVar(env, "MLAGENT_XID_WINDOW_S", 3600),
    left,
    probeMs,
    hung: async (p) => !(await (answerFor(p) ?? false)),
    fsHung: (id, role, p) =>
      check(id, "fail", `${role} ${p} did not answer a stat within ${probeMs()} ms (dead network mount?)`, {
        fault: "node",
        remedy:
          "check the mount (`mount | grep`, `dmesg` for NFS 'not responding'); drain the node until it answers",
        timedOut: true,
      }),
    settled: (id) => running.get(id) ?? Promise.resolve(),
    found: { gpu: null, venv: null, installed: null },
  };

  // Every task that applies runs at once, each under its own deadline.
  const tasks = PROLOGUE_TASKS.filter((t) => t.applies(ctx)).map((t) => {
    const p = within(env, t.deadlineMs?.(ctx) ?? Math.min(checkMs, left()), () => t.run(ctx));
    for (const id of t.ids) running.set(id, p);
    return { task: t, p };
  });
  // The overall deadline bounds the wait for all of them.
  const all = await within(env, left(), () => Promise.all(tasks.map((t) => t.p)));
  const checks: PrologueCheck[] = [...early];
  const timedOutIds: string[] = [];
  for (const [i, { task: t, p }] of tasks.entries()) {
    // A task still running at the overall deadline counts as timed out, like one past its own.
    const r: Timed<PrologueCheck[]> = all.kind === "done" ? all.value[i] : await Promise.race([
      p,
      Promise.resolve({ kind: "timed-out", ms: Math.round(env.now() - started) } as const),
    ]);
    if (r.kind === "error") {
      // A bug in a check must not look like a healthy node, nor drain one: report it as the job's problem.
      const msg = r.error instanceof Error ? r.error.message : String(r.error);
      for (const id of t.ids) {
        checks.push({ ...check(id, "fail", `internal error: ${msg}`, { fault: "job" }), duration_ms: r.ms });
      }
    } else if (r.kind === "timed-out") {
      timedOutIds.push(...t.ids);
      const status: PrologueStatus = t.fault === "warn" ? "warn" : "fail";
      for (const id of t.ids) {
        checks.push({
          ...check(id, status, `${t.what(ctx)} did not finish within ${r.ms} ms`, {
            fault: t.fault === "warn" ? undefined : t.fault,
            remedy: t.fault === "node"
              ? "A probe hung: check the driver (`nvidia-smi`, `dmesg`) and mounts on this node"
              : null,
            timedOut: true,
          }),
          duration_ms: r.ms,
        });
      }
    } else {
      for (const c of r.value) {
        if (c.timed_out) timedOutIds.push(c.id);
        checks.push({ ...c, duration_ms: r.ms });
      }
    }
  }
  if (profile && ctx.found.gpu) checks.push(evaluateDriverCompat(ctx.found.gpu, profile, ctx.found.venv));
  const verdict = verdictOf(checks);
  return {
    ok: verdict === "run",
    verdict,
    exit_code: exitCodeFor(verdict, opts.scheduler, env.vars),
    scheduler: opts.scheduler,
    host: env.hostname(),
    job_id: job?.job_id ?? null,
    profile: profile?.name ?? null,
    gpu_request: request
      ? { source: request.source, count: request.count, devices: request.devices?.map(deviceLabel) ?? null }
      : null,
    checks,
    timed_out: [...new Set(timedOutIds)],
    started_at: isoTime(started),
    duration_ms: env.now() - started,
    installed: ctx.found.installed,
  };
}
