/** Building the venv under its lock: create or repair, run the stages that changed, verify, record `ready` last. */
import type { Env } from "../core/env.ts";
import { failed, fromSystemError, interrupted as interruptedError, MlagentError } from "../core/errors.ts";

import { createVenv, inspectVenv, listInstalled } from "./venv.ts";
import { readVenvState, stateFileOf, type VenvState, writeVenvState } from "./state.ts";
import { cacheLockSpec, withLock } from "../lock/mod.ts";
import { cacheRootOf, resolveCacheDir } from "../cache/mod.ts";
import { bootId, isAlive, selfIdentity } from "../core/proc.ts";
import { indentBlock, isoTime, plural } from "../core/output.ts";

import { baseReport } from "./report.ts";
import { runStage, type StageOutcome } from "./stages.ts";
import type {
  InstallAction,
  InstallOptions,
  InstallPlan,
  InstallReport,
  PlannedStage,
  StageReport,
} from "./types.ts";
import { driftedPins, profilePins } from "./pins.ts";
import { checkIntegrity, describeIntegrity, type IntegrityReport, pinnedDistributions } from "./integrity.ts";
import { type InstallerChoice, stageCommand, stageIndexes } from "./installer.ts";
import type { Stage } from "../profiles/types.ts";
import { runVerifyStep } from "./verify_steps.ts";
import { stampInterpreter } from "./stamp.ts";

function ownerDead(env: Env, st: VenvState): boolean {
  const o = st.owner;
  if (o.boot_id && bootId(env) && o.boot_id !== bootId(env)) return true;
  // We hold the venv lock, so an owner on another host cannot still be installing.
  if (o.host !== env.hostname()) return true;
  return o.pid === env.pid ? false : !isAlive(env, o.pid, o.pid_start_time);
}

export async function installLocked(
  env: Env,
  plan: InstallPlan,
  opts: InstallOptions,
  started: number,
): Promise<InstallReport> {
  const { venvDir } = plan;
  const prior = await readVenvState(env, venvDir);
  const prev = prior.kind === "ok" ? prior.value : null;
  const found = await inspectVenv(env, venvDir);
  let action: InstallAction = "updated";
  let rebuild = !!opts.force;
  if (found.kind === "not-a-venv") {
    throw failed(
      `${venvDir} exists and is not a venv (${
        plural(found.entries, "entry", "entries")
      }); mlagent will not delete it`,
      `move it away, or install under another root (--root or MLAGENT_ROOT)`,
    );
  }
  if (prev?.status === "installing" && ownerDead(env, prev)) {
    env.log.warn(
      `${venvDir} was left installing by pid ${prev.owner.pid} on ${prev.owner.host}, which is gone; repairing`,
    );
    action = "repaired";
  }
  if (found.kind === "broken") {
    env.log.warn(`${found.reason}; rebuilding the venv`);
    rebuild = true;
  } else if (found.kind === "ok") {
    if (
      found.python.version !== plan.python.version ||
      (prev && prev.plan.python_executable !== plan.python.executable)
    ) {
      env.log.info(
        `interpreter changed (${
          prev?.plan.python_executable ?? found.python.executable
        } ${found.python.version} -> ` +
          `${plan.python.executable} ${plan.python.version}); rebuilding the venv`,
      );
      rebuild = true;
    } else if (!prev) {
      // A venv with no record of what is in it (or an unreadable one): trust nothing, rebuild.
      env.log.warn(
        `${venvDir} is a venv without a readable mlagent state${
          prior.kind === "corrupt" ? ` (${prior.error})` : ""
        }; rebuilding it`,
      );
      rebuild = true;
    }
  }
  if (found.kind === "missing") action = "created";
  else if (rebuild) action = "rebuilt";

  const self = selfIdentity(env);
  const state: VenvState = {
    profile: plan.profile.name,
    status: "installing",
    fingerprint: plan.fingerprint,
    plan: {
      profile_sha256: plan.profileSha256,
      profile_source: plan.profileSource,
      cuda_variant: plan.cuda?.name ?? null,
      python_executable: plan.python.executable,
      python_version: plan.python.version,
      installer: plan.installer.kind,
    },
    stages: plan.stages.map((s) => {
      const old = prev?.stages.find((p) => p.name === s.name);
      const done = !rebuild && old?.status === "done" && old.fingerprint === s.fingerprint;
      return {
        name: s.name,
        fingerprint: s.fingerprint,
        status: done ? "done" as const : "pending" as const,
      };
    }),
    owner: { host: env.hostname(), pid: self.pid, pid_start_time: self.startTime, boot_id: self.bootId },
    started_at: isoTime(started),
    updated_at: isoTime(env.now()),
    finished_at: null,
    packages: prev?.packages ?? {},
    error: null,
  };
  // A stage counts as done only if every stage before it is done too (fingerprints chain, but be explicit).
  let chainOk = true;
  for (const s of state.stages) {
    if (s.status !== "done") chainOk = false;
    else if (!chainOk) s.status = "pending";
  }

  // Distributions of stages already done that are damaged (files gone, another version): reinstalled alone
  // below, before the pending stages run; the fast stat check, so an intact venv costs milliseconds.
  const doneStages = new Set(state.stages.filter((s) => s.status === "done").map((s) => s.name));
  const damage = !rebuild && found.kind === "ok" && doneStages.size
    ? await checkIntegrity(
      env,
      venvDir,
      pinnedDistributions(plan.profile).filter((d) => doneStages.has(d.stage)),
      "full",
    )
    : null;
  if (damage && !damage.ok) {
    env.log.warn(`${venvDir} is damaged (${describeIntegrity(damage)}); reinstalling only those packages`);
    action = "repaired";
  }

  const removeVenv = async () => {
    // State first: a reader that sees no state file never trusts the venv being removed.
    await env.fs.remove(stateFileOf(venvDir)).catch(() => {});
    await env.fs.remove(venvDir, { recursive: true });
  };
  if (rebuild && found.kind !== "missing") await removeVenv();
  const save = async () => {
    state.updated_at = isoTime(env.now());
    await writeVenvState(env, venvDir, state);
  };
  const fail = async (stage: string | null, kind: string, err: MlagentError) => {
    state.status = "failed";
    state.error = { stage, kind, message: err.message };
    state.finished_at = isoTime(env.now());
    try {
      await save();
    } catch (e) {
      // Say so: otherwise the next run finds "installing" by a dead pid and reports a crash that was not one.
      const why = fromSystemError(e)?.message ?? (e instanceof Error ? e.message : String(e));
      return new MlagentError(
        err.code,
        `${err.message}\n(the failure could not be recorded in ${stateFileOf(venvDir)}: ${why})`,
        err.hint,
        { ...err.details, state_not_recorded: why },
      );
    }
    return err;
  };

  // Ctrl-C reaches only our process group, and installers run in their own: stop them ourselves, record
  // the venv as failed, and let the next run repair it. A SIGKILL is handled by the next run instead.
  const interrupt = new AbortController();
  const unhook = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((sig) =>
    env.onSignal(sig, () => {
      if (!interrupt.signal.aborted) env.log.warn(`${sig}: stopping the installer`);
      interrupt.abort(sig);
    })
  );
  const interrupted = () =>
    interruptedError(
      `install ${plan.profile.name}: interrupted (${interrupt.signal.reason}); the venv is marked failed`,
      "run the install again to finish it",
    );
  try {
    // Recorded before the venv exists, so a run killed while creating it is seen as unfinished.
    await save();
    if (rebuild || found.kind === "missing") {
      env.log.info(`creating venv ${venvDir} with Python ${plan.python.version} (${plan.python.executable})`);
      try {
        await createVenv(env, plan.python.executable, venvDir, {
          uv: plan.installer.uv,
          withPip: true,
          signal: interrupt.signal,
        });
      } catch (e) {
        if (interrupt.signal.aborted) throw await fail(null, "interrupted", interrupted());
        if (e instanceof MlagentError) throw await fail(null, "venv", e);
        throw e;
      }
      await save();
    }
    const ctx: RunContext = { action, started, save, fail, interrupt, interrupted };
    const repairs: StageReport[] = [];
    if (damage && !damage.ok) {
      const repaired = await repairDamaged(env, plan, damage, interrupt.signal, repairs);
      if (interrupt.signal.aborted) throw await fail(null, "interrupted", interrupted());
      if (!repaired) {
        // A targeted reinstall that does not take (the cache and the index both lack the wheel, a build that
        // no longer works) falls back to what always works: a fresh venv.
        env.log.warn(`reinstalling the damaged packages did not repair ${venvDir}; rebuilding it`);
        ctx.action = "rebuilt";
        repairs.length = 0;
        await removeVenv();
        for (const st of state.stages) st.status = "pending";
        await save();
        await createVenv(env, plan.python.executable, venvDir, {
          uv: plan.installer.uv,
          withPip: true,
          signal: interrupt.signal,
        }).catch(async (e) => {
          if (e instanceof MlagentError) throw await fail(null, "venv", e);
          throw e;
        });
      }
    }
    const report = await runStagesAndVerify(env, plan, state, ctx);
    return { ...report, stages: [...repairs, ...report.stages] };
  } finally {
    for (const u of unhook) u();
  }
}

interface RunContext {
  action: InstallAction;
  started: number;
  save: () => Promise<void>;
  fail: (stage: string | null, kind: string, err: MlagentError) => Promise<MlagentError>;
  interrupt: AbortController;
  interrupted: () => MlagentError;
}

async function runStagesAndVerify(
  env: Env,
  plan: InstallPlan,
  state: VenvState,
  { action, save, fail, interrupt, interrupted }: RunContext,
): Promise<InstallReport> {
  const { venvDir } = plan;
  if (plan.cacheDir) {
    await resolveCacheDir(env); // creates the root 0700 and refuses one that is not ours
    await env.fs.mkdir(plan.cacheDir, { recursive: true });
  }

  const stageReports: StageReport[] = [];
  let installer = plan.installer;
  for (let i = 0; i < plan.stages.length; i++) {
    const ps = plan.stages[i];
    const st = state.stages[i];
    if (st.status === "done") {
      stageReports.push({
        name: ps.name,
        action: "skipped",
        attempts: 0,
        duration_ms: 0,
        argv: ps.command.argv,
      });
      continue;
    }
    const stage = plan.profile.stages[i];
    const t0 = env.now();
    let outcome: StageOutcome;
    try {
      outcome = await runStageWithCache(env, plan, stage, ps, installer, interrupt.signal);
    } catch (e) {
      if (interrupt.signal.aborted) throw await fail(ps.name, "interrupted", interrupted());
      if (e instanceof MlagentError) throw await fail(ps.name, e.code, e);
      throw e;
    }
    installer = outcome.installer;
    if (interrupt.signal.aborted) throw await fail(ps.name, "interrupted", interrupted());
    if (!outcome.ok) {
      st.status = "failed";
      throw await fail(ps.name, outcome.verdict.kind, outcome.error);
    }
    st.status = "done";
    await save();
    stageReports.push({
      name: ps.name,
      action: "installed",
      attempts: outcome.attempts,
      duration_ms: env.now() - t0,
      argv: outcome.argv,
    });
  }

  // Taken before the listing and the verify steps run this interpreter: what they prove is about these files.
  const stamp = stampInterpreter(env, venvDir, plan.python.executable, plan.python.version);
  // The listing and the first verify step only read the venv: started together, one interpreter start is
  // off the install's critical path. The pins are still judged first, and the step stopped if they moved.
  const stopFirst = new AbortController();
  const firstStep = plan.profile.verify[0];
  const first = firstStep
    ? runVerifyStep(env, venvDir, firstStep, {
      gpuPresent: plan.gpuPresent,
      signal: AbortSignal.any([interrupt.signal, stopFirst.signal]),
    })
    : null;
  // Every pin must still hold after the last stage: a stage resolved without constraints (or an installer
  // that ignored them) may have moved an earlier one, and a venv with the wrong torch is not ready.
  const installed = await listInstalled(env, venvDir);
  const drifted = driftedPins(profilePins(plan.profile), installed);
  if (drifted.length) {
    stopFirst.abort();
    await first;
    const list = drifted.map((d) =>
      `${d.name}==${d.version} (stage "${d.stage}") is ${
        d.installed === null ? "not installed" : `now ${d.installed}`
      }`
    );
    throw await fail(
      null,
      "pins",
      failed(
        `install ${plan.profile.name}: pins did not hold after the last stage: ${list.join("; ")}`,
        "A later stage moved them: pin the dependency that pulled the other version (see the install log), " +
          "or keep MLAGENT_STAGE_CONSTRAINTS unset so each stage installs with the earlier pins as constraints",
        {
          drifted: drifted.map((d) => ({
            package: d.name,
            pin: d.version,
            stage: d.stage,
            installed: d.installed,
          })),
        },
      ),
    );
  }

  const verify: InstallReport["verify"] = [];
  for (const [i, step] of plan.profile.verify.entries()) {
    const v = i === 0 && first ? await first : await runVerifyStep(env, venvDir, step, {
      gpuPresent: plan.gpuPresent,
      signal: interrupt.signal,
    });
    if (interrupt.signal.aborted) throw await fail(null, "interrupted", interrupted());
    verify.push({ name: v.name, ok: v.ok, skipped: v.skipped, duration_ms: v.duration_ms });
    if (v.skipped) {
      env.log.info(`verify ${step.name}: skipped (no GPU on this node)`);
      continue;
    }
    if (!v.ok) {
      const tail = v.output_tail ?? "";
      throw await fail(
        null,
        "verify",
        failed(
          `install ${plan.profile.name}: verify step "${step.name}" failed: ${v.failure}${
            tail ? `\n${indentBlock(tail)}` : ""
          }`,
          "The venv is marked failed; fix the profile or the node and run install again",
          { verify_step: step.name, stderr_tail: tail },
        ),
      );
    }
    env.log.info(`verify ${step.name}: ok`);
  }

  // The same check status and the prologue give, before `ready` is written: never call ready what is not.
  const whole = await checkIntegrity(env, venvDir, pinnedDistributions(plan.profile), "full");
  if (!whole.ok) {
    throw await fail(
      null,
      "damaged",
      failed(
        `install ${plan.profile.name}: the venv is not whole after installing: ${describeIntegrity(whole)}`,
        "Something removed files while the install ran, or an installer left a package half-written; run the install again",
        { integrity: whole },
      ),
    );
  }

  state.packages = installed;
  state.plan.installer = installer.kind;
  // An empty listing means the interpreter did not answer (a working venv lists pip at least): no stamp then.
  if (stamp && Object.keys(installed).length) state.interpreter_stamp = stamp;
  if (plan.driver) state.driver = plan.driver;
  state.status = "ready";
  state.finished_at = isoTime(env.now());
  await save();
  return {
    ...baseReport(plan),
    action,
    waited_for_other: false,
    installer: installer.kind,
    stages: stageReports,
    verify,
    packages: state.packages,
  };
}

/**
 * Runs a stage, holding the cache's lock when the stage uses the cache: a scheduled `cache heal` stays out
 * while the installer reads it, and a heal after a failure of this stage runs inside the same hold.
 */
function runStageWithCache(
  env: Env,
  plan: InstallPlan,
  stage: Stage,
  ps: PlannedStage,
  installer: InstallerChoice,
  signal: AbortSignal,
): Promise<StageOutcome> {
  const cacheRoot = ps.command.cached && plan.cacheDir ? cacheRootOf(plan.cacheDir) : null;
  if (!cacheRoot) return runStage(env, plan, stage, ps, installer, signal);
  return withLock(
    env,
    cacheLockSpec(env, cacheRoot, `install ${plan.profile.name}`),
    { timeoutMs: 30 * 60_000, handleSignals: false, signal },
    () => runStage(env, plan, stage, ps, installer, signal),
  );
}

/**
 * Reinstalls only the damaged distributions, stage by stage (each with its stage's indexes, from the
 * node-local cache, without dependencies: they are intact), then checks them again. True when whole.
 */
async function repairDamaged(
  env: Env,
  plan: InstallPlan,
  damage: IntegrityReport,
  signal: AbortSignal,
  reports: StageReport[],
): Promise<boolean> {
  const damaged = new Set(damage.problems.map((p) => p.package));
  const dists = pinnedDistributions(plan.profile).filter((d) => damaged.has(d.name));
  for (const [i, stage] of plan.profile.stages.entries()) {
    const mine = dists.filter((d) => d.stage === stage.name);
    if (!mine.length) continue;
    const repairStage: Stage = { ...stage, packages: mine.map((d) => d.requirement), no_deps: true };
    const ps: PlannedStage = {
      ...plan.stages[i],
      name: `${stage.name} (repair)`,
      command: stageCommand({
        installer: plan.installer,
        venvDir: plan.venvDir,
        stage: repairStage,
        indexes: stageIndexes(stage, plan.cuda, plan.mirror),
        cacheDir: plan.cacheDir,
        crossDevice: plan.crossDevice,
        mirrorOnly: plan.mirror !== null,
        reinstall: true,
      }),
      constraints: [],
      constraintsFile: null,
    };
    const t0 = env.now();
    const outcome = await runStageWithCache(env, plan, repairStage, ps, plan.installer, signal);
    if (!outcome.ok) {
      env.log.warn(`repair of stage ${stage.name} failed: ${outcome.error.message.split("\n")[0]}`);
      return false;
    }
    reports.push({
      name: stage.name,
      action: "repaired",
      attempts: outcome.attempts,
      duration_ms: env.now() - t0,
      argv: outcome.argv,
    });
  }
  const after = await checkIntegrity(env, plan.venvDir, dists, "full");
  if (!after.ok) env.log.warn(`still damaged after the repair: ${describeIntegrity(after)}`);
  return after.ok;
}
