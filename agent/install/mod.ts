/**
 * `mlagent install`: a profile in, a ready and verified venv out, or a clear failure and a venv whose state
 * says so. Order: load and validate the profile (bad input writes nothing), doctor, plan (interpreter, CUDA
 * variant, installer, every argv), fast path when the venv already matches, index reachability, then under
 * the venv's lock: create or repair the venv, run the stages that changed, verify, record `ready` last.
 * Models are fetched after the venv is ready, outside its lock.
 */
import { createHash } from "node:crypto";
import type { Env } from "../core/env.ts";
import { badInput, failed, MlagentError } from "../core/errors.ts";
import { loadProfile, profileSha256, stageSha256 } from "../profiles/mod.ts";
import type { CudaVariant, ModelSpec, Profile, Stage } from "../profiles/types.ts";
import { absolute, modelsRoot, venvDir as venvDirOf, venvRoot } from "../core/paths.ts";
import { gatherGpu, type GpuFacts } from "../../checks/gpu.ts";
import { checkJson, runDoctor } from "../../checks/mod.ts";
import type { CheckResult } from "../../checks/types.ts";
import { compareVersions, selectCudaVariant } from "../compat.ts";
import {
  chooseInstaller,
  type InstallerChoice,
  type StageCommand,
  stageCommand,
  stageIndexes,
  uvItselfBroke,
} from "./installer.ts";
import {
  createVenv,
  inspectVenv,
  listInstalled,
  probePython,
  type PythonInfo,
  tailLines,
  venvPython,
} from "./venv.ts";
import { readVenvState, stateDirOf, stateFileOf, type VenvState, writeVenvState } from "./state.ts";
import { cacheLockSpec, venvLockSpec, withLock } from "../lock/mod.ts";
import { cacheRootOf, cacheSubdirs, healAfterFailure, resolveCacheDir } from "../cache/mod.ts";
import { bootId, isAlive, selfIdentity } from "../core/proc.ts";
import { classifyInstallFailure, type FailureVerdict, type NetworkDetail } from "./classify.ts";
import { mountForPath, sameFilesystem } from "../core/mounts.ts";
import { isoTime } from "../core/output.ts";
import { describeRun, findOnPath, type RunResult } from "../core/run.ts";
import { downloadRepo, verifyLocalModel } from "../download/mod.ts";
import { backoffDelayMs, retry } from "../core/retry.ts";

export interface InstallOptions {
  /** Profile name or path. */
  profile: string;
  root?: string;
  force?: boolean;
  dryRun?: boolean;
  /** Force a CUDA variant ("cu121" or "12.1"). */
  cuda?: string;
  noModels?: boolean;
  /** How long to wait for another install of the same venv. */
  lockTimeoutMs?: number;
  noWait?: boolean;
}

export interface PlannedStage {
  name: string;
  /** Chained: a stage's fingerprint covers every stage before it, so a change reinstalls it and all after. */
  fingerprint: string;
  command: StageCommand;
  indexes: string[];
}

export interface InstallPlan {
  profile: Profile;
  profileSha256: string;
  venvDir: string;
  python: PythonInfo;
  pythonReason: string;
  cuda: CudaVariant | null;
  cudaReason: string | null;
  installer: InstallerChoice;
  cacheDir: string | null;
  cacheReason: string;
  crossDevice: boolean;
  mirror: string | null;
  stages: PlannedStage[];
  fingerprint: string;
  models: { repo: string; revision: string; local_dir: string }[];
  /** Whether GPU-only verify steps run (the profile requires a GPU, or the node has one). */
  gpuPresent: boolean;
}

export type InstallAction = "none" | "created" | "updated" | "rebuilt" | "repaired";

export interface StageReport {
  name: string;
  action: "installed" | "skipped";
  attempts: number;
  duration_ms: number;
  argv: string[];
}

export interface InstallReport {
  ok: boolean;
  profile: string;
  venv: string;
  status: "ready" | "planned";
  action: InstallAction;
  /** True when another process finished the install while this one waited for the lock. */
  waited_for_other: boolean;
  python: { executable: string; version: string };
  cuda_variant: string | null;
  installer: "uv" | "pip";
  cache_dir: string | null;
  fingerprint: string;
  stages: StageReport[];
  verify: { name: string; ok: boolean; skipped: boolean; duration_ms: number }[];
  models: { repo: string; local_dir: string; ok: boolean; skipped: boolean; files?: number }[];
  packages: Record<string, string>;
  duration_ms: number;
}

const sha = (...parts: string[]) => createHash("sha256").update(parts.join("\0")).digest("hex");

// ------------------------------------------------------------------------------------------------ planning

/** Probe results an earlier step of this run already has, so the plan does not ask the node twice. */
interface Gathered {
  gpu?: GpuFacts;
}

/** Loads the profile, runs the doctor and resolves everything a run needs. Writes nothing. */
export async function planInstall(
  env: Env,
  opts: InstallOptions,
  loaded?: Profile,
  gathered: Gathered = {},
): Promise<InstallPlan> {
  const profile = loaded ?? await loadProfile(env, opts.profile);
  const venvDir = venvDirOf(env, profile.name, opts.root);
  const forced = forcedCuda(env, opts);
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
      `Fix the checks above, then run the install again (mlagent doctor --profile ${profile.name} shows them all)`,
      { checks: failing.map(checkJson) },
    );
  }
  const gpuFacts = (doctor.facts.gpu ?? {}) as Record<string, unknown>;
  const driver = typeof gpuFacts.driver_version === "string" ? gpuFacts.driver_version : null;
  const driverCuda = typeof gpuFacts.cuda_version === "string" ? gpuFacts.cuda_version : null;
  const devices = Array.isArray(gpuFacts.devices) ? gpuFacts.devices.length : 0;

  let cuda: CudaVariant | null = null;
  let cudaReason: string | null = null;
  if (profile.cuda_variants.length) {
    const choice = selectCudaVariant(driver, driverCuda, profile.cuda_variants, forced ?? undefined);
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
          "Update the NVIDIA driver, or build for another node with --cuda VARIANT",
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
  for (const stage of profile.stages) {
    const idx = stageIndexes(stage, cuda, mirror);
    const command = stageCommand({
      installer,
      venvDir,
      stage,
      indexes: idx,
      cacheDir,
      crossDevice,
      mirrorOnly: mirror !== null,
    });
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
    });
  }
  const pSha = profileSha256(profile);
  const fingerprint = sha(pSha, cuda?.name ?? "", python.version, python.executable, installer.kind);
  const models = modelTargets(env, profile);
  return {
    profile,
    profileSha256: pSha,
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
    gpuPresent: devices > 0 || (profile.gpu.required && !forced),
  };
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
    | { executable?: string | null; meets_constraint?: boolean; source?: string }
    | undefined;
  if (!env.vars.MLAGENT_PYTHON?.trim() && py?.executable && py.meets_constraint) {
    const info = await probePython(env, py.executable);
    if (info && pythonSatisfies(info.version, profile.python)) {
      return {
        python: info,
        reason: `the doctor's choice (${py.source ?? "found"}), meets ${profile.python}`,
      };
    }
  }
  return await chooseInterpreter(env, profile);
}

/** --cuda, else MLAGENT_CUDA_VARIANT (the doctor's name for the same choice). */
function forcedCuda(env: Env, opts: InstallOptions): string | null {
  return opts.cuda?.trim() || env.vars.MLAGENT_CUDA_VARIANT?.trim() || null;
}

function newestVariant(variants: CudaVariant[]): CudaVariant {
  return [...variants].sort((a, b) => compareVersions(b.cuda, a.cuda))[0];
}

function configuredIndex(env: Env, kind: "uv" | "pip"): string | null {
  const v = kind === "uv" ? env.vars.UV_DEFAULT_INDEX || env.vars.UV_INDEX_URL : env.vars.PIP_INDEX_URL;
  return v?.trim() || null;
}

function modelTargets(env: Env, profile: Profile): InstallPlan["models"] {
  const mroot = modelsRoot(env);
  return profile.models.map((m: ModelSpec) => ({
    repo: m.repo,
    revision: m.revision ?? "main",
    local_dir: m.local_dir ? absolute({ ...env, cwd: mroot }, m.local_dir) : `${mroot}/${m.repo}`,
  }));
}

/**
 * The interpreter for the venv: MLAGENT_PYTHON when set, else the first of python3, python3.13 ... python3.9,
 * python on PATH whose version meets the profile's constraint.
 */
export async function chooseInterpreter(
  env: Env,
  profile: Profile,
): Promise<{ python: PythonInfo; reason: string }> {
  const forced = env.vars.MLAGENT_PYTHON?.trim();
  const candidates = forced
    ? [forced]
    : ["python3", "python3.13", "python3.12", "python3.11", "python3.10", "python3.9", "python"];
  const seen = new Set<string>();
  const rejected: string[] = [];
  for (const c of candidates) {
    if (!forced && !findOnPath(c, env.vars.PATH)) continue;
    const info = await probePython(env, c);
    if (!info) {
      rejected.push(`${c} (does not run)`);
      continue;
    }
    if (info.inVenv && !forced) {
      rejected.push(`${c} (${info.executable} is inside a venv)`);
      continue;
    }
    if (seen.has(info.executable)) continue;
    seen.add(info.executable);
    if (pythonSatisfies(info.version, profile.python)) {
      return {
        python: info,
        reason: `${forced ? "MLAGENT_PYTHON" : c} is Python ${info.version}, which meets ${profile.python}`,
      };
    }
    rejected.push(`${c} (Python ${info.version})`);
  }
  throw failed(
    `install ${profile.name}: no Python interpreter meets ${profile.python}` +
      (rejected.length ? `; found ${rejected.join(", ")}` : "; none found on PATH"),
    "Load a matching Python (module load python/3.11, pyenv, uv python install) or set MLAGENT_PYTHON",
  );
}

/** PEP 440 specifier set check for plain release versions (what interpreter constraints use). */
export function pythonSatisfies(version: string, spec: string): boolean {
  for (const raw of spec.split(",")) {
    const clause = raw.trim();
    if (!clause) continue;
    const m = clause.match(/^(~=|==|!=|<=|>=|<|>|===)\s*([0-9][0-9.]*)(\.\*)?$/);
    if (!m) return false;
    const [, op, want, star] = m;
    const c = compareVersions(version, want);
    const prefix = (version + ".").startsWith(want + ".");
    switch (op) {
      case "==":
      case "===":
        if (star ? !prefix : c !== 0) return false;
        break;
      case "!=":
        if (star ? prefix : c === 0) return false;
        break;
      case ">=":
        if (c < 0) return false;
        break;
      case "<=":
        if (c > 0) return false;
        break;
      case ">":
        if (c <= 0) return false;
        break;
      case "<":
        if (c >= 0) return false;
        break;
      case "~=": {
        const parts = want.split(".");
        if (c < 0 || !(version + ".").startsWith(parts.slice(0, -1).join(".") + ".")) return false;
        break;
      }
    }
  }
  return true;
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

// ------------------------------------------------------------------------------------------- reachability

export type ReachFailure = "dns" | "connection" | "tls" | "timeout" | "http";

/** Fetches the index page of one project: null when reachable (any answer below 500), else what failed. */
export async function probeIndex(
  env: Env,
  indexUrl: string,
  project: string,
  timeoutMs = 15_000,
): Promise<{ kind: ReachFailure; message: string } | null> {
  if (!/^https?:\/\//.test(indexUrl)) return null;
  const url = `${indexUrl.replace(/\/+$/, "")}/${project.toLowerCase().replace(/[-_.]+/g, "-")}/`;
  try {
    const res = await env.fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    if (res.status >= 500 || res.status === 429) {
      return { kind: "http", message: `${url} answered HTTP ${res.status}` };
    }
    return null;
  } catch (e) {
    const msg = e instanceof Error ? `${e.message}${e.cause ? ` (${e.cause})` : ""}` : String(e);
    return { kind: classifyFetchError(e, msg), message: `${url}: ${msg}` };
  }
}

export function classifyFetchError(e: unknown, msg: string): ReachFailure {
  if (e instanceof DOMException && (e.name === "TimeoutError" || e.name === "AbortError")) return "timeout";
  if (
    /dns error|failed to lookup|name or service not known|no such host|nodename nor servname|getaddrinfo/i
      .test(msg)
  ) {
    return "dns";
  }
  if (/certificate|tls|ssl|handshake|UnknownIssuer/i.test(msg)) return "tls";
  if (/timed? ?out/i.test(msg)) return "timeout";
  return "connection";
}

const REACH_DETAIL: Record<ReachFailure, NetworkDetail> = {
  dns: "dns",
  connection: "connect",
  tls: "tls",
  timeout: "timeout",
  http: "http-5xx",
};

const REACH_WORDS: Record<ReachFailure, string> = {
  dns: "DNS lookup failed",
  connection: "the connection failed",
  tls: "the TLS handshake failed",
  timeout: "no answer in time",
  http: "the server answered with an error",
};

/** Every http(s) index the pending stages use answers; transient failures are retried with backoff. */
async function checkIndexes(env: Env, plan: InstallPlan, stages: PlannedStage[]): Promise<void> {
  const seen = new Set<string>();
  for (const st of stages) {
    const stage = plan.profile.stages.find((s) => s.name === st.name)!;
    const project = firstProject(stage);
    for (const idx of st.indexes) {
      if (seen.has(idx) || !project) continue;
      seen.add(idx);
      const last = await retry(async () => {
        const bad = await probeIndex(env, idx, project);
        if (bad) throw bad;
        return null;
      }, {
        maxAttempts: NETWORK_ATTEMPTS,
        sleep: env.sleep,
        random: env.random,
        baseMs: retryBaseMs(env),
        onRetry: (e, n, ms) =>
          env.log.warn(
            `index ${idx}: ${(e as { message: string }).message}; attempt ${
              n + 1
            }/${NETWORK_ATTEMPTS} in ${ms} ms`,
          ),
      }).catch((e: { kind: ReachFailure; message: string }) => e);
      if (last) {
        throw failed(
          `Cannot reach the package index ${idx}: ${REACH_WORDS[last.kind]} (${last.message})`,
          last.kind === "dns"
            ? "Check the host name and the node's DNS; on an isolated node set MLAGENT_INDEX_URL to the site mirror"
            : last.kind === "tls"
            ? "Check the node's CA bundle (SSL_CERT_FILE, PIP_CERT) or the proxy's certificate"
            : last.kind === "http"
            ? "The index is failing; try again later or set MLAGENT_INDEX_URL to a mirror"
            : "Check the network or proxy (HTTPS_PROXY); on an isolated node set MLAGENT_INDEX_URL to the site mirror",
          { stage: st.name, index_url: idx, reach_failure: last.kind },
        );
      }
    }
  }
}

function firstProject(stage: Stage): string | null {
  for (const p of stage.packages) {
    const m = p.match(/^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==|>=|<=|~=|!=|<|>|$)/);
    if (m && !p.includes("@")) return m[1];
  }
  return null;
}

// ------------------------------------------------------------------------------------------------- running

const NETWORK_ATTEMPTS = 3;

/** Full-jitter exponential backoff (agent/retry.ts); MLAGENT_RETRY_BASE_MS sets the first ceiling. */
function backoffMs(env: Env, attempt: number): number {
  return backoffDelayMs(attempt, { baseMs: retryBaseMs(env), random: env.random });
}

function retryBaseMs(env: Env): number {
  const n = Number(env.vars.MLAGENT_RETRY_BASE_MS);
  return Number.isFinite(n) && n >= 0 && env.vars.MLAGENT_RETRY_BASE_MS ? n : 1000;
}

/** Runs install (or shows the plan with dryRun). Throws MlagentError for every expected failure. */
export async function install(env: Env, opts: InstallOptions): Promise<InstallReport> {
  const started = env.now();
  const profile = await loadProfile(env, opts.profile);
  const gathered: Gathered = {};
  if (!opts.force && !opts.dryRun) {
    const quick = await readyBeforeDoctor(env, opts, profile, gathered);
    if (quick) return await finishWithModels(env, profile, modelTargets(env, profile), opts, quick, started);
  }
  const plan = await planInstall(env, opts, profile, gathered);
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
  await checkIndexes(env, plan, plan.stages.filter((s) => !done.has(s.fingerprint)));

  const report = await withLock(
    env,
    venvLockSpec(plan.venvDir, `install ${plan.profile.name}`),
    // Our own signal handling stops the installer and records the venv as failed before the lock goes.
    { timeoutMs: opts.lockTimeoutMs, noWait: opts.noWait, handleSignals: false },
    async () => {
      // Whoever held the lock may have finished this very install.
      if (!opts.force) {
        const ready = await readyAsPlanned(env, plan);
        if (ready) {
          return {
            ...baseReport(plan),
            action: "none" as const,
            packages: ready.packages,
            waited_for_other: true,
          };
        }
      }
      return await installLocked(env, plan, opts, started);
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
    const choice = selectCudaVariant(driver, driverCuda, profile.cuda_variants, forced ?? undefined);
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
  return st.value;
}

function baseReport(plan: InstallPlan): InstallReport {
  return {
    ok: true,
    profile: plan.profile.name,
    venv: plan.venvDir,
    status: "ready",
    action: "none",
    waited_for_other: false,
    python: { executable: plan.python.executable, version: plan.python.version },
    cuda_variant: plan.cuda?.name ?? null,
    installer: plan.installer.kind,
    cache_dir: plan.cacheDir,
    fingerprint: plan.fingerprint,
    stages: [],
    verify: [],
    models: [],
    packages: {},
    duration_ms: 0,
  } satisfies InstallReport;
}

export function planReport(plan: InstallPlan): InstallReport {
  return {
    ...baseReport(plan),
    status: "planned",
    stages: plan.stages.map((s) => ({
      name: s.name,
      action: "installed",
      attempts: 0,
      duration_ms: 0,
      argv: s.command.argv,
    })),
    models: plan.models.map((m) => ({ repo: m.repo, local_dir: m.local_dir, ok: true, skipped: true })),
  };
}

function ownerDead(env: Env, st: VenvState): boolean {
  const o = st.owner;
  if (o.boot_id && bootId(env) && o.boot_id !== bootId(env)) return true;
  // We hold the venv lock, so an owner on another host cannot still be installing.
  if (o.host !== env.hostname()) return true;
  return o.pid === env.pid ? false : !isAlive(env, o.pid, o.pid_start_time);
}

async function installLocked(
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
      `${venvDir} exists and is not a venv (${found.entries} entries); mlagent will not delete it`,
      `Move it away, or install under another root (--root or MLAGENT_ROOT)`,
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

  if (rebuild && found.kind !== "missing") {
    // State first: a reader that sees no state file never trusts the venv being removed.
    await env.fs.remove(stateFileOf(venvDir)).catch(() => {});
    await env.fs.remove(venvDir, { recursive: true });
  }
  const save = async () => {
    state.updated_at = isoTime(env.now());
    await writeVenvState(env, venvDir, state);
  };
  const fail = async (stage: string | null, kind: string, err: MlagentError) => {
    state.status = "failed";
    state.error = { stage, kind, message: err.message };
    state.finished_at = isoTime(env.now());
    await save().catch(() => {});
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
    failed(
      `install ${plan.profile.name}: interrupted (${interrupt.signal.reason}); the venv is marked failed`,
      "Run the install again to finish it",
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
    return await runStagesAndVerify(env, plan, state, {
      action,
      started,
      save,
      fail,
      interrupt,
      interrupted,
    });
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
    // The cache lock keeps a scheduled `cache heal` out while the installer reads the cache; a heal after
    // a failure of this stage runs inside the same hold. Stages that skip the cache do not take it.
    const cacheRoot = ps.command.cached && plan.cacheDir ? cacheRootOf(plan.cacheDir) : null;
    let outcome: StageOutcome;
    try {
      outcome = cacheRoot
        ? await withLock(
          env,
          cacheLockSpec(env, cacheRoot, `install ${plan.profile.name}`),
          { timeoutMs: 30 * 60_000, handleSignals: false, signal: interrupt.signal },
          () => runStage(env, plan, stage, ps, installer, interrupt.signal),
        )
        : await runStage(env, plan, stage, ps, installer, interrupt.signal);
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

  const verify: InstallReport["verify"] = [];
  for (const step of plan.profile.verify) {
    if (step.requires_gpu && !plan.gpuPresent) {
      verify.push({ name: step.name, ok: true, skipped: true, duration_ms: 0 });
      env.log.info(`verify ${step.name}: skipped (no GPU on this node)`);
      continue;
    }
    const t0 = env.now();
    const timeoutMs = (step.timeout_s ?? 600) * 1000;
    const r = await env.run([venvPython(venvDir), "-c", step.code], {
      timeoutMs,
      cwd: venvDir,
      signal: interrupt.signal,
    });
    if (interrupt.signal.aborted) throw await fail(null, "interrupted", interrupted());
    const ok = r.kind === "exited" && r.code === 0;
    verify.push({ name: step.name, ok, skipped: false, duration_ms: env.now() - t0 });
    if (!ok) {
      const tail = r.kind === "not-found" ? "" : tailLines(r.stderr || r.stdout, 12);
      const why = r.kind === "timed-out"
        ? `did not finish within ${step.timeout_s ?? 600} s`
        : describeRun(r);
      throw await fail(
        null,
        "verify",
        failed(
          `install ${plan.profile.name}: verify step "${step.name}" failed: ${why}${tail ? `\n${tail}` : ""}`,
          "The venv is marked failed; fix the profile or the node and run install again",
          { verify_step: step.name, stderr_tail: tail },
        ),
      );
    }
    env.log.info(`verify ${step.name}: ok`);
  }

  state.packages = await listInstalled(env, venvDir);
  state.plan.installer = installer.kind;
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

/** A stage's command for another installer than planned (uv broke): same stage, that installer's own cache. */
function commandFor(plan: InstallPlan, stage: Stage, installer: InstallerChoice): StageCommand {
  return stageCommand({
    installer,
    venvDir: plan.venvDir,
    stage,
    indexes: stageIndexes(stage, plan.cuda, plan.mirror),
    cacheDir: cacheDirFor(plan, installer.kind),
    crossDevice: plan.crossDevice,
    mirrorOnly: plan.mirror !== null,
  });
}

/** uv and pip keep separate caches side by side: <cache root>/uv, <cache root>/pip. */
function cacheDirFor(plan: InstallPlan, kind: "uv" | "pip"): string | null {
  if (!plan.cacheDir) return null;
  return plan.cacheDir.replace(/\/(uv|pip)$/, `/${kind}`);
}

const UNKNOWN: FailureVerdict = {
  kind: "unknown",
  package: null,
  cause: null,
  remedy: "",
  detail: null,
  url: null,
  retry: "none",
  evidence: null,
};

type StageOutcome =
  | { ok: true; attempts: number; argv: string[]; installer: InstallerChoice }
  | { ok: false; verdict: FailureVerdict; error: MlagentError; installer: InstallerChoice };

/**
 * One stage with the failure policy: network failures retried with backoff (3 attempts), a corrupt cache
 * healed then retried once, uv replaced by pip when uv itself breaks; everything else fails at once.
 */
/** pip's console says only "No matching distribution" when an index fails; the cause is in its --log. */
const PIP_LOG_TAIL_BYTES = 512 * 1024;

/** A per-stage pip log in the venv's state dir, emptied for each attempt (pip appends) and kept for the user. */
async function freshPipLog(env: Env, venvDir: string, stageName: string): Promise<string | null> {
  const dir = stateDirOf(venvDir);
  const path = `${dir}/${stageName.replace(/[^A-Za-z0-9._-]/g, "_")}.pip.log`;
  try {
    await env.fs.mkdir(dir, { recursive: true });
    await env.fs.writeTextFile(path, "");
    return path;
  } catch {
    return null; // no log is no reason to fail an install
  }
}

async function readTail(env: Env, path: string, maxBytes: number): Promise<string> {
  try {
    const bytes = await env.fs.readFile(path);
    return new TextDecoder().decode(bytes.subarray(Math.max(0, bytes.length - maxBytes)));
  } catch {
    return "";
  }
}

async function runStage(
  env: Env,
  plan: InstallPlan,
  stage: Stage,
  ps: PlannedStage,
  initial: InstallerChoice,
  signal: AbortSignal,
): Promise<StageOutcome> {
  let installer = initial;
  // An earlier stage may have switched to pip; the planned argv is for the planned installer.
  let command = installer.kind === plan.installer.kind ? ps.command : commandFor(plan, stage, installer);
  let networkFailures = 0;
  let heals = 0;
  let uncached = false;
  let attempts = 0;
  // pip prints "from versions: none" alike for a missing package and for an index it failed to read; only its
  // --log says which. --log also hides build output from the console, so it is used only to tell those apart.
  let diagnose = false;
  for (;;) {
    attempts++;
    env.log.info(`stage ${ps.name}: installing ${stage.packages.join(" ")}`);
    const pipLog = diagnose && installer.kind === "pip"
      ? await freshPipLog(env, plan.venvDir, ps.name)
      : null;
    const r = await env.run(pipLog ? [...command.argv, "--log", pipLog] : command.argv, {
      signal,
      timeoutMs: command.timeoutMs,
      env: command.env,
      onOutput: (_s, text) => {
        for (const line of text.split("\n")) if (line.trim()) env.log.debug(`  ${line}`);
      },
    });
    if (r.kind === "exited" && r.code === 0) return { ok: true, attempts, argv: command.argv, installer };
    if (signal.aborted) {
      return { ok: false, verdict: UNKNOWN, installer, error: failed(`stage ${ps.name} interrupted`) };
    }
    if (installer.kind === "uv" && uvItselfBroke(r)) {
      env.log.warn(`uv itself failed (${describeRun(r)}); falling back to pip for the remaining stages`);
      installer = { kind: "pip", uv: null, reason: "uv failed" };
      command = commandFor(plan, stage, installer);
      continue;
    }
    const consoleOutput = r.kind === "not-found" ? `${r.program}: not found` : `${r.stdout}\n${r.stderr}`;
    const output = pipLog
      ? `${consoleOutput}\n${await readTail(env, pipLog, PIP_LOG_TAIL_BYTES)}`
      : consoleOutput;
    let verdict: FailureVerdict = r.kind === "timed-out"
      ? {
        ...UNKNOWN,
        cause: `the installer did not finish within ${Math.round(r.afterMs / 1000)} s`,
        remedy: `Raise the stage's timeout_s, or check for a build that hangs`,
      }
      : classifyInstallFailure(output);
    verdict = await reconsiderAsNetwork(env, verdict, output, ps.indexes);
    if (
      !diagnose && installer.kind === "pip" && verdict.kind === "resolution" &&
      /from versions: none/.test(output)
    ) {
      diagnose = true;
      attempts--;
      env.log.info(
        `stage ${ps.name}: pip found no versions; asking again with --log to tell a missing package from a failing index`,
      );
      continue;
    }
    if (verdict.retry === "backoff" && ++networkFailures < NETWORK_ATTEMPTS) {
      const ms = backoffMs(env, networkFailures);
      env.log.warn(
        `stage ${ps.name}: network failure (${verdict.detail ?? verdict.cause ?? "network"}); ` +
          `attempt ${networkFailures + 1}/${NETWORK_ATTEMPTS} in ${ms} ms`,
      );
      await env.sleep(ms);
      continue;
    }
    const cacheDir = cacheDirFor(plan, installer.kind);
    // agent/cache.ts heals in at most two steps (the named entries, then the whole installer cache), each
    // followed by one retry; never a loop. We already hold the cache lock for this stage.
    if (verdict.retry === "heal-cache-then-once" && heals < 2 && cacheDir) {
      heals++;
      const healed = await healAfterFailure(env, {
        cacheDir,
        installer: installer.kind,
        verdict,
        attempt: heals,
        lockHeld: true,
      });
      if (healed.action !== "none") {
        env.log.warn(`stage ${ps.name}: retrying after healing the cache (${healed.action})`);
        continue;
      }
    }
    if (verdict.retry === "without-cache-once" && !uncached) {
      uncached = true;
      env.log.warn(
        `stage ${ps.name}: ${verdict.cause ?? "the cache is unusable here"}; retrying once without it`,
      );
      command = stageCommand({
        installer,
        venvDir: plan.venvDir,
        stage,
        indexes: stageIndexes(stage, plan.cuda, plan.mirror),
        cacheDir: null,
        crossDevice: true,
        mirrorOnly: plan.mirror !== null,
      });
      continue;
    }
    const pkg = verdict.package ?? packageFromOutput(output);
    const tail = tailLines(consoleOutput, 20);
    const what = verdict.kind === "unknown" ? "failed" : `failed (${verdict.kind})`;
    return {
      ok: false,
      verdict,
      installer,
      error: failed(
        `install ${plan.profile.name}: stage "${ps.name}" ${what}` +
          `${pkg ? ` on package ${pkg}` : ""}${verdict.cause ? `: ${verdict.cause}` : ""}` +
          ` after ${attempts} attempt${attempts === 1 ? "" : "s"} (${describeRun(r)})\n${tail}`,
        pipLog ? `${verdict.remedy} (pip's full log: ${pipLog})` : verdict.remedy,
        {
          stage: ps.name,
          package: pkg,
          kind: verdict.kind,
          cause: verdict.cause,
          attempts,
          output_tail: tail,
          installer_log: pipLog,
        },
      ),
    };
  }
}

/**
 * pip prints "from versions: none" both when a package does not exist and when the index failed and it gave
 * up quietly; asking the index tells the two apart.
 */
async function reconsiderAsNetwork(
  env: Env,
  verdict: FailureVerdict,
  output: string,
  indexes: string[],
): Promise<FailureVerdict> {
  if (verdict.kind === "network") return verdict;
  const m = output.match(/No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)/);
  if (!m || !/from versions: none/.test(output)) return verdict;
  for (const idx of indexes) {
    const bad = await probeIndex(env, idx, m[1]);
    if (bad) {
      return {
        kind: "network",
        package: m[1].toLowerCase(),
        cause: `the index did not answer for ${m[1]}: ${bad.message}`,
        remedy: "Check the network or the index; set MLAGENT_INDEX_URL to a reachable mirror",
        detail: REACH_DETAIL[bad.kind],
        url: null,
        retry: "backoff",
        evidence: bad.message,
      };
    }
  }
  return verdict;
}

function packageFromOutput(output: string): string | null {
  const m = output.match(/No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)/) ??
    output.match(/Failed to build ([A-Za-z0-9][A-Za-z0-9._-]*)/) ??
    output.match(/Collecting ([A-Za-z0-9][A-Za-z0-9._-]*)[^\n]*\n(?:(?!Collecting)[^\n]*\n)*[^\n]*error/i);
  return m ? m[1].toLowerCase() : null;
}

async function fetchModels(
  env: Env,
  profile: Profile,
  models: InstallPlan["models"],
): Promise<InstallReport["models"]> {
  const out: InstallReport["models"] = [];
  for (const [i, m] of models.entries()) {
    const spec = profile.models[i];
    try {
      const have = await verifyLocalModel(env, {
        repo: m.repo,
        revision: m.revision,
        localDir: m.local_dir,
        requiredFiles: spec.required_files,
        include: spec.include,
        exclude: spec.exclude,
      });
      if (have.complete) {
        out.push({ repo: m.repo, local_dir: m.local_dir, ok: true, skipped: false, files: have.files });
        continue;
      }
      env.log.info(`model ${m.repo}: fetching into ${m.local_dir}`);
      const r = await downloadRepo(env, {
        repo: m.repo,
        revision: m.revision,
        include: spec.include,
        exclude: spec.exclude,
        localDir: m.local_dir,
        requiredFiles: spec.required_files,
      });
      out.push({ repo: m.repo, local_dir: m.local_dir, ok: r.ok, skipped: false, files: r.files });
    } catch (e) {
      if (!(e instanceof MlagentError)) throw e;
      env.log.error(`model ${m.repo}: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ""}`);
      out.push({ repo: m.repo, local_dir: m.local_dir, ok: false, skipped: false });
    }
  }
  return out;
}

/** The plan as text, for --dry-run. */
export function renderPlan(plan: InstallPlan): string {
  const q = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`);
  const lines = [
    `plan for ${plan.profile.name} (dry run: nothing written)`,
    `  venv:        ${plan.venvDir}`,
    `  python:      ${plan.python.executable} ${plan.python.version} (${plan.pythonReason})`,
    `  cuda:        ${
      plan.cuda ? `${plan.cuda.name} (${plan.cudaReason})` : "none (profile has no CUDA variants)"
    }`,
    `  installer:   ${plan.installer.kind} (${plan.installer.reason})`,
    `  cache:       ${plan.cacheDir ?? "none"} (${plan.cacheReason}${
      plan.crossDevice ? "; other filesystem than the venv: copy, no links" : ""
    })`,
    ...(plan.mirror ? [`  mirror:      ${plan.mirror} (MLAGENT_INDEX_URL replaces every index)`] : []),
    `  stages:`,
  ];
  for (const s of plan.stages) {
    const extra = Object.entries(s.command.env).filter(([, v]) => v !== undefined).map(([k, v]) =>
      `${k}=${q(v!)} `
    )
      .join("");
    lines.push(`    ${s.name}:`, `      ${extra}${s.command.argv.map(q).join(" ")}`);
  }
  lines.push(`  verify:`);
  for (const v of plan.profile.verify) {
    lines.push(`    ${v.name}${v.requires_gpu && !plan.gpuPresent ? " (skipped: no GPU)" : ""}`);
  }
  lines.push(`  models:`);
  for (const m of plan.models) lines.push(`    ${m.repo}@${m.revision} -> ${m.local_dir}`);
  if (!plan.models.length) lines.push(`    none`);
  return lines.join("\n");
}

export type { RunResult };
