/**
 * `mlagent verify PROFILE`: proof that a profile's venv and models are what install left, for cron and for
 * the prologue. The venv's state, the integrity check (every RECORD file at its size; with deep, at its hash
 * too), the profile's verify steps, and the models; each reported, none skipped because another failed.
 * Reads and runs only: nothing is written, so a kill at any point changes no verdict.
 */
import { gatherGpu } from "../checks/gpu.ts";
import type { Env } from "./core/env.ts";
import { modelsRoot, venvDir as venvDirOf } from "./core/paths.ts";
import type { Profile } from "./profiles/types.ts";
import { inspectModels } from "./status/models.ts";
import type { ModelReport, VenvReport } from "./status/types.ts";
import { inspectVenvState } from "./status/venvs.ts";
import { runVerifyStep, type VerifyStepResult } from "./install/verify_steps.ts";
import { requireTrustedDir } from "./core/trust.ts";

export interface VerifyOptions {
  root?: string;
  /** Also hash every file against its RECORD, and every model file against its recorded hash. */
  deep?: boolean;
  /** Progress of the deep checks: what is being hashed, how far. */
  onProgress?: (what: string, done: number, total: number) => void;
  probeTimeoutMs?: number;
}

export interface VerifyReport {
  ok: boolean;
  profile: string;
  deep: boolean;
  venv: VenvReport;
  steps: VerifyStepResult[];
  models: ModelReport[];
  duration_ms: number;
}

export async function verifyProfile(
  env: Env,
  profile: Profile,
  opts: VerifyOptions = {},
): Promise<VerifyReport> {
  const started = env.now();
  const deep = opts.deep ?? false;
  const venvPath = venvDirOf(env, profile.name, opts.root);
  // The verify steps run the venv's python: it must be the user's own, as must what leads to it.
  requireTrustedDir(env, venvPath, "venv");
  if (profile.models.length) requireTrustedDir(env, modelsRoot(env), "models dir");
  const venv = await inspectVenvState(env, venvPath, profile, {
    integrity: deep ? "deep" : "full",
    onProgress: (done, total) => opts.onProgress?.("venv files", done, total),
  });
  // Steps run only in a venv that exists and is ours; a damaged one still runs them (they say what broke).
  const runnable = venv.ready || venv.condition === "damaged" || venv.condition === "outdated";
  const steps: VerifyStepResult[] = [];
  if (runnable && profile.verify.length) {
    const gpuPresent = profile.verify.some((s) => s.requires_gpu)
      ? (await gatherGpu(env, opts.probeTimeoutMs ?? 15_000)).devices.length > 0
      : false;
    for (const step of profile.verify) steps.push(await runVerifyStep(env, venvPath, step, { gpuPresent }));
  }
  const models = await inspectModels(env, profile, { deep });
  const ok = venv.ready && steps.every((s) => s.ok) && models.every((m) => m.complete);
  return { ok, profile: profile.name, deep, venv, steps, models, duration_ms: env.now() - started };
}
