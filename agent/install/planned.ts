/**
 * The install when the venv is not ready as it stands: plan (doctor, interpreter, CUDA variant, installer,
 * every argv), index reachability and room, then under the venv's lock create or repair the venv, run the
 * stages that changed, verify, record `ready` last. Loaded only when a no-op is not enough.
 */
import type { Env } from "../core/env.ts";
import type { ResolvedProfile } from "./recorded.ts";
import { venvLockSpec, withLock } from "../lock/mod.ts";
import { installLocked } from "./build.ts";
import { type Gathered, planInstall } from "./plan.ts";
import { checkIndexes } from "./reach.ts";
import { baseReport, planReport } from "./report.ts";
import type { InstallOptions, InstallPlan, InstallReport } from "./types.ts";
import { readyAsPlanned } from "./ready.ts";
import { readVenvState } from "./state.ts";
import { modelNeed, requireSpace } from "./space.ts";

/** The plan and, unless dryRun, the install it calls for; `report` is null for a dry run. */
export async function installPlanned(
  env: Env,
  opts: InstallOptions,
  resolved: ResolvedProfile,
  gathered: Gathered,
  started: number,
): Promise<{ plan: InstallPlan; report: InstallReport }> {
  const plan = await planInstall(env, opts, resolved, gathered);
  if (opts.dryRun) return { plan, report: planReport(plan) };
  const profile = plan.profile;

  if (!opts.force) {
    const ready = await readyAsPlanned(env, plan);
    if (ready) return { plan, report: { ...baseReport(plan), action: "none", packages: ready.packages } };
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
  return { plan, report };
}
