import { modelTarget, verifyLocalModel } from "../download/mod.ts";
import type { Env } from "../core/env.ts";
import type { Profile } from "../profiles/types.ts";
import type { ModelReport } from "./types.ts";

/** A profile's models as verifyLocalModel finds them (offline; unchanged files are hashed only with `deep`). */
export async function inspectModels(
  env: Env,
  profile: Profile,
  { deep = false }: { deep?: boolean } = {},
): Promise<ModelReport[]> {
  return await Promise.all(profile.models.map(async (m) => {
    let localDir = m.local_dir ?? m.repo;
    try {
      const target = modelTarget(env, m);
      localDir = target.dir;
      const v = await verifyLocalModel(env, {
        repo: m.repo,
        revision: m.revision,
        ...target,
        requiredFiles: m.required_files,
        include: m.include,
        exclude: m.exclude,
        deep,
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
