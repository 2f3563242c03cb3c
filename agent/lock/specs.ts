/** Which file locks which resource, and what a user may call a lock. */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { localLockDir } from "../core/paths.ts";
import type { LockSpec } from "./types.ts";

export function venvLockSpec(venvDir: string, purpose: string): LockSpec {
  const name = venvDir.slice(venvDir.lastIndexOf("/") + 1);
  return { name: `venv:${name}`, path: `${venvDir}.lock`, purpose };
}

/** The directory inside a cache root that holds the cache's lock and its sidecars; cache clean keeps it. */
export const CACHE_LOCK_DIR = ".mlagent-lock";

/**
 * A cache dir's lock is keyed by its canonical path, so two spellings of one cache meet on one lock and
 * unrelated caches never wait for each other. It lives inside the cache root, in CACHE_LOCK_DIR: the one
 * place every process on that cache can agree on whatever its environment. Beside the cache needs a
 * writable parent, which a site's root-owned `/local/cache` (with `/local/cache/USER` the user's own) is
 * not; the node-local lock dir follows MLAGENT_LOCK_DIR and XDG_RUNTIME_DIR, which differ between a cron
 * heal and an install in a job, so two such processes would each take their own lock. The root is the user's
 * own private dir (placement.ts refuses anything else), so no one else can plant files there, and nothing
 * removes the root itself: heals and cleans remove entries inside it, never CACHE_LOCK_DIR.
 */
export function cacheLockSpec(env: Env, cacheDir: string, purpose: string): LockSpec {
  let canonical = cacheDir.replace(/\/+$/, "") || "/";
  try {
    canonical = env.fs.realPathSync(canonical);
  } catch { /* not created yet: the path as given */ }
  const root = canonical === "/" ? "" : canonical;
  return { name: `cache:${canonical}`, path: `${root}/${CACHE_LOCK_DIR}/cache.lock`, purpose };
}

export function downloadLockSpec(targetDir: string, purpose: string): LockSpec {
  return { name: `download:${targetDir}`, path: `${targetDir}/.cache/huggingface/.mlagent.lock`, purpose };
}

export function namedLockSpec(env: Env, name: string, purpose: string): LockSpec {
  validateLockName(name);
  return { name, path: `${localLockDir(env)}/${name}.lock`, purpose };
}

/** A user-given lock name must be one safe path component. Throws bad input (exit 2). */
export function validateLockName(name: string): void {
  const why = name === ""
    ? "is empty"
    : name.includes("/")
    ? "contains '/'"
    : name.includes("..")
    ? "contains '..'"
    // deno-lint-ignore no-control-regex
    : /[\x00-\x1f\x7f]/.test(name)
    ? "contains control characters"
    : name === "."
    ? "is '.'"
    : name.length > 200
    ? "is longer than 200 characters"
    : null;
  if (why) {
    throw badInput(
      `bad lock name ${JSON.stringify(name)}: ${why}`,
      "use letters, digits, '.', '_', '-' or ':' (e.g. train-data or venv:my-model)",
    );
  }
}
