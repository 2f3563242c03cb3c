/**
 * `mlagent install`: a profile in, a ready and verified venv out, or a clear failure and a venv whose state
 * says so. Order: load and validate the profile (bad input writes nothing), doctor, plan (interpreter, CUDA
 * variant, installer, every argv), fast path when the venv already matches, index reachability, then under
 * the venv's lock: create or repair the venv, run the stages that changed, verify, record `ready` last.
 * Models are fetched after the venv is ready, outside its lock.
 */
import type { Env } from "../core/env.ts";
import { profileSha256 } from "../profiles/mod.ts";
import { resolveProfile } from "./recorded.ts";
import type { Profile } from "../profiles/types.ts";
import { venvDir as venvDirOf } from "../core/paths.ts";
import { gatherGpu } from "../../checks/gpu.ts";
import { selectCudaVariant, wheelVariants } from "../compat.ts";
import { chooseInstaller, type InstallerChoice } from "./installer.ts";
import { probePython, venvPython } from "./venv.ts";
import { readVenvState, type VenvState } from "./state.ts";
import { venvLockSpec, withLock } from "../lock/mod.ts";
import { installLocked } from "./build.ts";
import { fetchModels } from "./models.ts";
import {
  forcedCuda,
  type Gathered,
  modelTargets,
  newestVariant,
  planInstall,
  requirePlacesTrusted,
  sha,
} from "./plan.ts";
import { checkIndexes } from "./reach.ts";
import { baseReport, planReport } from "./report.ts";
import type { InstallOptions, InstallPlan, InstallReport } from "./types.ts";
import { checkIntegrity, describeIntegrity, pinnedDistributions } from "./integrity.ts";
import { modelNeed, requireSpace } from "./space.ts";

export { pythonSatisfies } from "./interpreter.ts";
export { planInstall } from "./plan.ts";
export { classifyFetchError, probeIndex } from "./reach.ts";
export { planReport } from "./report.ts";
export type { InstallPlan, InstallReport } from "./types.ts";

/** Runs install (or shows the plan with dryRun). Throws MlagentError for every expected failure. */
export async function install(env: Env, opts: InstallOptions): Promise<InstallReport> {
  const started = env.now();
  const resolved = await resolveProfile(env, opts.profile, opts.root);
  const profile = resolved.profile;
  requirePlacesTrusted(env, profile, opts);
  const gathered: Gathered = {};
  if (!opts.force && !opts.dryRun) {
    const quick = await readyBeforeDoctor(env, opts, profile, gathered);
    if (quick) return await finishWithModels(env, profile, modelTargets(env, profile), opts, quick, started);
  }
  const plan = await planInstall(env, opts, resolved, gathered);
  if (opts.dryRun) return planReport(plan);

  if (!opts.force) {
    const ready = await readyAsPlanned(env, plan);
    if (ready) {
      const report: InstallReport = { ...baseReport(plan), action: "none", packages: ready.packages };
      return await finishWithModels(env, profile, plan.models, opts, report, started);
    }
  }
  // Probe the indexes of the stages this run will install, before anything is written.
  const prior = await readVenvState(env, plan.venvDir);
  const done = new Set(
    !opts.force && prior.kind === "ok"
      ? prior.value.stages.filter((s) => s.status === "done").map((s) => s.fingerprint)
      : [],
  );
  const pending = plan.stages.filter((s) => !done.has(s.fingerprint));
  // Room for the venv, the cache and the models, before anything is written (the models' sizes from the Hub).
  const models = opts.noModels
    ? []
    : await Promise.all(plan.models.map((m, i) => modelNeed(env, profile.models[i], m)));
  await requireSpace(env, plan, { venvAndCache: pending.length > 0, models });
  await checkIndexes(env, plan, pending);

  const report = await withLock(
    env,
    venvLockSpec(plan.venvDir, `install ${plan.profile.name}`),
    // Our own signal handling stops the installer and records the venv as failed before the lock goes.
    { timeoutMs: opts.lockTimeoutMs, noWait: opts.noWait, handleSignals: false },
    async (lock) => {
      // Only a real wait on another holder counts: the install may also have finished between our first
      // look and taking a free lock.
      const waited = (lock.waitedMs ?? 0) > 0;
      // Whoever held the lock may have finished this very install.
      if (!opts.force) {
        const ready = await readyAsPlanned(env, plan);
        if (ready) {
          return {
            ...baseReport(plan),
            action: "none" as const,
            packages: ready.packages,
            waited_for_other: waited,
          };
        }
      }
      return { ...await installLocked(env, plan, opts, started), waited_for_other: waited };
    },
  );
  return await finishWithModels(env, profile, plan.models, opts, report, started);
}

/**
 * The no-op path, before the doctor: the state says ready with the fingerprint this run would compute
 * (same profile, installer, recorded interpreter, CUDA variant) and the venv's Python runs. Only the GPU
 * probe runs, and only for profiles with CUDA variants and no --cuda. Nothing is written, no lock taken:
 * state.json is replaced atomically with `ready` last, and a rebuild removes it before touching the venv.
 */
async function readyBeforeDoctor(
  env: Env,
  opts: InstallOptions,
  profile: Profile,
  gathered: Gathered,
): Promise<InstallReport | null> {
  const venvDir = venvDirOf(env, profile.name, opts.root);
  const st = await readVenvState(env, venvDir);
  if (st.kind !== "ok" || st.value.status !== "ready") return null;
  const state = st.value;
  if (env.vars.MLAGENT_PYTHON?.trim()) return null;
  let installer: InstallerChoice;
  try {
    installer = chooseInstaller(env);
  } catch {
    return null;
  }
  let cuda: string | null = null;
  if (profile.cuda_variants.length) {
    let driver: string | null = null;
    let driverCuda: string | null = null;
    const forced = forcedCuda(env, opts);
    if (!forced) {
      // Kept for the plan's doctor when this venv turns out not to be ready.
      gathered.gpu = await gatherGpu(env, 15_000);
      driver = gathered.gpu.driver_version;
      driverCuda = gathered.gpu.cuda_version;
    }
    const choice = selectCudaVariant(driver, driverCuda, wheelVariants(profile), forced ?? undefined);
    if ("error" in choice) {
      if (forced || profile.gpu.required) return null;
      cuda = newestVariant(profile.cuda_variants).name;
    } else {
      cuda = choice.variant.name;
    }
  }
  const fp = sha(
    profileSha256(profile),
    cuda ?? "",
    state.plan.python_version,
    state.plan.python_executable,
    installer.kind,
  );
  if (fp !== state.fingerprint) return null;
  const py = await probePython(env, venvPython(venvDir));
  if (!py || py.version !== state.plan.python_version) return null;
  if (!intact(env, venvDir, profile)) return null;
  return {
    ok: true,
    profile: profile.name,
    venv: venvDir,
    status: "ready",
    action: "none",
    waited_for_other: false,
    python: { executable: state.plan.python_executable, version: state.plan.python_version },
    cuda_variant: cuda,
    installer: installer.kind,
    cache_dir: null,
    fingerprint: fp,
    stages: [],
    verify: [],
    models: [],
    packages: state.packages,
    duration_ms: 0,
  };
}

async function finishWithModels(
  env: Env,
  profile: Profile,
  models: InstallPlan["models"],
  opts: InstallOptions,
  report: InstallReport,
  started: number,
): Promise<InstallReport> {
  if (!opts.noModels) report.models = await fetchModels(env, profile, models);
  else report.models = models.map((m) => ({ repo: m.repo, local_dir: m.local_dir, ok: true, skipped: true }));
  if (report.models.some((m) => !m.ok)) report.ok = false;
  report.duration_ms = env.now() - started;
  return report;
}

/** The venv's state says ready for exactly this plan and its Python still runs: nothing to do. */
async function readyAsPlanned(env: Env, plan: InstallPlan): Promise<VenvState | null> {
  // No lock: state.json is replaced atomically and `ready` is written last, and a rebuild removes the state
  // file before touching the venv, so reading ready here means the venv was complete when we read it.
  const st = await readVenvState(env, plan.venvDir);
  if (st.kind !== "ok" || st.value.status !== "ready" || st.value.fingerprint !== plan.fingerprint) {
    return null;
  }
  const py = await probePython(env, venvPython(plan.venvDir));
  if (!py || py.version !== plan.python.version) return null;
  if (!intact(env, plan.venvDir, plan.profile)) return null;
  return st.value;
}

/**
 * Ready on record is not enough: every pinned distribution must still be there, whole (the stat-only check
 * status and the prologue give). A damaged venv goes on to the locked path, which repairs only what broke.
 */
function intact(env: Env, venvDir: string, profile: Profile): boolean {
  const r = checkIntegrity(env, venvDir, pinnedDistributions(profile), "full");
  if (!r.ok) env.log.debug(`${venvDir} is damaged: ${describeIntegrity(r)}`);
  return r.ok;
}
