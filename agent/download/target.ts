/** Which layout a download or a check uses, and where its root is. */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { absolute, modelDir } from "../core/paths.ts";
import type { ModelSpec } from "../profiles/types.ts";
import { hubCacheRepoDir, type Layout, type LayoutKind } from "./layout.ts";
import type { Target } from "./types.ts";

/**
 * Where a profile's model lives, for install, status, prologue and verify alike: its local dir under the
 * models root (modelDir), or its folder in the hub cache (`layout: "hub-cache"`). `dir` is that folder.
 */
export function modelTarget(
  env: Env,
  m: Pick<ModelSpec, "repo" | "local_dir" | "layout">,
): { layout: LayoutKind; localDir?: string; dir: string } {
  if (m.layout === "hub-cache") return { layout: "hub-cache", dir: hubCacheRepoDir(env, m.repo) };
  const dir = modelDir(env, m.repo, m.local_dir);
  return { layout: "local-dir", localDir: dir, dir };
}

/** Where a download of `repo` goes: the local dir given, or the repo's folder in the hub cache. */
export function layoutOf(env: Env, repo: string, t: Target): Layout {
  if (t.layout === "hub-cache") return { kind: "hub-cache", root: hubCacheRepoDir(env, repo, t.hubCacheDir) };
  if (!t.localDir) throw badInput(`no local dir given for ${repo}`, "give --local-dir DIR, or --cache");
  return { kind: "local-dir", root: absolute(env, t.localDir) };
}
