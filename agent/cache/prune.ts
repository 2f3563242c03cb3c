/**
 * The cache's size budget: which entries `cache heal --max-size` removes, least recently used first, until
 * the cache fits. Torch and the other multi-GB wheels stay in the node-local cache so each venv on the node
 * reuses them; this bound is what keeps that from filling the disk.
 *
 * "Recently used" is the newest of an entry's file times: mtime (written or refreshed) and atime (read by an
 * install), except for the files the heal's own scan reads (uv's RECORD, pip's HTTP headers), which count by
 * mtime alone, or every scheduled heal would make every entry look fresh. atime is kept because mtime alone
 * ranks a torch wheel downloaded a month ago and installed every hour as the oldest entry; on relatime mounts
 * atime moves at most once a day, which is fine grain for a budget pruned hourly or daily.
 *
 * Units are what an installer treats as one thing: a uv archive dir (an unpacked wheel), a pip HTTP entry
 * (its header file with its `.body`, for http-v2), a wheel pip built and cached. uv's `.lock` files and
 * entries already found corrupt (removed by the heal itself) are never candidates. Callers run this under
 * the cache lock, which installs hold while their installer runs, so no entry in use is pruned.
 */
import type { Env } from "../core/env.ts";
import type { ScanReport } from "./scan.ts";

export interface PruneUnit {
  /** The entry, then the files that go with it (a pip header's `.body`). */
  paths: string[];
  bytes: number;
  /** Newest use, ms since the epoch (see the module comment for which times count). */
  usedMs: number;
}

export interface PrunePlan {
  units: PruneUnit[];
  /** Every path to remove, in order. */
  paths: string[];
  bytes: number;
  /** The cache's size before and after, as the scan measured it. */
  before_bytes: number;
  after_bytes: number;
}

const PIP_HEADER = /^[0-9a-f]{56}$/;

/** The least recently used units to remove so the cache (scan.bytes) fits maxBytes; empty when it fits. */
export function planPrune(env: Env, root: string, scan: ScanReport, maxBytes: number): PrunePlan {
  const empty = { units: [], paths: [], bytes: 0, before_bytes: scan.bytes, after_bytes: scan.bytes };
  if (scan.bytes <= maxBytes) return empty;
  const corrupt = new Set(scan.corrupt.flatMap((c) => [c.path, ...c.also]));
  const units: PruneUnit[] = [];
  const add = (paths: string[]) => {
    if (paths.some((p) => corrupt.has(p) || p.endsWith("/.lock"))) return;
    let bytes = 0, used = 0;
    for (const p of paths) {
      const m = measure(env, p);
      bytes += m.bytes;
      used = Math.max(used, m.usedMs);
    }
    if (bytes > 0 || used > 0) units.push({ paths, bytes, usedMs: used });
  };
  const uv = `${root}/uv`, pip = `${root}/pip`;
  for (const bucket of dirEntries(env, uv)) {
    if (!/^archive-v\d+$/.test(bucket.name)) continue;
    for (const a of dirEntries(env, `${uv}/${bucket.name}`)) {
      if (a.name !== ".lock") add([`${uv}/${bucket.name}/${a.name}`]);
    }
  }
  const walkPip = (d: string) => {
    for (const e of dirEntries(env, d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) walkPip(p);
      else if (PIP_HEADER.test(e.name)) add(exists(env, `${p}.body`) ? [p, `${p}.body`] : [p]);
      else if (e.name.endsWith(".whl")) add([p]);
    }
  };
  for (const b of dirEntries(env, pip)) {
    if (b.isDirectory && (b.name === "http" || b.name === "http-v2" || b.name === "wheels")) {
      walkPip(`${pip}/${b.name}`);
    }
  }
  // Oldest first; among equals the larger goes first, so fewer entries are removed for the same room.
  units.sort((a, b) => a.usedMs - b.usedMs || b.bytes - a.bytes);
  const chosen: PruneUnit[] = [];
  let total = scan.bytes;
  for (const u of units) {
    if (total <= maxBytes) break;
    chosen.push(u);
    total -= u.bytes;
  }
  const bytes = chosen.reduce((n, u) => n + u.bytes, 0);
  return {
    units: chosen,
    paths: chosen.flatMap((u) => u.paths),
    bytes,
    before_bytes: scan.bytes,
    after_bytes: scan.bytes - bytes,
  };
}

function measure(env: Env, path: string): { bytes: number; usedMs: number } {
  let bytes = 0, used = 0;
  const walk = (q: string) => {
    let st: Deno.FileInfo;
    try {
      st = env.fs.lstatSync(q);
    } catch {
      return;
    }
    const name = q.slice(q.lastIndexOf("/") + 1);
    const readByScan = st.isDirectory || name === "RECORD" || PIP_HEADER.test(name);
    used = Math.max(used, st.mtime?.getTime() ?? 0, readByScan ? 0 : st.atime?.getTime() ?? 0);
    if (st.isDirectory) { for (const e of dirEntries(env, q)) walk(`${q}/${e.name}`); }
    else bytes += st.size;
  };
  walk(path);
  return { bytes, usedMs: used };
}

function dirEntries(env: Env, dir: string): Deno.DirEntry[] {
  try {
    return [...env.fs.readDirSync(dir)];
  } catch {
    return [];
  }
}

function exists(env: Env, p: string): boolean {
  try {
    env.fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
