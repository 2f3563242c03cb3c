/** What a cache scan collects, and the bookkeeping every installer's walker shares. */
import type { Env } from "../core/env.ts";

export type Installer = "uv" | "pip";

export interface CorruptEntry {
  /** The entry to remove (a dir for uv archives, the header file for pip HTTP entries). */
  path: string;
  /** Companion files removed with it (pip's `.body`). */
  also: string[];
  installer: Installer;
  /** Normalized project name when it can be told. */
  package: string | null;
  reason: string;
}

export interface ScanReport {
  path: string;
  entries: { uv: number; pip: number; total: number };
  /** Entries mlagent does not recognise: left alone, counted. */
  unknown: number;
  unknown_paths: string[];
  corrupt: CorruptEntry[];
  /** Healthy entries of ScanOptions.package (empty without one): what a targeted heal also removes. */
  matches: CorruptEntry[];
  files: number;
  bytes: number;
  duration_ms: number;
}

export interface ScanOptions {
  /** Stat every file for the byte total (default true). */
  sizes?: boolean;
  /** Also list healthy entries of this package (for a targeted heal). */
  package?: string;
}

/** Entries belonging to ScanOptions.package, healthy or not. */
export interface ScanState {
  report: ScanReport;
  sizes: boolean;
  pkg: string | null;
  matches: CorruptEntry[];
  /** dev:ino of uv archive entries found corrupt, so links to them can be told with one stat. */
  corruptInodes: Set<string>;
}

/** PEP 503 name: lowercase, runs of - _ . to one '-'. */

const MAX_UNKNOWN_LISTED = 50;

export function listDir(env: Env, dir: string): Deno.DirEntry[] {
  try {
    return [...env.fs.readDirSync(dir)];
  } catch {
    return [];
  }
}

export function unknownEntry(env: Env, p: string, e: Deno.DirEntry, st: ScanState) {
  noteUnknown(st, p);
  countFiles(env, p, e, st);
}

export function noteUnknown(st: ScanState, p: string) {
  st.report.unknown++;
  if (st.report.unknown_paths.length < MAX_UNKNOWN_LISTED) st.report.unknown_paths.push(p);
}

/** Counts files (and bytes) under p without judging them. */
export function countFiles(env: Env, p: string, e: Deno.DirEntry | null, st: ScanState) {
  if (e && !e.isDirectory) {
    st.report.files++;
    if (st.sizes) st.report.bytes += sizeOf(env, p);
    return;
  }
  for (const c of listDir(env, p)) countFiles(env, `${p}/${c.name}`, c, st);
}

export function sizeOf(env: Env, p: string): number {
  try {
    return env.fs.lstatSync(p).size;
  } catch {
    return 0;
  }
}

export function noteCorruptInode(env: Env, st: ScanState, dir: string) {
  try {
    const s = env.fs.statSync(dir);
    if (s.ino !== null) st.corruptInodes.add(`${s.dev}:${s.ino}`);
  } catch { /* gone meanwhile */ }
}

export function addCorrupt(st: ScanState, c: CorruptEntry) {
  st.report.corrupt.push(c);
}

export function noteMatch(st: ScanState, c: CorruptEntry) {
  if (st.pkg !== null && c.package === st.pkg) st.matches.push(c);
}

export const MATCH_REASON = "entry of the named package";
