/**
 * Whether a venv is ready as it stands, so install has nothing to do. Loads nothing a ready venv does not
 * need (no doctor, no lock, no download code): a no-op install is this, and it must feel instant.
 */
import type { Env } from "../core/env.ts";
import { profileSha256 } from "../profiles/mod.ts";
import type { Profile } from "../profiles/types.ts";
import { venvDir as venvDirOf } from "../core/paths.ts";
import { chooseInstaller, type InstallerChoice } from "./installer.ts";
import { probePython, venvPython } from "./venv.ts";
import { readVenvState, type VenvState } from "./state.ts";
import { checkIntegrity, describeIntegrity, pinnedDistributions } from "./integrity.ts";
import { driverAsRecorded, stampDriver, stampHolds } from "./stamp.ts";
import { forcedCuda, newestVariant, planFingerprint } from "./inputs.ts";
import type { Gathered } from "./plan.ts";
import type { InstallOptions, InstallPlan, InstallReport } from "./types.ts";

/**
 * The no-op path, before the doctor: the state says ready with the fingerprint this run would compute
 * (same profile, installer, recorded interpreter, CUDA variant) and the venv's Python runs. Only the GPU
 * probe may run: for profiles with CUDA variants, no --cuda, and a driver that is not, by its stamp, the
 * one whose answer the state recorded. Nothing is written, no lock taken:
 * state.json is replaced atomically with `ready` last, and a rebuild removes it before touching the venv.
 */
export async function readyBeforeDoctor(
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
    const { selectCudaVariant, wheelVariants }: typeof import("../compat.ts") = await import(
      "../" + "compat" + ".ts"
    );
    let driver: string | null = null;
    let driverCuda: string | null = null;
    const forced = forcedCuda(env, opts);
    const recorded = forced ? null : driverAsRecorded(env, state.driver);
    if (recorded) {
      // The driver that answered when this venv was planned is, by its stamp, still the one loaded.
      driver = recorded.driver_version;
      driverCuda = recorded.cuda_version;
    } else if (!forced) {
      // Kept for the plan's doctor when this venv turns out not to be ready.
      gathered.driverStamp = stampDriver(env);
      const { gatherGpu }: typeof import("../../checks/gpu.ts") = await import(
        "../../checks/" + "gpu" + ".ts"
      );
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
  const fp = planFingerprint(
    profileSha256(profile),
    cuda,
    state.plan.python_version,
    state.plan.python_executable,
    installer.kind,
  );
  if (fp !== state.fingerprint) return null;
  if (!await interpreterRuns(env, venvDir, state, state.plan.python_version)) return null;
  if (!await intact(env, venvDir, profile)) return null;
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

/** The venv's state says ready for exactly this plan and its Python still runs: nothing to do. */
export async function readyAsPlanned(env: Env, plan: InstallPlan): Promise<VenvState | null> {
  // No lock: state.json is replaced atomically and `ready` is written last, and a rebuild removes the state
  // file before touching the venv, so reading ready here means the venv was complete when we read it.
  const st = await readVenvState(env, plan.venvDir);
  if (st.kind !== "ok" || st.value.status !== "ready" || st.value.fingerprint !== plan.fingerprint) {
    return null;
  }
  if (!await interpreterRuns(env, plan.venvDir, st.value, plan.python.version)) return null;
  if (!await intact(env, plan.venvDir, plan.profile)) return null;
  return st.value;
}

/**
 * The venv's Python runs at `version`: its files are as they were when this install last ran it (the
 * stamp, no process), else it is started and asked.
 */
async function interpreterRuns(
  env: Env,
  venvDir: string,
  state: VenvState,
  version: string,
): Promise<boolean> {
  const executable = state.plan.python_executable;
  if (
    state.plan.python_version === version &&
    stampHolds(env, venvDir, executable, version, state.interpreter_stamp)
  ) {
    return true;
  }
  if (state.interpreter_stamp) env.log.debug(`${executable} changed since it was stamped; starting it`);
  const py = await probePython(env, venvPython(venvDir));
  return !!py && py.version === version;
}

/**
 * Ready on record is not enough: every pinned distribution must still be there, whole (the stat-only check
 * status and the prologue give). A damaged venv goes on to the locked path, which repairs only what broke.
 */
async function intact(env: Env, venvDir: string, profile: Profile): Promise<boolean> {
  const r = await checkIntegrity(env, venvDir, pinnedDistributions(profile), "full");
  if (!r.ok) env.log.debug(`${venvDir} is damaged: ${describeIntegrity(r)}`);
  return r.ok;
}
