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
 *   a file beside the root so a heal can remove everything inside it). Installs that mlagent runs take the
 *   same lock while the installer runs, so a scheduled `cache heal` finds it busy, says so and exits 0; a heal
 *   after an install failure runs inside the install's own hold (`lockHeld`).
 * - Even without the lock (a user's own `pip --cache-dir` on the same tree), a heal touches only entries it
 *   has proven corrupt, which any reader would fail on anyway, and removes them by first renaming them into
 *   the trash: a reader that already opened a file keeps reading it, and a reader that looks the entry up
 *   afterwards sees a plain cache miss and fetches again.
 * - uv's own `.lock` files are never moved or deleted: uv holds them across processes, and removing one
 *   under a live uv lets two writers into the same entry (the corruption this module exists to heal).
 */
import { constants as zlibConstants, gunzipSync } from "node:zlib";
import type { FailureVerdict } from "../install/classify.ts";
import type { Env } from "../core/env.ts";
import { badInput, failed } from "../core/errors.ts";
import { mountForPath, readMounts } from "../core/mounts.ts";
import { absolute, stateDir } from "../core/paths.ts";
import { readJson, writeJsonAtomic, writeProbeProblem } from "../core/atomic.ts";
import { cacheLockSpec, withLock } from "../lock/mod.ts";
import { isoTime } from "../core/output.ts";
import { findOnPath } from "../core/run.ts";

export const BOOK_FILE = ".mlagent-cache.json";
export const TRASH_DIR = ".mlagent-trash";

// ------------------------------------------------------------------------------------------------ placement

export interface CachePlacement {
  path: string;
  /** Why this path, in words. */
  reason: string;
  fs_type: string | null;
  network: boolean;
  /** Candidates passed over and why (TMPDIR not owned by us, ...). */
  rejected: { path: string; reason: string }[];
  /** The user's configured installer caches that sit on a network filesystem, and why mlagent ignores them. */
  notices: string[];
}

export interface ResolveOptions {
  /** Create the dir (mode 0700) when missing (default true). `cache info` only looks. */
  create?: boolean;
}

/**
 * Picks the node-local cache: MLAGENT_CACHE_DIR; else under TMPDIR when it is a directory, writable, ours,
 * and not writable by others without the sticky bit; else under /tmp. Throws bad input (exit 2) naming the
 * path when the chosen dir is a file, a symlink to someone else's dir, owned by someone else, or unwritable.
 */
export async function resolveCacheDir(env: Env, opts: ResolveOptions = {}): Promise<CachePlacement> {
  const rejected: { path: string; reason: string }[] = [];
  let path: string;
  let reason: string;
  if (env.vars.MLAGENT_CACHE_DIR) {
    path = absolute(env, env.vars.MLAGENT_CACHE_DIR);
    reason = "MLAGENT_CACHE_DIR";
  } else {
    const raw = env.vars.TMPDIR;
    const why = raw ? await judgeTmpdirForCache(env, absolute(env, raw)) : null;
    if (raw && why === null) {
      path = `${absolute(env, raw)}/mlagent-cache-${env.uid}`;
      reason = "under TMPDIR (node-local, yours)";
    } else {
      if (raw && why) rejected.push({ path: absolute(env, raw), reason: why });
      path = `/tmp/mlagent-cache-${env.uid}`;
      reason = raw ? `under /tmp (TMPDIR ${why})` : "under /tmp (TMPDIR unset)";
    }
  }
  await checkCacheDir(env, path, opts.create ?? true);
  const mounts = readMounts(env);
  const mount = mountForPath(env, path, mounts);
  const notices: string[] = [];
  const home = env.vars.HOME || `/tmp/mlagent-${env.uid}`;
  const configured: [string, string | undefined][] = [
    ["UV_CACHE_DIR", env.vars.UV_CACHE_DIR],
    ["PIP_CACHE_DIR", env.vars.PIP_CACHE_DIR],
    ["~/.cache", env.vars.XDG_CACHE_HOME || `${home}/.cache`],
  ];
  for (const [name, dir] of configured) {
    if (!dir) continue;
    const m = mountForPath(env, absolute(env, dir), mounts);
    if (m?.network) {
      notices.push(
        `${name} (${dir}) is on ${m.fsType} (network): installers' locks and atomic renames are unreliable ` +
          `there and every read crosses the network; mlagent uses the node-local cache ${path} instead`,
      );
    }
  }
  if (mount?.network) {
    notices.push(
      `the cache ${path} itself is on ${mount.fsType} (network); set MLAGENT_CACHE_DIR to a local disk`,
    );
  }
  return {
    path,
    reason,
    fs_type: mount?.fsType ?? null,
    network: mount?.network ?? false,
    rejected,
    notices,
  };
}

/** Why TMPDIR cannot hold a per-user cache, or null when it can. */
async function judgeTmpdirForCache(env: Env, dir: string): Promise<string | null> {
  let st: Deno.FileInfo;
  try {
    st = await env.fs.stat(dir);
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? "does not exist" : `cannot be read (${(e as Error).message})`;
  }
  if (!st.isDirectory) return "is not a directory";
  if (st.uid !== null && st.uid !== env.uid) {
    const mode = st.mode ?? 0;
    // Someone else's dir: only a sticky, world-writable one (a site /scratch) is safe to create ours under.
    if ((mode & 0o002) === 0 || (mode & 0o1000) === 0) return `is owned by uid ${st.uid}, not by you`;
  }
  const mode = st.mode ?? 0;
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) return "is writable by others without the sticky bit";
  return await writeProbeProblem(env, dir);
}

/** Refuses a cache path that is a file, someone else's (directly or through a symlink), or unwritable. */
async function checkCacheDir(env: Env, path: string, create: boolean): Promise<void> {
  const hint = "set MLAGENT_CACHE_DIR to a directory of your own on a local disk, or remove this one";
  let lst: Deno.FileInfo | null = null;
  try {
    lst = await env.fs.lstat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw badInput(`cache dir ${path} cannot be read: ${(e as Error).message}`, hint);
    }
  }
  if (lst === null) {
    if (!create) return;
    try {
      await env.fs.mkdir(path, { recursive: true, mode: 0o700 });
      await env.fs.chmod(path, 0o700);
    } catch (e) {
      throw badInput(`cannot create the cache dir ${path}: ${(e as Error).message}`, hint);
    }
    lst = await env.fs.lstat(path);
  }
  let st = lst;
  if (lst.isSymlink) {
    try {
      st = await env.fs.stat(path);
    } catch {
      throw badInput(`cache dir ${path} is a dangling symlink`, hint);
    }
    if (st.uid !== null && st.uid !== env.uid) {
      throw badInput(
        `cache dir ${path} is a symlink to a directory owned by uid ${st.uid}, not by you (uid ${env.uid})`,
        hint,
      );
    }
  }
  if (!st.isDirectory) throw badInput(`cache dir ${path} is not a directory`, hint);
  if (st.uid !== null && st.uid !== env.uid) {
    throw badInput(`cache dir ${path} is owned by uid ${st.uid}, not by you (uid ${env.uid})`, hint);
  }
  const unwritable = await writeProbeProblem(env, path);
  if (unwritable) throw badInput(`cache dir ${path} ${unwritable}`, hint);
}

/** The installers' caches under the root. */
export function cacheSubdirs(path: string): { uv: string; pip: string } {
  return { uv: `${path}/uv`, pip: `${path}/pip` };
}

/** The root for a dir an install passes (the root itself, or its `uv`/`pip` subdir). */
export function cacheRootOf(dir: string, installer?: "uv" | "pip"): string {
  const d = dir.replace(/\/+$/, "");
  for (const sub of installer ? [installer] : ["uv", "pip"]) {
    if (d.endsWith(`/${sub}`)) return d.slice(0, -sub.length - 1) || "/";
  }
  return d;
}

// ------------------------------------------------------------------------------------------------ scanning

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
interface ScanState {
  report: ScanReport;
  sizes: boolean;
  pkg: string | null;
  matches: CorruptEntry[];
  /** dev:ino of uv archive entries found corrupt, so links to them can be told with one stat. */
  corruptInodes: Set<string>;
}

/** PEP 503 name: lowercase, runs of - _ . to one '-'. */
export const normalizePackage = (name: string) => name.toLowerCase().replace(/[-_.]+/g, "-");

const UV_BUCKET =
  /^(archive|wheels|built-wheels|sdists|simple|flat-index|git|interpreter|builds|environments|python|binaries|files|osv|wheel-metadata)-v\d+$/;
const UV_ROOT_FILES = new Set(["CACHEDIR.TAG", ".gitignore", ".lock", ".git"]);
const PIP_KNOWN = new Set(["http", "http-v2", "wheels", "selfcheck", "selfcheck.json"]);
const ROOT_KNOWN = new Set(["uv", "pip", BOOK_FILE, TRASH_DIR]);
const MAX_UNKNOWN_LISTED = 50;

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
    pkg: opts.package ? normalizePackage(opts.package) : null,
    matches: [],
    corruptInodes: new Set(),
  };
  for (const e of listDir(env, cacheDir)) {
    const p = `${cacheDir}/${e.name}`;
    if (e.name === "uv" && e.isDirectory) scanUv(env, p, st);
    else if (e.name === "pip" && e.isDirectory) await scanPip(env, p, st);
    else if (ROOT_KNOWN.has(e.name) || e.name.startsWith(".mlagent-probe-")) countFiles(env, p, e, st);
    else unknown(env, p, e, st);
  }
  st.report.entries.total = st.report.entries.uv + st.report.entries.pip;
  st.report.duration_ms = env.now() - started;
  st.report.matches = st.matches;
  return st.report;
}

function listDir(env: Env, dir: string): Deno.DirEntry[] {
  try {
    return [...env.fs.readDirSync(dir)];
  } catch {
    return [];
  }
}

function unknown(env: Env, p: string, e: Deno.DirEntry, st: ScanState) {
  noteUnknown(st, p);
  countFiles(env, p, e, st);
}

function noteUnknown(st: ScanState, p: string) {
  st.report.unknown++;
  if (st.report.unknown_paths.length < MAX_UNKNOWN_LISTED) st.report.unknown_paths.push(p);
}

/** Counts files (and bytes) under p without judging them. */
function countFiles(env: Env, p: string, e: Deno.DirEntry | null, st: ScanState) {
  if (e && !e.isDirectory) {
    st.report.files++;
    if (st.sizes) st.report.bytes += sizeOf(env, p);
    return;
  }
  for (const c of listDir(env, p)) countFiles(env, `${p}/${c.name}`, c, st);
}

function sizeOf(env: Env, p: string): number {
  try {
    return env.fs.lstatSync(p).size;
  } catch {
    return 0;
  }
}

function noteCorruptInode(env: Env, st: ScanState, dir: string) {
  try {
    const s = env.fs.statSync(dir);
    if (s.ino !== null) st.corruptInodes.add(`${s.dev}:${s.ino}`);
  } catch { /* gone meanwhile */ }
}

function addCorrupt(st: ScanState, c: CorruptEntry) {
  st.report.corrupt.push(c);
}

function noteMatch(st: ScanState, c: CorruptEntry) {
  if (st.pkg !== null && c.package === st.pkg) st.matches.push(c);
}

const MATCH_REASON = "entry of the named package";

/** A cached `.whl` file, uv's or pip's: corrupt unless it is a whole zip, else a match for the named package. */
function judgeWheelFile(env: Env, p: string, installer: Installer, pkg: string, st: ScanState) {
  const why = zipProblemSync(env, p);
  const c: CorruptEntry = {
    path: p,
    also: [],
    installer,
    package: pkg,
    reason: why ? `cached wheel ${why}` : MATCH_REASON,
  };
  if (why) addCorrupt(st, c);
  else noteMatch(st, c);
}

// ---- uv

function scanUv(env: Env, root: string, st: ScanState) {
  const buckets = listDir(env, root);
  const archiveBucket = buckets.find((b) => /^archive-v\d+$/.test(b.name));
  const archiveIds = new Set<string>();
  for (const b of buckets) {
    const p = `${root}/${b.name}`;
    if (UV_ROOT_FILES.has(b.name)) {
      countFiles(env, p, b, st);
    } else if (!UV_BUCKET.test(b.name) || !b.isDirectory) {
      unknown(env, p, b, st);
    } else if (/^archive-v\d+$/.test(b.name)) {
      for (const a of listDir(env, p)) {
        const ap = `${p}/${a.name}`;
        if (a.name === ".lock" || a.name.startsWith(".tmp")) {
          countFiles(env, ap, a, st);
          continue;
        }
        if (!a.isDirectory) {
          unknown(env, ap, a, st);
          continue;
        }
        archiveIds.add(a.name);
        st.report.entries.uv++;
        checkUnzippedWheel(env, ap, st);
      }
    } else if (/^wheels-v\d+$/.test(b.name)) {
      // Judged after the archive bucket: a pointer is corrupt when its archive is gone.
    } else {
      countFiles(env, p, b, st);
      st.report.entries.uv += listDir(env, p).length;
    }
  }
  for (const b of buckets) {
    if (/^wheels-v\d+$/.test(b.name) && b.isDirectory) {
      scanUvWheels(
        env,
        `${root}/${b.name}`,
        archiveBucket ? `${root}/${archiveBucket.name}` : null,
        archiveIds,
        st,
      );
    }
  }
}

/**
 * An unzipped wheel (a uv archive entry): must hold exactly one `*.dist-info` with METADATA and RECORD, and
 * every file RECORD lists must exist. A concurrent or interrupted unzip leaves exactly these holes.
 */
function checkUnzippedWheel(env: Env, dir: string, st: ScanState) {
  const files = new Set<string>();
  let distInfo: string | null = null;
  const walk = (abs: string, rel: string) => {
    for (const c of listDir(env, abs)) {
      const r = rel ? `${rel}/${c.name}` : c.name;
      if (c.isDirectory) {
        if (!rel && c.name.endsWith(".dist-info")) distInfo = c.name;
        walk(`${abs}/${c.name}`, r);
      } else {
        files.add(r);
        st.report.files++;
        if (st.sizes) st.report.bytes += sizeOf(env, `${abs}/${c.name}`);
      }
    }
  };
  walk(dir, "");
  const entry = (pkg: string | null, reason: string): CorruptEntry => ({
    path: dir,
    also: [],
    installer: "uv",
    package: pkg,
    reason,
  });
  if (distInfo === null) {
    addCorrupt(st, entry(null, "unzipped wheel without a .dist-info directory"));
    noteCorruptInode(env, st, dir);
    return;
  }
  const di: string = distInfo;
  const pkg = normalizePackage(di.replace(/-[^-]*\.dist-info$/, ""));
  const missing = ["METADATA", "RECORD"].filter((f) => !files.has(`${di}/${f}`));
  let bad: CorruptEntry | null = null;
  if (missing.length) {
    bad = entry(pkg, `${di} lacks ${missing.join(" and ")}`);
  } else {
    let record = "";
    try {
      record = env.fs.readTextFileSync(`${dir}/${di}/RECORD`);
    } catch (e) {
      bad = entry(pkg, `${di}/RECORD cannot be read (${(e as Error).message})`);
    }
    const lost: string[] = [];
    for (const line of record.split("\n")) {
      const file = recordPath(line);
      if (file === null || file.startsWith("../") || file.startsWith("/")) continue;
      if (!files.has(file)) lost.push(file);
    }
    if (!bad && lost.length) {
      bad = entry(
        pkg,
        `RECORD lists ${lost.length} missing file${lost.length === 1 ? "" : "s"} (${
          lost.slice(0, 3).join(", ")
        })`,
      );
    }
  }
  if (bad) {
    addCorrupt(st, bad);
    noteCorruptInode(env, st, dir);
  } else noteMatch(st, entry(pkg, MATCH_REASON));
}

/** The path column of a RECORD line (CSV: quoted when it holds a comma). */
function recordPath(line: string): string | null {
  const l = line.trim();
  if (!l) return null;
  if (l.startsWith('"')) {
    const end = l.indexOf('",');
    return end > 0 ? l.slice(1, end).replaceAll('""', '"') : null;
  }
  const comma = l.indexOf(",");
  return comma === -1 ? l : l.slice(0, comma);
}

/**
 * uv's wheels bucket: `<kind>/[<digest>/]<package>/...` (kind: pypi, index, url, path). A wheel entry is a
 * symlink into the archive bucket (or, in newer uv, a `.http` pointer naming an archive id); either is
 * corrupt when its archive is gone. Old layouts keep unzipped wheels in place (checked like archives) and
 * `.whl` files (checked as zips).
 */
function scanUvWheels(env: Env, bucket: string, archiveDir: string | null, ids: Set<string>, st: ScanState) {
  const visitPackageDir = (dir: string, pkgName: string) => {
    const pkg = normalizePackage(pkgName);
    for (const e of listDir(env, dir)) {
      const p = `${dir}/${e.name}`;
      if (e.name === ".lock") {
        countFiles(env, p, e, st);
        continue;
      }
      st.report.entries.uv++;
      const entry = (reason: string): CorruptEntry => ({
        path: p,
        also: [],
        installer: "uv",
        package: pkg,
        reason,
      });
      if (e.isSymlink) {
        st.report.files++;
        // One stat through the link: realpath would cost a syscall per path component, 8,000 times over.
        let target: Deno.FileInfo;
        try {
          target = env.fs.statSync(p);
        } catch {
          addCorrupt(st, entry("wheel entry points at a missing archive"));
          continue;
        }
        if (target.ino !== null && st.corruptInodes.has(`${target.dev}:${target.ino}`)) {
          // Removing the archive leaves this link dangling: it goes in the same heal.
          addCorrupt(st, entry("wheel entry points at a corrupt archive"));
          continue;
        }
        noteMatch(st, entry(MATCH_REASON));
      } else if (e.isDirectory) {
        checkUnzippedWheel(env, p, st);
      } else if (e.name.endsWith(".whl")) {
        countFiles(env, p, e, st);
        judgeWheelFile(env, p, "uv", pkg, st);
      } else {
        countFiles(env, p, e, st);
        if (e.name.endsWith(".http") && archiveDir) {
          const id = archivePointer(env, p);
          if (id !== null && !ids.has(id)) {
            addCorrupt(st, entry(`wheel entry points at missing archive ${id}`));
            continue;
          }
        }
        noteMatch(st, entry(MATCH_REASON));
      }
    }
  };
  for (const kind of listDir(env, bucket)) {
    const kp = `${bucket}/${kind.name}`;
    if (!kind.isDirectory) {
      if (kind.name === ".lock") countFiles(env, kp, kind, st);
      else unknown(env, kp, kind, st);
      continue;
    }
    if (kind.name === "pypi") {
      for (const p of listDir(env, kp)) if (p.isDirectory) visitPackageDir(`${kp}/${p.name}`, p.name);
    } else if (["index", "url", "path", "editable", "git"].includes(kind.name)) {
      for (const d of listDir(env, kp)) {
        if (!d.isDirectory) continue;
        for (const p of listDir(env, `${kp}/${d.name}`)) {
          if (p.isDirectory) visitPackageDir(`${kp}/${d.name}/${p.name}`, p.name);
        }
      }
    } else {
      unknown(env, kp, kind, st);
    }
  }
}

/** The archive id a uv `.http` pointer names (a msgpack str of 21 nanoid characters), or null. */
function archivePointer(env: Env, path: string): string | null {
  let data: Uint8Array;
  try {
    data = env.fs.readFileSync(path);
  } catch {
    return null;
  }
  for (let i = 0; i + 22 <= data.length; i++) {
    if (data[i] !== 0xb5) continue;
    let ok = true;
    for (let j = 1; j <= 21 && ok; j++) {
      const c = data[i + j];
      ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95;
    }
    if (ok) return new TextDecoder().decode(data.subarray(i + 1, i + 22));
  }
  return null;
}

// ---- pip

async function scanPip(env: Env, root: string, st: ScanState) {
  for (const e of listDir(env, root)) {
    const p = `${root}/${e.name}`;
    if (!PIP_KNOWN.has(e.name)) unknown(env, p, e, st);
    else if (e.name === "http" || e.name === "http-v2") await scanPipHttp(env, p, e.name === "http-v2", st);
    else if (e.name === "wheels") scanPipWheels(env, p, st);
    else countFiles(env, p, e, st);
  }
}

/**
 * pip's HTTP cache (cachecontrol, keyed by sha224 of the URL, five levels of one-character dirs). `http`
 * (pip < 23.3) holds `cc=4,` + msgpack with the body inline; `http-v2` keeps the body in `<key>.body` beside a
 * header file with an empty body. Corrupt: a header that does not decode, a body shorter or longer than its
 * Content-Length, a body missing or unreadable, a zip body (a wheel) that is not a whole zip.
 */
async function scanPipHttp(env: Env, root: string, v2: boolean, st: ScanState) {
  const visit = async (dir: string) => {
    const entries = listDir(env, dir);
    const names = new Set(entries.map((e) => e.name));
    for (const e of entries) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) {
        await visit(p);
        continue;
      }
      st.report.files++;
      const size = st.sizes || e.name.endsWith(".body") ? sizeOf(env, p) : 0;
      if (st.sizes) st.report.bytes += size;
      if (e.name.endsWith(".body")) {
        if (!names.has(e.name.slice(0, -5))) {
          st.report.entries.pip++;
          addCorrupt(st, {
            path: p,
            also: [],
            installer: "pip",
            package: null,
            reason: "cached body without its header",
          });
        }
        continue;
      }
      if (!/^[0-9a-f]{56}$/.test(e.name)) {
        if (!e.name.startsWith(".") && !e.name.endsWith(".lock")) noteUnknown(st, p);
        continue;
      }
      st.report.entries.pip++;
      await judgePipHttpEntry(env, p, v2 && names.has(`${e.name}.body`) ? `${p}.body` : null, v2, st);
    }
  };
  await visit(root);
}

async function judgePipHttpEntry(
  env: Env,
  header: string,
  bodyPath: string | null,
  v2: boolean,
  st: ScanState,
) {
  const also = bodyPath ? [bodyPath] : [];
  const bad = (reason: string, pkg: string | null) =>
    addCorrupt(st, { path: header, also, installer: "pip", package: pkg, reason });
  let raw: Uint8Array;
  try {
    raw = env.fs.readFileSync(header);
  } catch (e) {
    return bad(`cached response cannot be read (${(e as Error).message})`, null);
  }
  const decoded = decodeCachedResponse(raw);
  if (typeof decoded === "string") {
    // pip itself treats an undecodable entry as a miss, but it stays on disk, and a torn write of a v2
    // header next to a whole body is what a killed pip leaves.
    return bad(
      `cached response${v2 ? " header" : ""} is unreadable (${decoded})`,
      bodyPath ? await bodyPackage(env, bodyPath) : null,
    );
  }
  const expected = decoded.contentLength;
  let body: Uint8Array | null = null;
  let bodySize: number;
  if (v2) {
    if (!bodyPath) {
      // Redirects and 304s are stored without a body.
      if (expected && expected > 0 && decoded.status === 200) return bad("cached body is missing", null);
      return;
    }
    try {
      bodySize = env.fs.lstatSync(bodyPath).size;
    } catch (e) {
      return bad(`cached body cannot be read (${(e as Error).message})`, null);
    }
  } else {
    body = decoded.body;
    bodySize = body.length;
  }
  const pkgOf = async () => body ? packageFromBytes(body) : await bodyPackage(env, bodyPath!);
  if (expected !== null && bodySize !== expected && !decoded.compressed) {
    return bad(
      `cached body is ${bodySize} bytes, its Content-Length says ${expected} (${
        bodySize < expected ? "truncated" : "too long"
      })`,
      await pkgOf(),
    );
  }
  // With a Content-Length the size check above already caught a cut body; only unsized bodies are opened.
  const zipWhy = expected !== null && !decoded.compressed
    ? null
    : body
    ? (isZipStart(body) ? zipProblem(body) : null)
    : await zipProblemFile(env, bodyPath!);
  if (zipWhy) return bad(`cached wheel download ${zipWhy}`, await pkgOf());
  if (st.pkg !== null) {
    const pkg = await pkgOf();
    noteMatch(st, {
      path: header,
      also,
      installer: "pip",
      package: pkg,
      reason: MATCH_REASON,
    });
  }
}

/** pip's `wheels/` (wheels built locally from sdists): each `.whl` must be a whole zip. */
function scanPipWheels(env: Env, root: string, st: ScanState) {
  const visit = (dir: string) => {
    for (const e of listDir(env, dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) {
        visit(p);
        continue;
      }
      st.report.files++;
      if (st.sizes) st.report.bytes += sizeOf(env, p);
      if (!e.name.endsWith(".whl")) continue; // origin.json and friends
      st.report.entries.pip++;
      judgeWheelFile(env, p, "pip", normalizePackage(e.name.split("-")[0]), st);
    }
  };
  visit(root);
}

// ---- cachecontrol's format (a tiny msgpack reader)

interface CachedResponse {
  status: number | null;
  contentLength: number | null;
  /** Content-Encoding set: the stored body is the encoded one, lengths still match, but be lenient. */
  compressed: boolean;
  body: Uint8Array;
}

/** Decodes a cachecontrol entry (`cc=4,` + msgpack). Returns the problem in words when it cannot. */
export function decodeCachedResponse(raw: Uint8Array): CachedResponse | string {
  const prefix = new TextDecoder().decode(raw.subarray(0, 5));
  if (prefix !== "cc=4,") return `no cc=4 prefix`;
  let value: unknown;
  try {
    const r = new MsgpackReader(raw, 5);
    value = r.read();
    if (r.pos !== raw.length) return `${raw.length - r.pos} trailing bytes`;
  } catch (e) {
    return (e as Error).message;
  }
  const resp = (value as Record<string, unknown> | null)?.response as Record<string, unknown> | undefined;
  if (!resp || typeof resp !== "object") return "no response record";
  const headers = (resp.headers ?? {}) as Record<string, unknown>;
  let contentLength: number | null = null;
  let compressed = false;
  for (const [k, v] of Object.entries(headers)) {
    const key = k.toLowerCase();
    if (key === "content-length" && typeof v === "string" && /^\d+$/.test(v.trim())) {
      contentLength = Number(v);
    }
    if (key === "content-encoding" && typeof v === "string" && v !== "identity") compressed = true;
  }
  const body = resp.body instanceof Uint8Array ? resp.body : new Uint8Array();
  return { status: typeof resp.status === "number" ? resp.status : null, contentLength, compressed, body };
}

class MsgpackReader {
  private view: DataView;
  constructor(private buf: Uint8Array, public pos: number) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number) {
    if (this.pos + n > this.buf.length) throw new Error("msgpack data ends early");
  }
  private bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private u(n: 1 | 2 | 4): number {
    this.need(n);
    const v = n === 1
      ? this.view.getUint8(this.pos)
      : n === 2
      ? this.view.getUint16(this.pos)
      : this.view.getUint32(this.pos);
    this.pos += n;
    return v;
  }
  private str(n: number) {
    return new TextDecoder().decode(this.bytes(n));
  }
  private map(n: number) {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = this.read();
      o[typeof k === "string" ? k : k instanceof Uint8Array ? new TextDecoder().decode(k) : String(k)] = this
        .read();
    }
    return o;
  }
  private arr(n: number) {
    const a: unknown[] = [];
    for (let i = 0; i < n; i++) a.push(this.read());
    return a;
  }
  read(): unknown {
    const t = this.u(1);
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xf0) === 0x80) return this.map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return this.arr(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return this.str(t & 0x1f);
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.bytes(this.u(1));
      case 0xc5:
        return this.bytes(this.u(2));
      case 0xc6:
        return this.bytes(this.u(4));
      case 0xca:
        this.need(4);
        return this.view.getFloat32((this.pos += 4) - 4);
      case 0xcb:
        this.need(8);
        return this.view.getFloat64((this.pos += 8) - 8);
      case 0xcc:
        return this.u(1);
      case 0xcd:
        return this.u(2);
      case 0xce:
        return this.u(4);
      case 0xcf:
        this.need(8);
        return Number(this.view.getBigUint64((this.pos += 8) - 8));
      case 0xd0:
        this.need(1);
        return this.view.getInt8((this.pos += 1) - 1);
      case 0xd1:
        this.need(2);
        return this.view.getInt16((this.pos += 2) - 2);
      case 0xd2:
        this.need(4);
        return this.view.getInt32((this.pos += 4) - 4);
      case 0xd3:
        this.need(8);
        return Number(this.view.getBigInt64((this.pos += 8) - 8));
      case 0xd9:
        return this.str(this.u(1));
      case 0xda:
        return this.str(this.u(2));
      case 0xdb:
        return this.str(this.u(4));
      case 0xdc:
        return this.arr(this.u(2));
      case 0xdd:
        return this.arr(this.u(4));
      case 0xde:
        return this.map(this.u(2));
      case 0xdf:
        return this.map(this.u(4));
      default:
        throw new Error(`unsupported msgpack type 0x${t.toString(16)}`);
    }
  }
}

// ---- zips

const isZipStart = (b: Uint8Array) =>
  b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04;

/**
 * Why bytes are not a whole zip, or null: the end-of-central-directory record must be present and the
 * central directory it points at must lie inside the file and start with its signature. A wheel cut in half
 * fails here, exactly as Python's zipfile does ("File is not a zip file").
 */
export function zipProblem(buf: Uint8Array, fileSize = buf.length, tailOffset = 0): string | null {
  if (fileSize < 22) return "is not a zip file (too short)";
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = buf.length - 22; i >= 0; i--) {
    if (view.getUint32(i, true) !== 0x06054b50) continue;
    const cdSize = view.getUint32(i + 12, true);
    const cdOffset = view.getUint32(i + 16, true);
    const eocdAt = tailOffset + i;
    if (cdOffset === 0xffffffff) return null; // zip64: trust it
    if (cdOffset + cdSize > eocdAt) return "is not a whole zip file (central directory out of range)";
    const rel = cdOffset - tailOffset;
    if (rel >= 0 && rel + 4 <= buf.length && view.getUint32(rel, true) !== 0x02014b50 && cdSize > 0) {
      return "is not a whole zip file (bad central directory)";
    }
    return null;
  }
  return "is not a zip file (no end of central directory: cut short)";
}

const TAIL = 65_557; // EOCD (22) + the longest comment (65535)

function zipProblemSync(env: Env, path: string): string | null {
  // Deno has no sync positioned read in the Fs seam; wheels in uv/pip caches are read whole only when small.
  try {
    const size = env.fs.lstatSync(path).size;
    if (size > 64 * 1024 * 1024) return null; // judged lazily by the async path when healing
    const data = env.fs.readFileSync(path);
    return zipProblem(data);
  } catch (e) {
    return `cannot be read (${(e as Error).message})`;
  }
}

/** zipProblem for a file body on disk, reading only its head and tail. null when it is not a zip at all. */
async function zipProblemFile(env: Env, path: string): Promise<string | null> {
  let f: Deno.FsFile;
  try {
    f = await env.fs.open(path, { read: true });
  } catch (e) {
    return `cannot be read (${(e as Error).message})`;
  }
  try {
    const size = (await f.stat()).size;
    const head = new Uint8Array(4);
    const n = await f.read(head);
    if (n !== 4 || !isZipStart(head)) return null;
    const start = Math.max(0, size - TAIL);
    await f.seek(start, Deno.SeekMode.Start);
    const tail = new Uint8Array(size - start);
    let off = 0;
    while (off < tail.length) {
      const r = await f.read(tail.subarray(off));
      if (r === null) break;
      off += r;
    }
    return zipProblem(tail.subarray(0, off), size, start);
  } catch (e) {
    return `cannot be read (${(e as Error).message})`;
  } finally {
    f.close();
  }
}

/** The project a downloaded file belongs to: a wheel's dist-info or top-level package, an sdist's root dir. */
export function packageFromBytes(b: Uint8Array): string | null {
  if (isZipStart(b)) {
    // Walk local file headers (they survive a truncation the central directory does not).
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let pos = 0;
    let first: string | null = null;
    while (pos + 30 <= b.length && view.getUint32(pos, true) === 0x04034b50) {
      const csize = view.getUint32(pos + 18, true);
      const nlen = view.getUint16(pos + 26, true);
      const xlen = view.getUint16(pos + 28, true);
      if (pos + 30 + nlen > b.length) break;
      const name = new TextDecoder().decode(b.subarray(pos + 30, pos + 30 + nlen));
      const m = /^([^/]+)-[^-/]+\.dist-info\//.exec(name);
      if (m) return normalizePackage(m[1]);
      first ??= name.split("/")[0].replace(/\.py$/, "");
      if ((view.getUint16(pos + 6, true) & 0x08) !== 0) break; // sizes in a data descriptor: stop here
      pos += 30 + nlen + xlen + csize;
    }
    return first ? normalizePackage(first) : null;
  }
  if (b.length > 2 && b[0] === 0x1f && b[1] === 0x8b) {
    try {
      const tar = gunzipSync(b.subarray(0, Math.min(b.length, 65536)), {
        finishFlush: zlibConstants.Z_SYNC_FLUSH,
      });
      const name = new TextDecoder().decode(tar.subarray(0, 100)).replace(/\0.*$/s, "");
      const root = name.split("/")[0];
      const m = /^(.+)-[^-]+$/.exec(root);
      return m ? normalizePackage(m[1]) : null;
    } catch {
      return null;
    }
  }
  return null;
}

async function bodyPackage(env: Env, path: string): Promise<string | null> {
  try {
    const f = await env.fs.open(path, { read: true });
    try {
      const buf = new Uint8Array(256 * 1024);
      let off = 0;
      while (off < buf.length) {
        const r = await f.read(buf.subarray(off));
        if (r === null) break;
        off += r;
      }
      return packageFromBytes(buf.subarray(0, off));
    } finally {
      f.close();
    }
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------------------------------------ removal

/**
 * Takes an entry out of the installers' way: rename into the trash (one atomic step; open files stay
 * readable), then delete. A dir that holds a uv `.lock` is emptied in place instead, keeping the lock file.
 * Returns the paths removed.
 */
export async function removeEntry(
  env: Env,
  root: string,
  entry: { path: string; also: string[] },
): Promise<string[]> {
  const removed: string[] = [];
  for (const p of [entry.path, ...entry.also]) {
    if (p.endsWith("/.lock") || p === `${root}/.lock`) continue;
    if (hasUvLock(env, p)) {
      await emptyKeepingLocks(env, p);
      removed.push(p);
      continue;
    }
    const trash = `${root}/${TRASH_DIR}`;
    await env.fs.mkdir(trash, { recursive: true, mode: 0o700 });
    const dest = `${trash}/${env.pid}-${env.now()}-${Math.floor(env.random() * 1e9)}`;
    try {
      await env.fs.rename(p, dest);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    await env.fs.remove(dest, { recursive: true }).catch((e) =>
      env.log.warn(`cannot delete ${dest}: ${(e as Error).message}`)
    );
    removed.push(p);
  }
  return removed;
}

function hasUvLock(env: Env, p: string): boolean {
  try {
    if (!env.fs.lstatSync(p).isDirectory) return false;
  } catch {
    return false;
  }
  for (const e of listDir(env, p)) {
    if (e.name === ".lock") return true;
    if (e.isDirectory && hasUvLock(env, `${p}/${e.name}`)) return true;
  }
  return false;
}

async function emptyKeepingLocks(env: Env, dir: string) {
  for (const e of listDir(env, dir)) {
    const p = `${dir}/${e.name}`;
    if (e.name === ".lock") continue;
    if (e.isDirectory && hasUvLock(env, p)) await emptyKeepingLocks(env, p);
    else await env.fs.remove(p, { recursive: true }).catch(() => {});
  }
}

/** Deletes what a crashed heal left in the trash. */
export async function emptyTrash(env: Env, root: string): Promise<number> {
  let n = 0;
  for (const e of listDir(env, `${root}/${TRASH_DIR}`)) {
    await env.fs.remove(`${root}/${TRASH_DIR}/${e.name}`, { recursive: true }).catch(() => {});
    n++;
  }
  return n;
}

// ------------------------------------------------------------------------------------------------ bookkeeping

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

// ------------------------------------------------------------------------------------------------ heal

export interface HealAfterFailureInput {
  /** The cache root, or the installer's subdir under it (what install passes to the installer). */
  cacheDir: string;
  installer: Installer;
  verdict: FailureVerdict;
  /** 1: remove the named package's entries; 2: move the whole installer cache aside. Never more. */
  attempt: number;
  /** The caller already holds the cache lock (an install heals inside its own hold). */
  lockHeld?: boolean;
}

export interface HealResult {
  action: "targeted" | "moved-aside" | "none";
  removed: string[];
  message: string;
}

/**
 * After an install failure classified as cache corruption: attempt 1 removes the named package's entries
 * and every entry the scan proves corrupt (a broken entry is never worth keeping, and the error may name
 * the package that depends on it); attempt 2 moves the installer's whole cache aside so running readers keep
 * their files, starts a fresh one and deletes the old. Any later attempt does nothing: the caller stops.
 */
export async function healAfterFailure(env: Env, input: HealAfterFailureInput): Promise<HealResult> {
  const root = cacheRootOf(input.cacheDir, input.installer);
  const sub = cacheSubdirs(root)[input.installer];
  if (input.attempt > 2 || input.attempt < 1) {
    return { action: "none", removed: [], message: "the cache was already healed twice; not healing again" };
  }
  const work = async (): Promise<HealResult> => {
    const result = input.attempt === 1
      ? await healTargeted(env, root, sub, input.installer, input.verdict.package)
      : await moveAside(env, root, sub, input.installer);
    await writeBook(env, root, {
      last_heal_at: isoTime(env.now()),
      last_heal: {
        at: isoTime(env.now()),
        action: result.action,
        removed: result.removed.length,
        corrupt_found: result.removed.length,
        package: input.verdict.package,
        message: result.message,
      },
    });
    await appendHealLog(env, {
      at: isoTime(env.now()),
      trigger: "install-failure",
      cache: root,
      installer: input.installer,
      attempt: input.attempt,
      action: result.action,
      package: input.verdict.package,
      cause: input.verdict.cause,
      removed: result.removed,
    });
    env.log.warn(result.message);
    return result;
  };
  if (input.lockHeld) return await work();
  return await withLock(env, cacheLockSpec(env, root, "cache heal"), { timeoutMs: 10 * 60_000 }, work);
}

async function healTargeted(
  env: Env,
  root: string,
  sub: string,
  installer: Installer,
  pkg: string | null,
): Promise<HealResult> {
  const removed: string[] = [];
  const name = pkg ? normalizePackage(pkg) : null;
  if (installer === "uv" && name) {
    const uv = findOnPath("uv", env.vars.PATH);
    if (uv) {
      const r = await env.run([uv, "cache", "clean", name], {
        timeoutMs: 5 * 60_000,
        env: { UV_CACHE_DIR: sub },
      });
      if (r.kind === "exited" && r.code === 0) env.log.info(`uv cache clean ${name}: done`);
      else env.log.warn(`uv cache clean ${name} failed; removing its entries directly`);
    }
  }
  const scan = await scanCache(env, root, { sizes: false, package: name ?? undefined });
  const matches = scan.matches;
  const targets = [
    ...scan.corrupt.filter((c) => c.installer === installer),
    ...matches.filter((m) => m.installer === installer),
  ];
  if (installer === "uv" && name) {
    // Index pages and pointers of the package too (what `uv cache clean PKG` removes), keeping lock files.
    for (const b of listDir(env, sub)) {
      if (!/^(wheels|sdists|built-wheels|simple)-v\d+$/.test(b.name)) continue;
      for (const p of uvPackagePaths(env, `${sub}/${b.name}`, name)) {
        targets.push({ path: p, also: [], installer, package: name, reason: "" });
      }
    }
  }
  const seen = new Set<string>();
  for (const t of targets) {
    if (seen.has(t.path)) continue;
    seen.add(t.path);
    removed.push(...(await removeEntry(env, root, t)));
  }
  const what = name ? `${name}'s entries` : "no package named in the error";
  return {
    action: "targeted",
    removed,
    message: removed.length
      ? `healed the ${installer} cache ${sub}: removed ${removed.length} entr${
        removed.length === 1 ? "y" : "ies"
      } (${what}, and entries proven corrupt); retrying once`
      : `found nothing to remove in the ${installer} cache ${sub} (${what}); retrying once`,
  };
}

function uvPackagePaths(env: Env, bucket: string, pkg: string): string[] {
  const out: string[] = [];
  const visit = (dir: string, depth: number) => {
    for (const e of listDir(env, dir)) {
      const n = normalizePackage(e.name.replace(/\.(rkyv|msgpack)$/, ""));
      if (n === pkg) out.push(`${dir}/${e.name}`);
      else if (e.isDirectory && depth < 2) visit(`${dir}/${e.name}`, depth + 1);
    }
  };
  visit(bucket, 0);
  return out;
}

async function moveAside(env: Env, root: string, sub: string, installer: Installer): Promise<HealResult> {
  const trash = `${root}/${TRASH_DIR}`;
  await env.fs.mkdir(trash, { recursive: true, mode: 0o700 });
  const dest = `${trash}/${installer}-${env.pid}-${env.now()}`;
  try {
    await env.fs.rename(sub, dest);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw failed(
        `cannot move the ${installer} cache ${sub} aside: ${(e as Error).message}`,
        "remove it by hand: rm -rf " + sub,
      );
    }
  }
  await env.fs.mkdir(sub, { recursive: true, mode: 0o700 });
  // Deleting after the rename: nothing reads the old tree by name any more, and open files stay valid.
  await env.fs.remove(dest, { recursive: true }).catch((e) =>
    env.log.warn(`cannot delete ${dest}: ${(e as Error).message}`)
  );
  return {
    action: "moved-aside",
    removed: [sub],
    message:
      `the ${installer} cache ${sub} was still broken after a targeted heal; moved it aside and started a fresh one; retrying once more`,
  };
}

// ------------------------------------------------------------------------------------------------ info

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
