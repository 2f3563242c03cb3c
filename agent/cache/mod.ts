/**
 * The node-local installer cache: where it lives, what in it is corrupt, and how it heals.
 *
 * Layout: one root per user and node (`<TMPDIR or /tmp>/mlagent-cache-<uid>`, or MLAGENT_CACHE_DIR), with
 * `<root>/uv` (UV_CACHE_DIR for uv) and `<root>/pip` (pip --cache-dir) under it, a bookkeeping record
 * `<root>/.mlagent-cache.json` (read by `status` without walking the tree) and `<root>/.mlagent-trash/`
 * where entries wait to be deleted after they were moved out of the installers' way.
 *
 * Concurrency design (a heal must never break a running install):
 * - Heals run only under the cache's exclusive lock (`cacheLockSpec`, keyed by the root's canonical path,
 *   a file in `<root>/.mlagent-lock/`, which every process on the cache finds and no heal or clean removes). Installs that mlagent runs take the
 *   same lock while the installer runs, so a scheduled `cache heal` finds it busy, says so and exits 0; a heal
 *   after an install failure runs inside the install's own hold (`lockHeld`).
 * - Even without the lock (a user's own `pip --cache-dir` on the same tree), a heal touches only entries it
 *   has proven corrupt, which any reader would fail on anyway, and removes them by first renaming them into
 *   the trash: a reader that already opened a file keeps reading it, and a reader that looks the entry up
 *   afterwards sees a plain cache miss and fetches again.
 * - uv's own `.lock` files are never moved or deleted: uv holds them across processes, and removing one
 *   under a live uv lets two writers into the same entry (the corruption this module exists to heal).
 */
import type { Env } from "../core/env.ts";
import { type CacheBook, readBook } from "./book.ts";
import { type CachePlacement, resolveCacheDir } from "./placement.ts";
import { scanCache, type ScanReport } from "./scan.ts";

export { appendHealLog, BOOK_FILE, TRASH_DIR, writeBook } from "./book.ts";
export { decodeCachedResponse } from "./cachecontrol.ts";
export { emptyTrash, healAfterFailure, removeEntry } from "./heal.ts";
export { cacheRootOf, cacheSubdirs, resolveCacheDir } from "./placement.ts";
export { planPrune, type PrunePlan } from "./prune.ts";
export { type CorruptEntry, scanCache, type ScanReport } from "./scan.ts";
export { packageFromBytes, zipProblem } from "./zip.ts";

export interface CacheInfo {
  placement: CachePlacement;
  exists: boolean;
  scan: ScanReport | null;
  book: CacheBook | null;
}

/** Where the cache is, why, on what filesystem, and what a fresh scan finds in it. Changes nothing. */
export async function cacheInfo(env: Env): Promise<CacheInfo> {
  const placement = await resolveCacheDir(env, { create: false });
  let exists = false;
  try {
    exists = (await env.fs.stat(placement.path)).isDirectory;
  } catch { /* not yet created */ }
  if (!exists) return { placement, exists, scan: null, book: null };
  const scan = await scanCache(env, placement.path);
  return { placement, exists, scan, book: await readBook(env, placement.path) };
}
