/** Which file locks which resource, and what a user may call a lock. */
import { sha256Hex } from "../core/hash.ts";
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { localLockDir } from "../core/paths.ts";
import type { LockSpec } from "./types.ts";

/**
 * The most bytes of a lock's name that go into its file name. Filesystems allow 255 bytes per name
 * (NAME_MAX), and the lock's files add to it: `.lock`, then `.heartbeat`, `.break`, a temp suffix and
 * `-HOST-PID-TOKEN` for a claim moved aside (a 64-byte host name included), about 110 bytes in all.
 */
export const LOCK_STEM_MAX_BYTES = 128;
/** A user-given lock name longer than this is refused; up to it, a long name is hashed into its file name. */
export const LOCK_NAME_MAX_BYTES = 1024;

const utf8 = new TextEncoder();

/**
 * The file-name stem for a lock name: the name itself when it fits LOCK_STEM_MAX_BYTES (every lock that
 * ever existed keeps its path), else its first bytes (whole characters), "~" and 16 hex digits of its
 * SHA-256. Deterministic, so every process meets on one file; the full name stays in the owner record, and
 * the stem `lock list` shows names the same file again when given to `lock check` or `lock run`.
 */
export function lockStem(name: string): string {
  if (utf8.encode(name).length <= LOCK_STEM_MAX_BYTES) return name;
  const hash = sha256Hex(name).slice(0, 16);
  let prefix = "";
  let bytes = 0;
  for (const ch of name) {
    const n = utf8.encode(ch).length;
    if (bytes + n > LOCK_STEM_MAX_BYTES - hash.length - 1) break;
    prefix += ch;
    bytes += n;
  }
  return `${prefix}~${hash}`;
}

export function venvLockSpec(venvDir: string, purpose: string): LockSpec {
  const cut = venvDir.lastIndexOf("/");
  const name = venvDir.slice(cut + 1);
  return { name: `venv:${name}`, path: `${venvDir.slice(0, cut)}/${lockStem(name)}.lock`, purpose };
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
  return { name, path: `${localLockDir(env)}/${lockStem(name)}.lock`, purpose };
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
    : utf8.encode(name).length > LOCK_NAME_MAX_BYTES
    ? `is ${utf8.encode(name).length} bytes long, more than the limit of ${LOCK_NAME_MAX_BYTES}`
    : null;
  if (why) {
    throw badInput(
      `bad lock name ${JSON.stringify(name.length > 80 ? `${name.slice(0, 60)}...` : name)}: ${why}`,
      "use letters, digits, '.', '_', '-' or ':' (e.g. train-data or venv:my-model)",
    );
  }
}
