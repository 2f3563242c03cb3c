/** Planning an install: doctor first, then the interpreter, CUDA variant, installer, cache and every stage's argv. Writes nothing. */
import type { Env } from "../core/env.ts";
import { badInput, failed } from "../core/errors.ts";
import { parseRequirement, profileSha256, stageSha256 } from "../profiles/mod.ts";
import { type ResolvedProfile, resolveProfile } from "./recorded.ts";
import type { CudaVariant, ModelSpec, Profile, Stage } from "../profiles/types.ts";
import { venvDir as venvDirOf, venvRoot } from "../core/paths.ts";
import type { GpuFacts } from "../../checks/gpu.ts";
import { checkJson, runDoctor } from "../../checks/mod.ts";
import type { CheckResult } from "../../checks/types.ts";
import { selectCudaVariant, wheelVariants } from "../compat.ts";
import { chooseInstaller, stageCommand, stageIndexes } from "./installer.ts";
import { probePython, type PythonInfo } from "./venv.ts";
import { readVenvState, stateDirOf } from "./state.ts";
import { cacheSubdirs, resolveCacheDir } from "../cache/mod.ts";
import { mountForPath, sameFilesystem } from "../core/mounts.ts";
import { chooseInterpreter, pythonSatisfies } from "./interpreter.ts";
import { modelTarget } from "../download/mod.ts";
import type { InstallOptions, InstallPlan, PlannedStage } from "./types.ts";
import { type DriverStamp, stampDriver } from "./stamp.ts";
import { forcedCuda, newestVariant, planFingerprint, requirePlacesTrusted, sha } from "./inputs.ts";

/** Probe results an earlier step of this run already has, so the plan does not ask the node twice. */
export interface Gathered {
  gpu?: GpuFacts;
  /** The driver's stamp, taken just before `gpu` was gathered. */
  driverStamp?: DriverStamp;
}

/** Loads the profile, runs the doctor and resolves everything a run needs. Writes nothing. */
export async function planInstall(
  env: Env,
  opts: InstallOptions,
  loaded?: ResolvedProfile,
  gathered: Gathered = {},
): Promise<InstallPlan> {
  const { profile, source } = loaded ?? await resolveProfile(env, opts.profile, opts.root);
  if (!loaded) requirePlacesTrusted(env, profile, opts);
  const venvDir = venvDirOf(env, profile.name, opts.root);
  const forced = forcedCuda(env, opts);
  // Before the doctor asks nvidia-smi: a driver replaced meanwhile then fails the stamp, never passes it.
  if (!gathered.gpu) gathered.driverStamp = stampDriver(env);
  const doctor = await runDoctor({
    env: forced ? { ...env, vars: { ...env.vars, MLAGENT_CUDA_VARIANT: forced } } : env,
    profile,
    venvRoot: venvRoot(env, opts.root),
    probeTimeoutMs: 15_000,
  }, { gpu: gathered.gpu });
  // A forced CUDA variant means "build for another node" (a login or build node without the GPU): this
  // node's GPU and driver are then not the target, so their failures only warn.
  const forgiven = (c: CheckResult) => !!forced && /^(gpu\.|cuda\.wheels|cuda\.driver_compat)/.test(c.id);
  for (const c of doctor.checks) {
    if (c.status === "fail" && forgiven(c)) env.log.warn(`${c.id}: ${c.message} (building for ${forced})`);
  }
  const failing = doctor.checks.filter((c: CheckResult) => c.status === "fail" && !forgiven(c));
  if (failing.length) {
    throw failed(
      `install ${profile.name}: the node is not ready (nothing was written):\n` +
        failing.map((c) => `  ${c.id}: ${c.message}${c.remedy ? `\n    fix: ${c.remedy}` : ""}`).join("\n"),
      `fix the checks above, then run the install again (mlagent doctor --profile ${profile.name} shows them all)`,
      { checks: failing.map(checkJson) },
    );
  }
  const gpuFacts = (doctor.facts.gpu ?? {}) as Record<string, unknown>;
  const driver = typeof gpuFacts.driver_version === "string" ? gpuFacts.driver_version : null;
  const driverCuda = typeof gpuFacts.cuda_version === "string" ? gpuFacts.cuda_version : null;
  const driverStamp = gathered.driverStamp;
  const devices = Array.isArray(gpuFacts.devices) ? gpuFacts.devices.length : 0;

  let cuda: CudaVariant | null = null;
  let cudaReason: string | null = null;
  if (profile.cuda_variants.length) {
    const choice = selectCudaVariant(driver, driverCuda, wheelVariants(profile), forced ?? undefined);
    if ("error" in choice) {
      // A forced variant fails only when the profile lacks it: that is a bad flag, not a node problem.
      if (forced) {
        throw badInput(
          `install ${profile.name}: ${choice.error}`,
          `pick one of the profile's variants: --cuda ${profile.cuda_variants.map((v) => v.name).join("|")}`,
        );
      }
      if (profile.gpu.required) {
        throw failed(
          `install ${profile.name}: ${choice.error}`,
          "update the NVIDIA driver, or build for another node with --cuda VARIANT",
        );
      }
      // GPU optional and no usable driver: CUDA builds of torch run on the CPU too; take the newest.
      cuda = newestVariant(profile.cuda_variants);
      cudaReason =
        `${choice.error}; the GPU is optional, so taking the ${cuda.name} wheels (they run on the CPU too)`;
      env.log.warn(`cuda: ${cudaReason}`);
    } else {
      cuda = choice.variant;
      cudaReason = choice.reason;
    }
  } else if (forced) {
    throw badInput(`install ${profile.name}: --cuda ${forced} given but the profile has no CUDA variants`);
  }

  const { python, reason: pythonReason } = (!opts.force && await keptInterpreter(env, profile, venvDir)) ||
    await interpreterFromDoctor(env, profile, doctor.facts);
  const installer = chooseInstaller(env);
  const cache = await resolveInstallerCache(env, installer.kind);
  const cacheDir = cache.path;
  const crossDevice = cacheDir !== null &&
    !sameFilesystem(mountForPath(env, cacheDir), mountForPath(env, venvDir));
  const mirror = env.vars.MLAGENT_INDEX_URL?.trim() || null;

  const stages: PlannedStage[] = [];
  let prev = sha("stages", python.version, installer.kind);
  const constrain = env.vars.MLAGENT_STAGE_CONSTRAINTS !== "0";
  const earlierPins: string[] = [];
  for (const [i, stage] of profile.stages.entries()) {
    const idx = stageIndexes(stage, cuda, mirror);
    const constraints = constrain ? [...earlierPins] : [];
    const constraintsFile = constraints.length ? constraintsFileFor(venvDir, i, stage.name) : null;
    const command = stageCommand({
      installer,
      venvDir,
      stage,
      indexes: idx,
      cacheDir,
      crossDevice,
      mirrorOnly: mirror !== null,
      constraintsFile,
    });
    for (const pin of exactPins(stage)) if (!earlierPins.includes(pin)) earlierPins.push(pin);
    // The mirror is where pins come from, not what they are: changing it must not reinstall anything.
    const usesCuda = stage.index_url === "cuda" || (stage.extra_index_urls ?? []).includes("cuda");
    prev = sha(prev, stageSha256(stage), usesCuda && cuda ? cuda.name : "");
    stages.push({
      name: stage.name,
      fingerprint: prev,
      command,
      // Without an explicit index the installer's own configuration decides (a pip.conf may name a site
      // mirror); only an index we know is probed, so a node that cannot see PyPI is not failed for nothing.
      indexes: [idx.indexUrl ?? configuredIndex(env, installer.kind), ...idx.extraIndexUrls]
        .filter((u): u is string => !!u),
      constraints,
      constraintsFile,
    });
  }
  const pSha = profileSha256(profile);
  const fingerprint = planFingerprint(
    pSha,
    cuda?.name ?? null,
    python.version,
    python.executable,
    installer.kind,
  );
  const models = modelTargets(env, profile);
  return {
    profile,
    profileSha256: pSha,
    profileSource: source,
    venvDir,
    python,
    pythonReason,
    cuda,
    cudaReason,
    installer,
    cacheDir,
    cacheReason: cache.reason,
    crossDevice,
    mirror,
    stages,
    fingerprint,
    models,
    driver: driverStamp?.module ? { ...driverStamp, driver_version: driver, cuda_version: driverCuda } : null,
    gpuPresent: devices > 0 || (profile.gpu.required && !forced),
    doctor: doctor.checks,
  };
}

/**
 * A stage's exact version pins as constraints lines (`name==version`, canonical name, no extras: pip and uv
 * refuse extras and direct URLs in constraints). A direct reference (git, archive URL) has no version to hold.
 */
export function exactPins(stage: Stage): string[] {
  return stage.packages.map(parseRequirement)
    .filter((r) => r.kind === "version" && r.version !== null)
    .map((r) => `${r.name}==${r.version}${r.marker ? ` ; ${r.marker}` : ""}`);
}

function constraintsFileFor(venvDir: string, index: number, stageName: string): string {
  return `${stateDirOf(venvDir)}/constraints/${index}-${stageName.replace(/[^A-Za-z0-9._-]/g, "_")}.txt`;
}

/**
 * The venv's own interpreter while it still runs and meets the constraint: a Python installed on the node
 * later must not rebuild a working venv. MLAGENT_PYTHON and --force choose afresh.
 */
async function keptInterpreter(
  env: Env,
  profile: Profile,
  venvDir: string,
): Promise<{ python: PythonInfo; reason: string } | null> {
  if (env.vars.MLAGENT_PYTHON?.trim()) return null;
  const st = await readVenvState(env, venvDir);
  if (st.kind !== "ok") return null;
  const info = await probePython(env, st.value.plan.python_executable);
  if (
    !info || info.version !== st.value.plan.python_version || !pythonSatisfies(info.version, profile.python)
  ) {
    return null;
  }
  return { python: info, reason: `the venv's interpreter, still meets ${profile.python}` };
}

/** The doctor's choice of interpreter (it has probed them all), unless MLAGENT_PYTHON names one. */
async function interpreterFromDoctor(
  env: Env,
  profile: Profile,
  facts: Record<string, unknown>,
): Promise<{ python: PythonInfo; reason: string }> {
  const py = facts.python as
    | { executable?: string | null; version?: string | null; meets_constraint?: boolean; source?: string }
    | undefined;
  if (!env.vars.MLAGENT_PYTHON?.trim() && py?.executable && py.meets_constraint) {
    // The doctor ran it a moment ago (isolated, as probePython does): its answer is taken, not asked again.
    const info = fromDoctor(env, py.executable, py.version) ?? await probePython(env, py.executable);
    if (info && pythonSatisfies(info.version, profile.python)) {
      return {
        python: info,
        reason: `the doctor's choice (${py.source ?? "found"}), meets ${profile.python}`,
      };
    }
  }
  return await chooseInterpreter(env, profile);
}

/**
 * What probePython would say of the doctor's interpreter, from the doctor's answer (sys.executable and
 * platform.python_version()); null when that answer is not complete. Resolved as probePython resolves
 * sys.executable; in a venv as Python itself decides it, by a pyvenv.cfg beside the executable or one up.
 */
function fromDoctor(env: Env, command: string, version: string | null | undefined): PythonInfo | null {
  // platform.python_version() may carry a pre-release or "+" suffix; sys.version_info[:3] does not.
  const release = /^\d+\.\d+\.\d+/.exec(version ?? "")?.[0];
  if (!release) return null;
  let executable: string;
  try {
    executable = env.fs.realPathSync(command);
  } catch {
    return null;
  }
  const bin = command.replace(/\/[^/]+$/, "");
  const hasCfg = (dir: string) => {
    try {
      return env.fs.statSync(`${dir}/pyvenv.cfg`).isFile;
    } catch {
      return false;
    }
  };
  return {
    command,
    executable,
    version: release,
    inVenv: hasCfg(bin) || hasCfg(bin.replace(/\/[^/]+$/, "")),
  };
}

function configuredIndex(env: Env, kind: "uv" | "pip"): string | null {
  const v = kind === "uv" ? env.vars.UV_DEFAULT_INDEX || env.vars.UV_INDEX_URL : env.vars.PIP_INDEX_URL;
  return v?.trim() || null;
}

export function modelTargets(env: Env, profile: Profile): InstallPlan["models"] {
  return profile.models.map((m: ModelSpec) => {
    const t = modelTarget(env, m);
    return { repo: m.repo, revision: m.revision ?? "main", local_dir: t.dir, layout: t.layout };
  });
}

/**
 * The installer's dir in the node-local cache (agent/cache.ts places the root: MLAGENT_CACHE_DIR, else under
 * a private TMPDIR, else /tmp). Planning only looks; the root is created when a stage runs.
 */
async function resolveInstallerCache(
  env: Env,
  kind: "uv" | "pip",
): Promise<{ path: string | null; reason: string }> {
  if (env.vars.MLAGENT_NO_CACHE === "1") return { path: null, reason: "MLAGENT_NO_CACHE=1" };
  const placed = await resolveCacheDir(env, { create: false });
  return { path: cacheSubdirs(placed.path)[kind], reason: placed.reason };
}
