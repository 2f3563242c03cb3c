/** Which layout a download or a check uses, and where its root is. */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { absolute, modelDir } from "../core/paths.ts";
import type { ModelSpec } from "../profiles/types.ts";
import { readRefSync } from "./hub_cache.ts";
import { hubCacheRepoDir, type Layout, type LayoutKind } from "./layout.ts";
import type { Target } from "./types.ts";

/**
 * Where a profile's model lives, for install, status, prologue and verify alike. `dir` is where its files
 * are: the local dir under the models root (modelDir), or in the hub cache (`layout: "hub-cache"`) the
 * snapshot folder `models--ORG--NAME/snapshots/<commit>` of the pinned commit, or of the commit
 * `refs/<revision>` names (read offline, as hf resolves a revision with local_files_only). Before the
 * revision was ever fetched no commit is known and `dir` is the repo's folder `models--ORG--NAME`.
 */
export function modelTarget(
  env: Env,
  m: Pick<ModelSpec, "repo" | "local_dir" | "layout" | "revision">,
): { layout: LayoutKind; localDir?: string; dir: string } {
  if (m.layout === "hub-cache") {
    const root = hubCacheRepoDir(env, m.repo);
    const revision = m.revision ?? "main";
    const commit = /^[0-9a-f]{40}$/.test(revision) ? revision : readRefSync(env, root, revision);
    return { layout: "hub-cache", dir: commit ? `${root}/snapshots/${commit}` : root };
  }
  const dir = modelDir(env, m.repo, m.local_dir);
  return { layout: "local-dir", localDir: dir, dir };
}

/** Where a download of `repo` goes: the local dir given, or the repo's folder in the hub cache. */
export function layoutOf(env: Env, repo: string, t: Target): Layout {
  if (t.layout === "hub-cache") return { kind: "hub-cache", root: hubCacheRepoDir(env, repo, t.hubCacheDir) };
  if (!t.localDir) throw badInput(`no local dir given for ${repo}`, "give --local-dir DIR, or --cache");
  return { kind: "local-dir", root: absolute(env, t.localDir) };
}
