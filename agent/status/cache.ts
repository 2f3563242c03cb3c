import { readJson } from "../core/atomic.ts";
import type { Env } from "../core/env.ts";
import { BOOK_FILE, resolveCacheDir } from "../cache/mod.ts";
import type { CacheReport } from "./types.ts";
import { exists } from "./venvs.ts";

/**
 * The installer cache: where agent/cache.ts puts it, on what filesystem, and the numbers its own record
 * (`.mlagent-cache.json`, updated by every scan and heal) keeps. Never walks the tree: a cache of 100k
 * files would cost seconds on every status call; `mlagent cache info` does the walk.
 */
export async function inspectCache(env: Env): Promise<CacheReport> {
  const placement = await resolveCacheDir(env, { create: false });
  const path = placement.path;
  const report: CacheReport = {
    ...unreadCache(null),
    path,
    exists: await exists(env, path),
    filesystem: placement.fs_type,
    network: placement.network,
  };
  if (!report.exists) return report;
  const book = await readJson<Record<string, unknown>>(env, `${path}/${BOOK_FILE}`);
  if (book.kind === "corrupt") report.problem = `cache record ${path}/${BOOK_FILE} is corrupt: ${book.error}`;
  if (book.kind === "ok" && book.value && typeof book.value === "object") {
    const b = book.value;
    const num = (k: string) => (typeof b[k] === "number" ? b[k] as number : null);
    report.bytes = num("bytes");
    report.entries = num("entries");
    report.corrupt_entries = num("corrupt_entries");
    report.last_heal_at = typeof b.last_heal_at === "string" ? b.last_heal_at : null;
  }
  return report;
}

/** A cache report with nothing read: `problem` says why (null while it is being filled in). */
export function unreadCache(problem: string | null): CacheReport {
  return {
    path: "",
    exists: false,
    filesystem: null,
    network: null,
    bytes: null,
    entries: null,
    corrupt_entries: null,
    last_heal_at: null,
    problem,
  };
}
