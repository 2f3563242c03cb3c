/**
 * Is a profile ready to run? The judgement `status PROFILE` and `verify` give, from the same functions: the
 * venv's recorded state for the current profile and every pinned package's files at their recorded sizes
 * (inspectVenvState, "full"), and each model complete by its download records (inspectModels). Offline,
 * nothing written.
 */
import type { Env } from "../core/env.ts";
import type { Profile } from "../profiles/types.ts";
import { inspectModels, inspectVenvState, type ModelReport, type VenvReport } from "../status/mod.ts";

export interface Readiness {
  ready: boolean;
  venv: VenvReport;
  models: ModelReport[];
  /** What is wrong, one entry per part, in words; empty when ready. */
  problems: string[];
}

export async function judgeReadiness(env: Env, profile: Profile, venvDir: string): Promise<Readiness> {
  const [venv, models] = await Promise.all([
    inspectVenvState(env, venvDir, profile, { integrity: "full" }),
    inspectModels(env, profile),
  ]);
  const problems: string[] = [];
  if (!venv.ready) {
    problems.push(
      venv.condition === "missing" ? `no venv at ${venvDir}` : `venv ${venvDir} is ${venv.condition}`,
    );
  }
  for (const m of models) {
    if (m.complete) continue;
    const files = [...m.missing, ...m.partial, ...m.corrupt];
    problems.push(
      `model ${m.repo} is incomplete (${m.reason ?? `${files.length} file(s) missing, partial or corrupt`})`,
    );
  }
  return { ready: problems.length === 0, venv, models, problems };
}
