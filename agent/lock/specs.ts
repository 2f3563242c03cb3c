/** Which file locks which resource, and what a user may call a lock. */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { localLockDir } from "../core/paths.ts";
import { dirOf } from "./files.ts";
import type { LockSpec } from "./types.ts";

export function venvLockSpec(venvDir: string, purpose: string): LockSpec {
  const name = venvDir.slice(venvDir.lastIndexOf("/") + 1);
  return { name: `venv:${name}`, path: `${venvDir}.lock`, purpose };
}

/**
 * A cache dir's lock is keyed by its canonical path, so two spellings of one cache meet on one lock and
 * unrelated caches never wait for each other. It sits beside the cache (so users sharing a cache share the
 * lock; not inside it, since a heal may remove the whole dir), except where the parent is writable by
 * everyone (the default cache under /tmp): there others could plant files, so it goes in our private dir.
 */
export function cacheLockSpec(env: Env, cacheDir: string, purpose: string): LockSpec {
  let canonical = cacheDir.replace(/\/+$/, "") || "/";
  try {
    canonical = env.fs.realPathSync(canonical);
  } catch { /* not created yet: the path as given */ }
  const name = `cache:${canonical}`;
  let parentShared = true;
  try {
    parentShared = ((env.fs.statSync(dirOf(canonical)).mode ?? 0o777) & 0o002) !== 0;
  } catch { /* parent missing: treat as shared, the private dir is always safe */ }
  if (!parentShared) return { name, path: `${canonical}.lock`, purpose };
  const key = canonical.replace(/[^A-Za-z0-9._-]/g, "_").slice(-180);
  return { name, path: `${localLockDir(env)}/cache-${key}.lock`, purpose };
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
