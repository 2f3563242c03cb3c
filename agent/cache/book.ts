/** The cache's bookkeeping record (read by status without walking the tree), its trash dir and the heal log. */
import type { Env } from "../core/env.ts";
import { stateDir } from "../core/paths.ts";
import { readJson, writeJsonAtomic } from "../core/atomic.ts";

export const BOOK_FILE = ".mlagent-cache.json";
export const TRASH_DIR = ".mlagent-trash";
export interface HealRecord {
  at: string;
  action: "targeted" | "moved-aside" | "scan" | "clean" | "none";
  removed: number;
  corrupt_found: number;
  package: string | null;
  message: string;
}

export interface CacheBook {
  bytes: number | null;
  entries: number | null;
  corrupt_entries: number | null;
  unknown_entries: number | null;
  scanned_at: string | null;
  last_heal_at: string | null;
  last_heal: HealRecord | null;
}

export async function readBook(env: Env, root: string): Promise<CacheBook | null> {
  const r = await readJson<CacheBook>(env, `${root}/${BOOK_FILE}`);
  return r.kind === "ok" && r.value && typeof r.value === "object" ? r.value : null;
}

/** Updates the record `status` reads (so it never walks the tree). */
export async function writeBook(env: Env, root: string, patch: Partial<CacheBook>): Promise<void> {
  const old = (await readBook(env, root)) ?? {
    bytes: null,
    entries: null,
    corrupt_entries: null,
    unknown_entries: null,
    scanned_at: null,
    last_heal_at: null,
    last_heal: null,
  };
  try {
    await writeJsonAtomic(env, `${root}/${BOOK_FILE}`, { ...old, ...patch }, 0o600);
  } catch (e) {
    env.log.warn(`cannot write the cache record ${root}/${BOOK_FILE}: ${(e as Error).message}`);
  }
}

/** Appends one JSON line per heal to $XDG_STATE_HOME/mlagent/cache-heal.log (for cron and post-mortems). */
export async function appendHealLog(env: Env, line: Record<string, unknown>): Promise<string | null> {
  const dir = stateDir(env);
  const path = `${dir}/cache-heal.log`;
  try {
    await env.fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await env.fs.writeTextFile(path, JSON.stringify(line) + "\n", { append: true, mode: 0o600 });
    return path;
  } catch (e) {
    env.log.warn(`cannot append to ${path}: ${(e as Error).message}`);
    return null;
  }
}
