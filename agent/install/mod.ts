/**
 * `mlagent install`: a profile in, a ready and verified venv out, or a clear failure and a venv whose state
 * says so. Order: load and validate the profile (bad input writes nothing), the no-op check (ready.ts),
 * then only when there is work: doctor, plan (interpreter, CUDA variant, installer, every argv), index
 * reachability, and under the venv's lock create or repair the venv, run the stages that changed, verify,
 * record `ready` last (planned.ts, loaded only then). Models are fetched after the venv is ready, outside
 * its lock.
 *
 * The modules a no-op does not run are imported by a specifier Deno's module graph does not follow
 * (`"./" + "planned" + ".ts"`, as the command table does), so a no-op reads 43 modules, not 106;
 * scripts/build.ts includes them in the binary.
 */
import type { Env } from "../core/env.ts";
import { resolveProfile } from "./recorded.ts";
import type { Profile } from "../profiles/types.ts";
import type { Gathered } from "./plan.ts";
import { requirePlacesTrusted } from "./inputs.ts";
import { readyBeforeDoctor } from "./ready.ts";
import type { InstallOptions, InstallPlan, InstallReport } from "./types.ts";

export { pythonSatisfies } from "./interpreter.ts";
export { classifyFetchError, probeIndex } from "./reach.ts";
export { planReport } from "./report.ts";
export type { InstallPlan, InstallReport } from "./types.ts";

/** Typed here, loaded by the spelling above. */
type PlanModule = typeof import("./plan.ts");

/** Loads the profile, runs the doctor and resolves everything a run needs. Writes nothing. */
export async function planInstall(env: Env, opts: InstallOptions): Promise<InstallPlan> {
  const plan: PlanModule = await import("./" + "plan" + ".ts");
  return plan.planInstall(env, opts);
}

/** Runs install (or shows the plan with dryRun). Throws MlagentError for every expected failure. */
export async function install(env: Env, opts: InstallOptions): Promise<InstallReport> {
  const started = env.now();
  const resolved = await resolveProfile(env, opts.profile, opts.root);
  const profile = resolved.profile;
  requirePlacesTrusted(env, profile, opts);
  const gathered: Gathered = {};
  if (!opts.force && !opts.dryRun) {
    const quick = await readyBeforeDoctor(env, opts, profile, gathered);
    if (quick) return await finishWithModels(env, profile, null, opts, quick, started);
  }
  const { installPlanned }: typeof import("./planned.ts") = await import("./" + "planned" + ".ts");
  const { plan, report } = await installPlanned(env, opts, resolved, gathered, started);
  if (opts.dryRun) return report;
  return await finishWithModels(env, profile, plan.models, opts, report, started);
}

/** Fetches the models (`models` null: where the profile's models go); the download code loads only for some. */
async function finishWithModels(
  env: Env,
  profile: Profile,
  models: InstallPlan["models"] | null,
  opts: InstallOptions,
  report: InstallReport,
  started: number,
): Promise<InstallReport> {
  report.models = await modelsOf(env, profile, models, opts);
  if (report.models.some((m) => !m.ok)) report.ok = false;
  report.duration_ms = env.now() - started;
  return report;
}

async function modelsOf(
  env: Env,
  profile: Profile,
  models: InstallPlan["models"] | null,
  opts: InstallOptions,
): Promise<InstallReport["models"]> {
  if (!profile.models.length) return [];
  const plan: PlanModule = await import("./" + "plan" + ".ts");
  const targets = models ?? plan.modelTargets(env, profile);
  if (opts.noModels) {
    return targets.map((m) => ({ repo: m.repo, local_dir: m.local_dir, ok: true, skipped: true }));
  }
  const { fetchModels }: typeof import("./models.ts") = await import("./" + "models" + ".ts");
  return await fetchModels(env, profile, targets);
}
