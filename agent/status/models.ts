import { verifyLocalModel } from "../download/mod.ts";
import type { Env } from "../core/env.ts";
import { absolute, modelsRoot } from "../core/paths.ts";
import type { Profile } from "../profiles/types.ts";
import type { ModelReport } from "./types.ts";

/** A profile's models as verifyLocalModel finds them (offline, no hashing of unchanged files). */
export async function inspectModels(env: Env, profile: Profile): Promise<ModelReport[]> {
  const mroot = modelsRoot(env);
  return await Promise.all(profile.models.map(async (m) => {
    const localDir = m.local_dir ? absolute({ ...env, cwd: mroot }, m.local_dir) : `${mroot}/${m.repo}`;
    try {
      const v = await verifyLocalModel(env, {
        repo: m.repo,
        revision: m.revision,
        localDir,
        requiredFiles: m.required_files,
        include: m.include,
        exclude: m.exclude,
      });
      return {
        repo: m.repo,
        revision: m.revision ?? null,
        local_dir: v.local_dir,
        complete: v.complete,
        files: v.files,
        bytes: v.bytes,
        missing: v.missing,
        partial: v.partial,
        corrupt: v.corrupt,
        reason: v.reason,
      };
    } catch (e) {
      return {
        repo: m.repo,
        revision: m.revision ?? null,
        local_dir: localDir,
        complete: false,
        files: 0,
        bytes: 0,
        missing: [],
        partial: [],
        corrupt: [],
        reason: e instanceof Error ? e.message : String(e),
      };
    }
  }));
}
