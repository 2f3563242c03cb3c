/** Walking a cache once and judging each entry; changes nothing. */
import type { Env } from "../core/env.ts";
import { canonicalName } from "../core/pep503.ts";
import { CACHE_LOCK_DIR } from "../lock/mod.ts";
import { BOOK_FILE, TRASH_DIR } from "./book.ts";
import {
  countFiles,
  listDir,
  type ScanOptions,
  type ScanReport,
  type ScanState,
  unknownEntry,
} from "./entries.ts";
import { scanPip } from "./pip.ts";
import { scanUv } from "./uv.ts";

export type { CorruptEntry, Installer, ScanReport } from "./entries.ts";

const ROOT_KNOWN = new Set(["uv", "pip", BOOK_FILE, TRASH_DIR]);
/** Walks the cache once and reports corrupt and unknown entries. Never changes anything. */
export async function scanCache(env: Env, cacheDir: string, opts: ScanOptions = {}): Promise<ScanReport> {
  const started = env.now();
  const st: ScanState = {
    report: {
      path: cacheDir,
      entries: { uv: 0, pip: 0, total: 0 },
      unknown: 0,
      unknown_paths: [],
      corrupt: [],
      matches: [],
      files: 0,
      bytes: 0,
      duration_ms: 0,
    },
    sizes: opts.sizes ?? true,
    pkg: opts.package ? canonicalName(opts.package) : null,
    matches: [],
    corruptInodes: new Set(),
  };
  for (const e of listDir(env, cacheDir)) {
    const p = `${cacheDir}/${e.name}`;
    // The cache's lock and its records: not cache content, and never touched by a heal or a clean.
    if (e.name === CACHE_LOCK_DIR) continue;
    if (e.name === "uv" && e.isDirectory) scanUv(env, p, st);
    else if (e.name === "pip" && e.isDirectory) await scanPip(env, p, st);
    else if (ROOT_KNOWN.has(e.name) || e.name.startsWith(".mlagent-probe-")) countFiles(env, p, e, st);
    else unknownEntry(env, p, e, st);
  }
  st.report.entries.total = st.report.entries.uv + st.report.entries.pip;
  st.report.duration_ms = env.now() - started;
  st.report.matches = st.matches;
  return st.report;
}
