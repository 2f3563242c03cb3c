/**
 * Resumable, verified downloads of a Hugging Face repo into a local dir that `hf download --local-dir` also
 * understands. Bytes go to `<dir>/.cache/huggingface/download/<path>.incomplete` (beside the
 * `<path>.metadata` record huggingface_hub keeps there), so a later run or another process continues with a
 * Range request; every file is checked against its size and every LFS file against its sha256 before it is
 * renamed into place. The whole run holds the download lock of the target dir: a second job waits, then
 * finds the files done.
 */
import { createHash } from "node:crypto";
import type { Env } from "../core/env.ts";
import { badInput, failed, MlagentError } from "../core/errors.ts";
import {
  type FileMetadata,
  HubClient,
  hubEndpoint,
  type HubFile,
  HubHttpError,
  readToken,
  redact,
  validateRepoId,
} from "./hub.ts";
import { downloadLockSpec, withLock } from "../lock/mod.ts";
import { formatBytes, formatDuration } from "../core/output.ts";
import { absolute } from "../core/paths.ts";

export { validateRepoId } from "./hub.ts";

export interface DownloadOptions {
  repo: string;
  /** Branch, tag or commit; default "main". */
  revision?: string;
  /** fnmatch globs as in `hf download --include` (`*` crosses `/`). */
  include?: string[];
  exclude?: string[];
  localDir: string;
  /** Files fetched at once (default 8). */
  parallel?: number;
  /** Overrides HF_TOKEN / the token file. */
  token?: string;
  /** No byte for this long aborts and resumes the transfer (default 60 s, MLAGENT_STALL_TIMEOUT_S). */
  stallTimeoutMs?: number;
  /** Consecutive failed attempts without progress before a file fails (default 6). */
  maxRetries?: number;
  /** First backoff delay; doubled each attempt, capped at 30 s, with full jitter (default 1000 ms). */
  backoffBaseMs?: number;
  /** Files at least this big are fetched as parallel ranges (default 64 MiB, MLAGENT_DOWNLOAD_RANGE_MIN_MIB). */
  rangeThresholdBytes?: number;
  /** Ranges per large file (default 4). */
  rangeParts?: number;
  /**
   * A large file starts as one stream and is split into ranges only if that stream is slower than this after
   * `splitAfterMs` (default 256 MiB/s; Infinity: ranges from the start). Ranges cost CPU (the parts after
   * the first are hashed by reading them back) that pays only when one connection is the bottleneck.
   */
  splitBelowBytesPerS?: number;
  /** How long the single stream runs before its speed is judged (default 1000 ms). */
  splitAfterMs?: number;
  /** Files that must exist in the listing (profile models); a missing one fails the run. */
  requiredFiles?: string[];
  /** How long to wait for another job's lock on the dir (default 6 h). */
  lockTimeoutMs?: number;
  /** Skip the free-space check (tests). */
  skipDiskCheck?: boolean;
}

export interface DownloadReport {
  ok: boolean;
  repo: string;
  revision: string;
  commit: string | null;
  local_dir: string;
  offline: boolean;
  files: number;
  files_fetched: number;
  files_reused: number;
  files_resumed: number;
  total_bytes: number;
  fetched_bytes: number;
  reused_bytes: number;
  retries: number;
  duration_ms: number;
  throughput_bytes_per_s: number;
  missing: string[];
  partial: string[];
}

export interface VerifyOptions {
  repo: string;
  revision?: string;
  localDir: string;
  requiredFiles?: string[];
  include?: string[];
  exclude?: string[];
  /** Re-hash every LFS file even if size and mtime match what was verified (slow on big models). */
  deep?: boolean;
}

export interface VerifyResult {
  complete: boolean;
  repo: string;
  commit: string | null;
  local_dir: string;
  /** Files expected and checked. */
  files: number;
  bytes: number;
  missing: string[];
  /** Files with an `.incomplete` download or a wrong size. */
  partial: string[];
  /** Files whose bytes no longer match the recorded sha256. */
  corrupt: string[];
  /** Why the dir is not a finished download of this repo, if so. */
  reason: string | null;
}

/** What mlagent records about a finished download; huggingface_hub ignores it. */
interface Manifest {
  schema_version: 1;
  repo: string;
  revision: string;
  commit: string;
  completed_at: string;
  /** The files downloaded (and verified) so far, with their mtime at that moment. */
  files: Record<string, { size: number; etag: string; sha256?: string; mtime_ms: number }>;
  /**
   * Every file of the revision, downloaded or not, so a later check with a wider include knows what the
   * repo has beyond what an earlier, narrower download fetched.
   */
  listing?: Record<string, { size: number; etag: string; sha256?: string }>;
}

// ---------------------------------------------------------------------------------------------- paths

const META_DIR = ".cache/huggingface/download";
const MANIFEST = ".cache/huggingface/mlagent_manifest.json";

export function metadataPath(localDir: string, path: string): string {
  return `${localDir}/${META_DIR}/${path}.metadata`;
}
function incompletePath(localDir: string, path: string): string {
  return `${localDir}/${META_DIR}/${path}.incomplete`;
}
function statePath(localDir: string, path: string): string {
  return `${localDir}/${META_DIR}/${path}.incomplete.json`;
}
const parentOf = (p: string) => p.slice(0, p.lastIndexOf("/"));

/** Pure: why a listed path may not be written under the local dir, or null if it is safe. */
export function hostilePathReason(path: string): string | null {
  if (path === "" || path.includes("\0")) return "is empty or contains a NUL byte";
  if (path.startsWith("/")) return "is absolute";
  if (path.includes("\\")) return "contains a backslash";
  const parts = path.split("/");
  if (parts.some((p) => p === "..")) return 'contains ".."';
  if (parts.some((p) => p === "" || p === ".")) return "has an empty or '.' component";
  if (path === ".cache/huggingface" || path.startsWith(".cache/huggingface/")) {
    return "would overwrite the download records in .cache/huggingface";
  }
  return null;
}

/** Pure: fnmatch as Python's (the way huggingface_hub filters): `*` and `?` also match `/`. */
export function globToRegExp(glob: string): RegExp {
  let g = glob;
  if (g.endsWith("/")) g += "*";
  let re = "";
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const close = g.indexOf("]", i + 2);
      if (close === -1) re += "\\[";
      else {
        let body = g.slice(i + 1, close);
        if (body.startsWith("!")) body = "^" + body.slice(1);
        re += `[${body.replace(/\\/g, "\\\\")}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}

/** Pure: the paths kept by include (any match; none given = all) and exclude (no match). */
export function filterPaths(paths: string[], include?: string[], exclude?: string[]): string[] {
  const inc = (include ?? []).map(globToRegExp);
  const exc = (exclude ?? []).map(globToRegExp);
  return paths.filter((p) => (inc.length === 0 || inc.some((r) => r.test(p))) && !exc.some((r) => r.test(p)));
}

// ---------------------------------------------------------------------------------------------- records

/** huggingface_hub's local-dir record: three lines, commit hash, etag, timestamp (float seconds). */
export async function readMetadata(
  env: Env,
  localDir: string,
  path: string,
): Promise<{ commit: string; etag: string; timestamp: number } | null> {
  try {
    const [commit, etag, ts] = (await env.fs.readTextFile(metadataPath(localDir, path))).split("\n");
    const timestamp = Number(ts);
    if (!commit || !etag || !Number.isFinite(timestamp)) return null;
    return { commit: commit.trim(), etag: etag.trim(), timestamp };
  } catch {
    return null;
  }
}

async function writeMetadata(
  env: Env,
  localDir: string,
  path: string,
  commit: string,
  etag: string,
  dirs?: Set<string>,
) {
  const p = metadataPath(localDir, path);
  if (!dirs?.has(parentOf(p))) {
    await env.fs.mkdir(parentOf(p), { recursive: true });
    dirs?.add(parentOf(p));
  }
  // Written in place as huggingface_hub does (a torn record only costs a re-hash). Written after the rename, so the timestamp is not older than the file's mtime (huggingface_hub ignores
  // a record older than its file by more than a second).
  await env.fs.writeTextFile(p, `${commit}\n${etag}\n${env.now() / 1000}\n`);
}

async function writeText(env: Env, path: string, text: string) {
  const tmp = `${path}.tmp-${env.pid}-${Math.floor(env.random() * 1e9)}`;
  await env.fs.writeTextFile(tmp, text);
  await env.fs.rename(tmp, path);
}

async function readManifest(env: Env, localDir: string): Promise<Manifest | null> {
  try {
    const m = JSON.parse(await env.fs.readTextFile(`${localDir}/${MANIFEST}`)) as Manifest;
    return m && typeof m.files === "object" ? m : null;
  } catch {
    return null;
  }
}

async function statOrNull(env: Env, path: string): Promise<Deno.FileInfo | null> {
  try {
    return await env.fs.stat(path);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------- hashing

async function hashFile(
  env: Env,
  path: string,
  algo: "sha256" | "git-sha1",
  signal?: AbortSignal,
): Promise<string> {
  const h = createHash(algo === "sha256" ? "sha256" : "sha1");
  const file = await env.fs.open(path, { read: true });
  try {
    if (algo === "git-sha1") h.update(`blob ${(await file.stat()).size}\0`);
    const buf = new Uint8Array(4 << 20);
    while (true) {
      if (signal?.aborted) throw signal.reason;
      const n = await file.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return h.digest("hex");
}

const isSha256 = (s: string | undefined) => !!s && /^[0-9a-f]{64}$/.test(s);
const isSha1 = (s: string | undefined) => !!s && /^[0-9a-f]{40}$/.test(s);

// ---------------------------------------------------------------------------------------------- verify

/**
 * Offline: is `localDir` a finished download of `repo` (at `revision`)? Uses mlagent's manifest (sizes and
 * sha256 checked at download time; a file whose size or mtime changed since is re-hashed), else the
 * `.metadata` records huggingface_hub writes. Never touches the network.
 */
export async function verifyLocalModel(env: Env, opts: VerifyOptions): Promise<VerifyResult> {
  const localDir = absolute(env, opts.localDir);
  const result: VerifyResult = {
    complete: false,
    repo: opts.repo,
    commit: null,
    local_dir: localDir,
    files: 0,
    bytes: 0,
    missing: [],
    partial: [],
    corrupt: [],
    reason: null,
  };
  const manifest = await readManifest(env, localDir);
  const expected = new Map<string, { size?: number; etag?: string; sha256?: string; mtime_ms?: number }>();
  if (manifest) {
    result.commit = manifest.commit;
    if (manifest.repo !== opts.repo) result.reason = `the dir holds ${manifest.repo}, not ${opts.repo}`;
    else if (opts.revision && opts.revision !== manifest.revision && opts.revision !== manifest.commit) {
      result.reason = `the dir holds revision ${manifest.revision} (${
        manifest.commit.slice(0, 12)
      }), not ${opts.revision}`;
    }
    const all = manifest.listing ?? manifest.files;
    for (const p of filterPaths(Object.keys(all), opts.include, opts.exclude)) {
      // Not in `files`: listed but never fetched here; no mtime, so the checks below treat it as unverified.
      expected.set(p, manifest.files[p] ?? all[p]);
    }
  } else {
    // Downloaded by `hf download --local-dir`: trust its records (commit and etag), check what we can.
    for (const p of filterPaths(await listRecords(env, localDir), opts.include, opts.exclude)) {
      const rec = await readMetadata(env, localDir, p);
      if (!rec) continue;
      result.commit ??= rec.commit;
      expected.set(p, { etag: rec.etag, ...(isSha256(rec.etag) ? { sha256: rec.etag } : {}) });
    }
    if (expected.size === 0 && !(opts.requiredFiles?.length)) {
      result.reason = "nothing has been downloaded there";
    }
  }
  for (const r of opts.requiredFiles ?? []) if (!expected.has(r)) expected.set(r, {});
  for (const [path, want] of [...expected].sort(([a], [b]) => a.localeCompare(b))) {
    result.files++;
    if (hostilePathReason(path)) {
      result.missing.push(path);
      continue;
    }
    const st = await statOrNull(env, `${localDir}/${path}`);
    if (!st || !st.isFile) {
      if (await statOrNull(env, incompletePath(localDir, path))) result.partial.push(path);
      else result.missing.push(path);
      continue;
    }
    if (!(await readMetadata(env, localDir, path))) {
      // A file without a record was not finished by either tool (or was copied in): not trusted.
      result.missing.push(path);
      continue;
    }
    if (want.size !== undefined && st.size !== want.size) {
      result.partial.push(path);
      continue;
    }
    result.bytes += st.size;
    const changed = want.mtime_ms === undefined || (st.mtime?.getTime() ?? 0) !== want.mtime_ms;
    if (want.sha256 && (opts.deep || (manifest && changed))) {
      if ((await hashFile(env, `${localDir}/${path}`, "sha256")) !== want.sha256) result.corrupt.push(path);
    }
  }
  result.complete = result.reason === null && result.missing.length === 0 && result.partial.length === 0 &&
    result.corrupt.length === 0;
  return result;
}

/** Paths that have a `.metadata` record under the dir. */
async function listRecords(env: Env, localDir: string): Promise<string[]> {
  return [...await scanFiles(env, `${localDir}/${META_DIR}`)]
    .filter((p) => p.endsWith(".metadata"))
    .map((p) => p.slice(0, -".metadata".length));
}

// ---------------------------------------------------------------------------------------------- engine

interface Segment {
  start: number;
  /** Exclusive. */
  end: number;
  /** Next byte to write. */
  pos: number;
}

interface PartState {
  etag: string;
  size: number;
  segments: Segment[];
}

interface Job {
  file: HubFile;
  meta?: FileMetadata;
  size: number;
  done: number;
  /** Bytes already on disk from an earlier run when this run began. */
  resumedFrom: number;
  /** Hashes the bytes as they are written, so verifying needs no second pass over the file. */
  hasher?: InlineHasher;
  /** Whether the `.incomplete.json` state exists on disk. */
  stateSaved?: boolean;
  /** Whether an `.incomplete` file may exist. */
  hasPart: boolean;
  /** mtime of the finished file (a rename keeps it). */
  mtimeMs?: number;
  /** The HEAD, asked ahead of the transfer so its round trip overlaps other files' bodies. */
  head?: Promise<FileMetadata>;
  /** Size and mtime of the part file, read from the open handle by the one stream that completed it. */
  written?: { size: number; mtimeMs: number };
}

/**
 * sha256 (or git blob sha1) of a file being written: bytes written at the cursor are hashed on the way;
 * whatever the cursor has not reached (a resumed prefix, later ranges) is read back from disk at the end.
 */
class InlineHasher {
  cursor = 0;
  private h;
  /** Set while bytes are read back from disk: a chunk fed meanwhile is left for the next read-back. */
  private catchingUp = false;
  constructor(readonly algo: "sha256" | "git-sha1", size: number) {
    this.h = createHash(algo === "sha256" ? "sha256" : "sha1");
    if (algo === "git-sha1") this.h.update(`blob ${size}\0`);
  }
  feed(offset: number, chunk: Uint8Array) {
    if (offset !== this.cursor || this.catchingUp) return;
    this.h.update(chunk);
    this.cursor += chunk.length;
  }
  /** Hashes [cursor, upTo) from the file; every byte of it must already be written. */
  async catchUp(env: Env, path: string, upTo: number, signal?: AbortSignal) {
    if (this.cursor >= upTo || this.catchingUp) return;
    this.catchingUp = true;
    const file = await env.fs.open(path, { read: true }).catch((e) => {
      this.catchingUp = false;
      throw e;
    });
    try {
      await file.seek(this.cursor, Deno.SeekMode.Start);
      const buf = new Uint8Array(4 << 20);
      while (this.cursor < upTo) {
        if (signal?.aborted) throw signal.reason;
        const n = await file.read(buf.subarray(0, Math.min(buf.length, upTo - this.cursor)));
        if (n === null) break;
        this.h.update(buf.subarray(0, n));
        this.cursor += n;
      }
    } finally {
      this.catchingUp = false;
      file.close();
    }
  }
  async digest(env: Env, path: string, size: number, signal?: AbortSignal): Promise<string> {
    await this.catchUp(env, path, size, signal);
    return this.h.digest("hex");
  }
}

const READ_BUFFER_BYTES = 256 * 1024;

/** Smaller files keep no state file unless interrupted: restarting them costs less than the extra write. */
const STATE_MIN_BYTES = 1024 * 1024;

class RestartFile extends Error {
  constructor(message: string, readonly singleStream = false) {
    super(message);
  }
}
class StallError extends Error {}

interface Ctx {
  env: Env;
  client: HubClient;
  repo: string;
  commit: string;
  localDir: string;
  token?: string;
  stallMs: number;
  maxRetries: number;
  backoffBaseMs: number;
  rangeThreshold: number;
  rangeParts: number;
  splitBelow: number;
  splitAfterMs: number;
  signal: AbortSignal;
  retries: number;
  fetched: number;
  reused: number;
  filesResumed: number;
  active: Set<Job>;
  /** Dirs known to exist (saves a mkdir per file). */
  dirs: Set<string>;
}

async function ensureDir(ctx: Ctx, dir: string) {
  if (ctx.dirs.has(dir)) return;
  await ctx.env.fs.mkdir(dir, { recursive: true });
  ctx.dirs.add(dir);
}

function stallMsFor(env: Env, opts: DownloadOptions): number {
  return opts.stallTimeoutMs ?? (envNumber(env, "MLAGENT_STALL_TIMEOUT_S") ?? 60) * 1000;
}

function envNumber(env: Env, name: string): number | undefined {
  const v = env.vars[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw badInput(`${name} must be a number >= 0, got "${v}"`);
  return n;
}

/** Downloads `opts.repo` into `opts.localDir`; resumable, verified, locked. Throws MlagentError on failure. */
export async function downloadRepo(env: Env, opts: DownloadOptions): Promise<DownloadReport> {
  const started = env.now();
  const bad = validateRepoId(opts.repo);
  if (bad) throw badInput(bad, "a repo id looks like tencent/HunyuanVideo-I2V");
  const revision = opts.revision ?? "main";
  const localDir = absolute(env, opts.localDir);
  const st = await statOrNull(env, localDir);
  if (st && !st.isDirectory) throw badInput(`target ${localDir} exists and is not a directory`);

  const offline = ["1", "on", "yes", "true"].includes((env.vars.HF_HUB_OFFLINE ?? "").toLowerCase());
  if (offline) {
    const v = await verifyLocalModel(env, { ...opts, localDir });
    const missing = [...v.missing, ...v.corrupt];
    return {
      ok: v.complete,
      repo: opts.repo,
      revision,
      commit: v.commit,
      local_dir: localDir,
      offline: true,
      files: v.files,
      files_fetched: 0,
      files_reused: v.files - missing.length - v.partial.length,
      files_resumed: 0,
      total_bytes: v.bytes,
      fetched_bytes: 0,
      reused_bytes: v.bytes,
      retries: 0,
      duration_ms: env.now() - started,
      throughput_bytes_per_s: 0,
      missing,
      partial: v.partial,
    };
  }

  const token = opts.token ?? await readToken(env);
  const client = new HubClient(env, hubEndpoint(env), token);
  client.apiTimeoutMs = stallMsFor(env, opts);
  const stallMs = stallMsFor(env, opts);
  const abort = new AbortController();
  const ctx: Ctx = {
    env,
    client,
    repo: opts.repo,
    commit: "",
    localDir,
    token,
    stallMs,
    maxRetries: opts.maxRetries ?? 6,
    backoffBaseMs: opts.backoffBaseMs ?? envNumber(env, "MLAGENT_DOWNLOAD_BACKOFF_MS") ?? 1000,
    rangeThreshold: opts.rangeThresholdBytes ??
      (envNumber(env, "MLAGENT_DOWNLOAD_RANGE_MIN_MIB") ?? 64) * 1024 * 1024,
    rangeParts: Math.max(1, opts.rangeParts ?? 4),
    splitBelow: opts.splitBelowBytesPerS ?? 256 * 1024 * 1024,
    splitAfterMs: opts.splitAfterMs ?? 1000,
    signal: abort.signal,
    retries: 0,
    fetched: 0,
    reused: 0,
    filesResumed: 0,
    active: new Set(),
    dirs: new Set(),
  };

  // Plan everything before writing anything: a hostile listing leaves the disk untouched.
  ctx.commit = await withRetries(ctx, `revision ${revision}`, () => client.resolveCommit(opts.repo, revision))
    .catch((e) => {
      throw toMlagentError(e, opts.repo, revision, client);
    });
  const listed = await withRetries(ctx, "file listing", () => client.listFiles(opts.repo, ctx.commit)).catch(
    (e) => {
      throw toMlagentError(e, opts.repo, revision, client);
    },
  );
  for (const f of listed) {
    const why = hostilePathReason(f.path);
    if (why) {
      throw badInput(
        `${opts.repo}@${revision} lists a file path that ${why}: ${JSON.stringify(f.path)}`,
        "refused; nothing was written",
      );
    }
  }
  const byPath = new Map(listed.map((f) => [f.path, f]));
  // Required files are fetched whatever the include/exclude patterns say: the model cannot run without them.
  const keep = new Set([
    ...filterPaths(listed.map((f) => f.path), opts.include, opts.exclude),
    ...(opts.requiredFiles ?? []),
  ]);
  const wanted = listed.filter((f) => keep.has(f.path));
  const absent = (opts.requiredFiles ?? []).filter((r) => !byPath.has(r));
  if (absent.length) {
    throw failed(
      `${opts.repo}@${revision} has no file ${absent.map((a) => JSON.stringify(a)).join(", ")}`,
      "check the profile's model files against the repo",
    );
  }
  if (wanted.length === 0) {
    throw failed(`no file of ${opts.repo}@${revision} matches the include/exclude patterns`);
  }
  await refuseSymlinkEscapes(env, localDir, wanted.map((f) => f.path));

  await env.fs.mkdir(`${localDir}/${META_DIR}`, { recursive: true });
  const removeSignals = [
    env.onSignal("SIGINT", () => abort.abort(failed("interrupted"))),
    env.onSignal("SIGTERM", () => abort.abort(failed("terminated"))),
  ];
  try {
    return await withLock(env, downloadLockSpec(localDir, "download"), {
      timeoutMs: opts.lockTimeoutMs ?? 6 * 3600_000,
      // Our own SIGINT/SIGTERM handlers abort the transfers, save their progress, then release.
      handleSignals: false,
      signal: abort.signal,
    }, async (lock) => {
      lock.lost.addEventListener("abort", () => abort.abort(failed(`lost the lock on ${localDir}`)));
      const jobs: Job[] = [];
      let reusedFiles = 0;
      const manifest = await readManifest(env, localDir);
      // Two directory walks instead of a failing stat per file of a fresh download.
      const present = await scanFiles(env, localDir, ".cache/huggingface");
      const parts = await scanFiles(env, `${localDir}/${META_DIR}`);
      const mtimes = new Map<string, number>();
      for (const f of wanted) {
        const mtime = present.has(f.path)
          ? await isAlreadyDone(env, localDir, f, ctx.commit, manifest)
          : null;
        if (mtime !== null) {
          ctx.reused += f.size;
          reusedFiles++;
          mtimes.set(f.path, mtime);
        } else {
          jobs.push({
            file: f,
            size: f.size,
            done: 0,
            resumedFrom: 0,
            hasPart: parts.has(`${f.path}.incomplete`),
          });
        }
      }
      if (!opts.skipDiskCheck) await checkFreeSpace(env, localDir, jobs);
      const stopProgress = startProgress(ctx, jobs);
      try {
        const parallel = opts.parallel ?? 8;
        prefetchHeads(ctx, jobs, parallel);
        await runPool(jobs, parallel, abort, (job) => fetchFile(ctx, job));
      } finally {
        stopProgress();
      }
      for (const j of jobs) mtimes.set(j.file.path, j.mtimeMs ?? 0);
      await writeManifest(env, localDir, opts.repo, revision, ctx.commit, wanted, mtimes, listed);
      const duration = Math.max(1, env.now() - started);
      return {
        ok: true,
        repo: opts.repo,
        revision,
        commit: ctx.commit,
        local_dir: localDir,
        offline: false,
        files: wanted.length,
        files_fetched: jobs.length,
        files_reused: reusedFiles,
        files_resumed: ctx.filesResumed,
        total_bytes: wanted.reduce((a, f) => a + f.size, 0),
        fetched_bytes: ctx.fetched,
        reused_bytes: ctx.reused,
        retries: ctx.retries,
        duration_ms: duration,
        throughput_bytes_per_s: Math.round(ctx.fetched / (duration / 1000)),
        missing: [],
        partial: [],
      };
    });
  } catch (e) {
    throw toMlagentError(
      abort.signal.aborted && abort.signal.reason instanceof MlagentError ? abort.signal.reason : e,
      opts.repo,
      revision,
      client,
    );
  } finally {
    for (const r of removeSignals) r();
  }
}

function toMlagentError(e: unknown, repo: string, revision: string, client: HubClient): unknown {
  if (e instanceof MlagentError) return e;
  if (e instanceof HubHttpError) {
    const gated = e.errorCode === "GatedRepo";
    if (gated) {
      return failed(
        e.message,
        `request access at ${client.endpoint}/${repo}, then set HF_TOKEN or run \`hf auth login\` with a token of the account that was granted access`,
      );
    }
    if (
      e.errorCode === "RevisionNotFound" ||
      (e.status === 404 && e.message.startsWith(`revision "${revision}"`))
    ) {
      return failed(
        `revision "${revision}" does not exist in ${repo}`,
        `see the branches and tags at ${client.endpoint}/${repo}/tree/main`,
      );
    }
    if (e.status === 401 || e.status === 403 || e.errorCode === "RepoNotFound") {
      return failed(
        e.message,
        client.token
          ? `check the repo id, and that the token's account can read ${repo} (private repos need an invited account; fine-grained tokens need read access to it)`
          : `if ${repo} is private or gated, set HF_TOKEN (or run \`hf auth login\`) with a token that can read it`,
      );
    }
    return failed(
      e.message,
      e.retriable
        ? "the Hub or the network failed repeatedly; run the same command again to resume"
        : undefined,
    );
  }
  if (e instanceof Error) return failed(redact(e.message, client.token));
  return e;
}

/** A listed path must not land outside the dir through a symlink already inside it. */
async function refuseSymlinkEscapes(env: Env, localDir: string, paths: string[]) {
  let root: string;
  try {
    root = await env.fs.realPath(localDir);
  } catch {
    return; // The dir does not exist yet: nothing in it can be a symlink.
  }
  const seen = new Set<string>();
  // Nothing below a missing dir can exist: one lstat per missing dir, not one per file of a fresh download.
  const missing = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const rel = parts.slice(0, i).join("/");
      if (missing.has(rel)) break;
      if (seen.has(rel)) continue;
      seen.add(rel);
      const full = `${localDir}/${rel}`;
      const lst = await env.fs.lstat(full).catch(() => null);
      if (!lst) {
        missing.add(rel);
        break;
      }
      if (lst.isSymlink) {
        const real = await env.fs.realPath(full).catch(() => null);
        if (!real || (real !== root && !real.startsWith(root + "/"))) {
          throw badInput(
            `${JSON.stringify(p)} would be written outside ${localDir} through the symlink ${rel}`,
            "refused; nothing was written",
          );
        }
      }
    }
  }
}

/** Relative paths of the files (and symlinks) under `root`, skipping the `skip` subtree. */
async function scanFiles(env: Env, root: string, skip?: string): Promise<Set<string>> {
  const out = new Set<string>();
  const walk = async (dir: string, prefix: string) => {
    const entries: Deno.DirEntry[] = [];
    try {
      for await (const e of env.fs.readDir(dir)) entries.push(e);
    } catch {
      return;
    }
    for (const e of entries) {
      const rel = prefix + e.name;
      if (rel === skip) continue;
      if (e.isDirectory) await walk(`${dir}/${e.name}`, `${rel}/`);
      else out.add(rel);
    }
  };
  await walk(root, "");
  return out;
}

/**
 * A file either tool finished: right size, a record naming the same etag, and not modified since.
 * Returns its mtime (ms) if so, else null.
 */
async function isAlreadyDone(
  env: Env,
  localDir: string,
  f: HubFile,
  commit: string,
  manifest: Manifest | null,
): Promise<number | null> {
  const st = await statOrNull(env, `${localDir}/${f.path}`);
  if (!st?.isFile || st.size !== f.size) return null;
  const want = f.lfsSha256 ?? f.oid;
  const rec = await readMetadata(env, localDir, f.path);
  const mtime = st.mtime?.getTime() ?? 0;
  const known = manifest?.files[f.path];
  // mlagent saw the file at verification time; a different mtime means someone rewrote it since.
  const untouched = !known || known.mtime_ms === mtime;
  if (rec && rec.etag === want && mtime / 1000 - 1 <= rec.timestamp && untouched) return mtime;
  // No record or an outdated one: the bytes decide (huggingface_hub does the same for LFS files).
  const algo = f.lfsSha256 ? "sha256" : isSha1(f.oid) ? "git-sha1" : null;
  if (!algo || (await hashFile(env, `${localDir}/${f.path}`, algo)) !== want) return null;
  await writeMetadata(env, localDir, f.path, commit, want);
  return mtime;
}

async function checkFreeSpace(env: Env, localDir: string, jobs: Job[]) {
  let need = 0;
  for (const j of jobs) {
    const have = j.hasPart ? (await statOrNull(env, incompletePath(localDir, j.file.path)))?.size ?? 0 : 0;
    need += Math.max(0, j.size - have);
  }
  if (need === 0) return;
  const r = await env.run(["df", "-P", "-B1", localDir], { timeoutMs: 10_000 });
  if (r.kind !== "exited" || r.code !== 0) {
    env.log.debug(`could not read free space of ${localDir}; not checked`);
    return;
  }
  const fields = r.stdout.trim().split("\n").at(-1)?.split(/\s+/) ?? [];
  const avail = Number(fields[3]);
  if (!Number.isFinite(avail)) return;
  if (avail < need) {
    throw failed(
      `not enough free space in ${localDir}: ${formatBytes(need)} still to fetch, ${formatBytes(avail)} free`,
      "free space there or choose another --local-dir",
      { need_bytes: need, free_bytes: avail },
    );
  }
}

async function writeManifest(
  env: Env,
  localDir: string,
  repo: string,
  revision: string,
  commit: string,
  files: HubFile[],
  mtimes: Map<string, number>,
  listed: HubFile[],
) {
  const old = await readManifest(env, localDir);
  const entries: Manifest["files"] = old && old.commit === commit && old.repo === repo
    ? { ...old.files }
    : {};
  for (const f of files) {
    entries[f.path] = {
      size: f.size,
      etag: f.lfsSha256 ?? f.oid,
      ...(f.lfsSha256 ? { sha256: f.lfsSha256 } : {}),
      mtime_ms: mtimes.get(f.path) ?? 0,
    };
  }
  const m: Manifest = {
    schema_version: 1,
    repo,
    revision,
    commit,
    completed_at: new Date(env.now()).toISOString(),
    files: entries,
    listing: Object.fromEntries(
      listed.map((f) => [f.path, {
        size: f.size,
        etag: f.lfsSha256 ?? f.oid,
        ...(f.lfsSha256 ? { sha256: f.lfsSha256 } : {}),
      }]),
    ),
  };
  await writeText(env, `${localDir}/${MANIFEST}`, JSON.stringify(m, null, 2) + "\n");
}

/** Runs `work` over `items` with at most `n` at once; the first failure aborts the rest. */
async function runPool<T>(items: T[], n: number, abort: AbortController, work: (t: T) => Promise<void>) {
  let next = 0;
  let firstError: unknown;
  const worker = async () => {
    while (next < items.length && firstError === undefined && !abort.signal.aborted) {
      const item = items[next++];
      try {
        await work(item);
      } catch (e) {
        if (firstError === undefined) firstError = e;
        if (!abort.signal.aborted) abort.abort(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (firstError !== undefined) throw firstError;
  if (abort.signal.aborted) throw abort.signal.reason;
}

function backoffMs(ctx: Ctx, attempt: number): number {
  const cap = Math.min(30_000, ctx.backoffBaseMs * 2 ** (attempt - 1));
  return Math.round(cap / 2 + ctx.env.random() * cap / 2);
}

function isRetriable(e: unknown): boolean {
  if (e instanceof HubHttpError) return e.retriable;
  if (e instanceof StallError) return true;
  if (e instanceof MlagentError || e instanceof RestartFile) return false;
  // Errors reading a body from a dropped connection surface as TypeError / Http / ConnectionReset.
  return e instanceof TypeError || e instanceof Deno.errors.Http ||
    e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.UnexpectedEof ||
    e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.TimedOut;
}

const errText = (e: unknown, token?: string) => redact(e instanceof Error ? e.message : String(e), token);

/** Retries `fn` on transient errors with backoff; Retry-After wins over the backoff. */
async function withRetries<T>(ctx: Ctx, what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!isRetriable(e) || attempt >= ctx.maxRetries || ctx.signal.aborted) throw e;
      ctx.retries++;
      const delay = e instanceof HubHttpError && e.retryAfterMs !== undefined
        ? e.retryAfterMs
        : backoffMs(ctx, attempt);
      ctx.env.log.warn(
        `${what}: ${errText(e, ctx.token)}; attempt ${attempt + 1}/${ctx.maxRetries} in ${delay} ms`,
      );
      await ctx.env.sleep(delay, ctx.signal);
    }
  }
}

async function loadState(ctx: Ctx, job: Job, etag: string, size: number): Promise<PartState> {
  const inc = incompletePath(ctx.localDir, job.file.path);
  const have = job.hasPart ? (await statOrNull(ctx.env, inc))?.size : undefined;
  let saved: PartState | null = null;
  if (have !== undefined) {
    try {
      saved = JSON.parse(await ctx.env.fs.readTextFile(statePath(ctx.localDir, job.file.path)));
    } catch {
      saved = null;
    }
  }
  if (
    have !== undefined && saved && saved.etag === etag && saved.size === size && Array.isArray(saved.segments)
  ) {
    job.stateSaved = true;
    if (saved.segments.length === 1) {
      // One stream appends: the file's length is the truth, even past the last saved state.
      saved.segments[0].pos = Math.min(have, size);
    } else {
      for (const s of saved.segments) s.pos = Math.min(s.pos, have, s.end);
    }
    return saved;
  }
  if (have !== undefined && have > 0) {
    ctx.env.log.warn(
      `${job.file.path}: the partial download ${
        saved && saved.etag !== etag ? "is of another version (ETag changed)" : "has no usable state"
      }; restarting it`,
    );
  }
  return await freshState(ctx, job, etag, size, !rangesFromStart(ctx, size));
}

async function freshState(
  ctx: Ctx,
  job: Job,
  etag: string,
  size: number,
  single: boolean,
): Promise<PartState> {
  const inc = incompletePath(ctx.localDir, job.file.path);
  await ensureDir(ctx, parentOf(inc));
  if (!single || job.hasPart || size === 0) {
    // One stream truncates when it opens at byte 0; ranges write at offsets into an existing file.
    const f = await ctx.env.fs.open(inc, { write: true, create: true, truncate: true });
    f.close();
  }
  job.hasPart = true;
  if (job.stateSaved) {
    await ctx.env.fs.remove(statePath(ctx.localDir, job.file.path)).catch(() => {});
    job.stateSaved = false;
  }
  const segments: Segment[] = [];
  const step = single ? size : rangeChunkBytes(size, ctx.rangeParts);
  for (let s = 0; s < size || segments.length === 0; s += step || 1) {
    segments.push({ start: s, end: Math.min(size, s + step), pos: s });
    if (size === 0) break;
  }
  const state = { etag, size, segments };
  // A small file gets its state only when a transfer is interrupted: a kill before that loses < 1 MiB.
  if (size >= STATE_MIN_BYTES) await saveState(ctx, job, state);
  return state;
}

/**
 * Pure: the size of one range of a large file. Many more ranges than connections, taken in file order, so
 * the written prefix grows at the speed of all connections and the sha256 follows it during the transfer
 * (four quarter-file ranges left 3/4 of the file to hash after the last byte: ~1 s per GiB). At least 32 MiB
 * (or a quarter of a smaller file) so the extra requests cost little against a real CDN's latency; at most
 * 256 MiB so the ranges still running at the end, re-read for the hash, stay small.
 */
export function rangeChunkBytes(size: number, parts: number): number {
  const MiB = 1024 * 1024;
  const perPart = Math.ceil(size / Math.max(1, parts));
  return Math.max(1, Math.min(256 * MiB, Math.ceil(size / (parts * 8))), Math.min(32 * MiB, perPart));
}

function rangesFromStart(ctx: Ctx, size: number): boolean {
  return size >= ctx.rangeThreshold && ctx.rangeParts > 1 && ctx.splitBelow === Infinity;
}

/** Whether a one-stream transfer of this file may still be split into ranges. */
function splittable(ctx: Ctx, size: number): boolean {
  return size >= ctx.rangeThreshold && ctx.rangeParts > 1 && ctx.splitBelow !== Infinity;
}

/**
 * Splits the rest of a one-stream transfer into ranges after `splitAfterMs` if it is slower than
 * `splitBelow`: the stream keeps the next range, the others go to `queue`. Returns the stop function.
 */
function watchSplit(ctx: Ctx, job: Job, state: PartState, queue: Segment[], addWorkers: (n: number) => void) {
  const seg = state.segments[0];
  const t0 = ctx.env.now();
  const from = seg.pos;
  const timer = setInterval(() => {
    const elapsed = ctx.env.now() - t0;
    if (elapsed < ctx.splitAfterMs) return;
    clearInterval(timer);
    const rate = (seg.pos - from) / (elapsed / 1000);
    const step = rangeChunkBytes(job.size, ctx.rangeParts);
    const boundary = seg.pos + step;
    if (rate >= ctx.splitBelow || boundary >= seg.end - step / 2 || state.segments.length !== 1) return;
    const end = seg.end;
    seg.end = boundary;
    for (let s = boundary; s < end; s += step) {
      const next = { start: s, end: Math.min(end, s + step), pos: s };
      state.segments.push(next);
      queue.push(next);
    }
    ctx.env.log.info(
      `${job.file.path}: ${
        formatBytes(rate)
      }/s on one connection; fetching the rest as ${ctx.rangeParts} ranges`,
    );
    addWorkers(ctx.rangeParts - 1);
  }, Math.max(10, Math.min(250, ctx.splitAfterMs / 4)));
  return () => clearInterval(timer);
}

async function saveState(ctx: Ctx, job: Job, state: PartState) {
  await writeText(ctx.env, statePath(ctx.localDir, job.file.path), JSON.stringify(state));
  job.stateSaved = true;
}

async function removePart(ctx: Ctx, job: Job) {
  await ctx.env.fs.remove(incompletePath(ctx.localDir, job.file.path)).catch(() => {});
  job.hasPart = false;
  if (job.stateSaved) await ctx.env.fs.remove(statePath(ctx.localDir, job.file.path)).catch(() => {});
  job.stateSaved = false;
}

function headWithRetries(ctx: Ctx, job: Job): Promise<FileMetadata> {
  return withRetries(
    ctx,
    job.file.path,
    () => ctx.client.headFile(ctx.repo, ctx.commit, job.file.path, ctx.signal),
  );
}

/**
 * Starts the HEADs in list order, `ahead` at a time beyond the transfers, so a repo of many small files is
 * not one Hub round trip slower per file. A failed HEAD surfaces in that file's fetchFile.
 */
function prefetchHeads(ctx: Ctx, jobs: Job[], parallel: number) {
  const resolvers = new Map<Job, { resolve: (m: FileMetadata) => void; reject: (e: unknown) => void }>();
  for (const j of jobs) {
    j.head = new Promise<FileMetadata>((resolve, reject) => resolvers.set(j, { resolve, reject }));
    j.head.catch(() => {}); // handled where awaited; never an unhandled rejection when the run aborts first
  }
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const j = jobs[next++];
      const r = resolvers.get(j)!;
      if (ctx.signal.aborted) {
        r.reject(ctx.signal.reason);
        continue;
      }
      await headWithRetries(ctx, j).then(r.resolve, r.reject);
    }
  };
  for (let i = 0; i < Math.min(jobs.length, parallel * 2); i++) worker();
}

/** HEAD, fetch (resuming), verify, rename, record. */
async function fetchFile(ctx: Ctx, job: Job): Promise<void> {
  const { env, localDir } = ctx;
  const path = job.file.path;
  const meta = await (job.head ?? headWithRetries(ctx, job));
  job.meta = meta;
  if (meta.size !== job.file.size) {
    throw failed(
      `${path}: the Hub lists ${job.file.size} bytes but serves ${meta.size}`,
      "run again; if it persists the revision is inconsistent on the Hub",
    );
  }
  const sha256 = job.file.lfsSha256 ?? (isSha256(meta.etag) ? meta.etag : undefined);
  const algo = sha256 ? "sha256" : isSha1(meta.etag) && meta.etag === job.file.oid ? "git-sha1" : null;
  const want = sha256 ?? meta.etag;
  const inc = incompletePath(localDir, path);
  ctx.active.add(job);
  try {
    for (let verifyAttempt = 1;; verifyAttempt++) {
      let state = await loadState(ctx, job, meta.etag, meta.size);
      job.hasher = algo ? new InlineHasher(algo, meta.size) : undefined;
      const already = state.segments.reduce((a, s) => a + (s.pos - s.start), 0);
      if (verifyAttempt === 1 && already > 0) {
        job.resumedFrom = already;
        ctx.reused += already;
        ctx.filesResumed++;
        env.log.info(`${path}: resuming at ${formatBytes(already)} of ${formatBytes(meta.size)}`);
      }
      job.done = already;
      job.written = undefined as Job["written"];
      for (let restarts = 0;; restarts++) {
        try {
          await fetchSegments(ctx, job, state, meta.location);
          break;
        } catch (e) {
          if (!(e instanceof RestartFile) || restarts >= 3) throw e;
          env.log.warn(`${path}: ${e.message}; restarting the file from byte 0`);
          ctx.retries++;
          job.done = 0;
          state = await freshState(ctx, job, meta.etag, meta.size, true);
          job.hasher = algo ? new InlineHasher(algo, meta.size) : undefined;
        }
      }
      // A one-stream file was measured on its handle as it completed: no stat of it by path.
      let st = job.written;
      if (!st) {
        const info = await env.fs.stat(inc);
        st = { size: info.size, mtimeMs: info.mtime?.getTime() ?? 0 };
      }
      const size = st.size;
      job.mtimeMs = st.mtimeMs;
      let problem: string | null = null;
      if (size !== meta.size) problem = `size ${size} bytes, expected ${meta.size}`;
      else if (job.hasher) {
        const got = await job.hasher.digest(env, inc, size, ctx.signal);
        if (got !== want) {
          problem = `${algo === "sha256" ? "sha256" : "git blob sha1"} ${got}, expected ${want}`;
        }
      }
      if (problem) {
        await removePart(ctx, job);
        if (verifyAttempt >= 2) {
          throw failed(
            `${path}: downloaded bytes do not match the Hub (${problem}), twice`,
            "the server or a proxy is sending corrupt data; try again later or from another network",
          );
        }
        env.log.warn(`${path}: downloaded bytes do not match (${problem}); deleted, downloading once more`);
        ctx.retries++;
        continue;
      }
      const final = `${localDir}/${path}`;
      await ensureDir(ctx, parentOf(final));
      await env.fs.rename(inc, final);
      await writeMetadata(env, localDir, path, ctx.commit, meta.etag, ctx.dirs);
      if (job.stateSaved) await env.fs.remove(statePath(localDir, path)).catch(() => {});
      return;
    }
  } finally {
    ctx.active.delete(job);
  }
}

/**
 * The unfinished segments, `rangeParts` at a time in file order; progress saved every second and when they
 * stop. While they run, the file's hash follows the contiguous prefix written so far.
 */
async function fetchSegments(ctx: Ctx, job: Job, state: PartState, url: string) {
  const fileAbort = new AbortController();
  const onParent = () => fileAbort.abort(ctx.signal.reason);
  ctx.signal.addEventListener("abort", onParent);
  const canSplit = state.segments.length === 1 && splittable(ctx, job.size);
  const multi = () => state.segments.length > 1;
  const saver = multi() || canSplit
    ? setInterval(() => multi() && saveState(ctx, job, state).catch(() => {}), 1000)
    : undefined;
  let transferring = true;
  const chase = (multi() || canSplit) && job.hasher
    ? chaseHash(ctx, job, job.hasher, state, () => transferring, fileAbort.signal)
    : undefined;
  const queue = state.segments.filter((s) => s.pos < s.end);
  const workers: Promise<void>[] = [];
  const addWorkers = (n: number) => {
    for (let i = 0; i < n; i++) {
      workers.push((async () => {
        for (let seg = queue.shift(); seg && !fileAbort.signal.aborted; seg = queue.shift()) {
          await fetchSegment(ctx, job, state, seg, url, fileAbort.signal).catch((e) => {
            fileAbort.abort(e);
            throw e;
          });
        }
      })());
    }
  };
  addWorkers(Math.min(queue.length, Math.max(1, ctx.rangeParts)));
  const stopSplit = canSplit ? watchSplit(ctx, job, state, queue, addWorkers) : () => {};
  try {
    // Workers may be added while these run (a split): wait until no new one appeared.
    let results: PromiseSettledResult<void>[];
    do {
      results = await Promise.allSettled(workers);
    } while (results.length !== workers.length);
    stopSplit();
    const bad = results.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
    if (bad) throw bad.reason;
  } finally {
    stopSplit();
    transferring = false;
    await chase;
    clearInterval(saver);
    ctx.signal.removeEventListener("abort", onParent);
    const progressed = state.segments.some((s) => s.pos > s.start) &&
      state.segments.some((s) => s.pos < s.end);
    if (multi() || (!job.stateSaved && progressed)) await saveState(ctx, job, state).catch(() => {});
  }
}

/** Pure: the end of the prefix of the file that is written without a gap. */
export function contiguousEnd(segments: Segment[]): number {
  let end = 0;
  for (const s of [...segments].sort((a, b) => a.start - b.start)) {
    if (s.start > end) break;
    end = Math.max(end, s.pos);
    if (s.pos < s.end) break;
  }
  return end;
}

/** Hashes the written prefix from disk while ranges are still coming; never fails (the final digest redoes). */
async function chaseHash(
  ctx: Ctx,
  job: Job,
  hasher: InlineHasher,
  state: PartState,
  running: () => boolean,
  signal: AbortSignal,
) {
  const inc = incompletePath(ctx.localDir, job.file.path);
  try {
    while (running()) {
      const upTo = contiguousEnd(state.segments);
      if (upTo > hasher.cursor) await hasher.catchUp(ctx.env, inc, upTo, signal);
      else await ctx.env.sleep(25);
    }
  } catch {
    // The digest after the transfer hashes whatever this did not.
  }
}

/** One segment to its end, retrying transient failures from the byte reached. */
async function fetchSegment(
  ctx: Ctx,
  job: Job,
  state: PartState,
  seg: Segment,
  url: string,
  signal: AbortSignal,
) {
  let failures = 0;
  let refreshed = 0;
  while (seg.pos < seg.end) {
    const before = seg.pos;
    try {
      await streamOnce(ctx, job, state, seg, job.meta?.location ?? url, signal);
    } catch (e) {
      if (!signal.aborted && isExpiredCdnLink(ctx, e, job.meta?.location ?? url) && refreshed < 3) {
        // Signed CDN links expire (an hour or so) while a big file is still downloading: ask the Hub again.
        refreshed++;
        ctx.retries++;
        ctx.env.log.warn(
          `${job.file.path}: the CDN link was refused (${
            errText(e, ctx.token)
          }); asking the Hub for a fresh one`,
        );
        const fresh = await withRetries(
          ctx,
          job.file.path,
          () => ctx.client.headFile(ctx.repo, ctx.commit, job.file.path, signal),
        );
        if (fresh.etag !== job.meta?.etag || fresh.size !== job.size) {
          throw new RestartFile("the file changed on the Hub while downloading");
        }
        job.meta = fresh;
        continue;
      }
      if (signal.aborted || !isRetriable(e)) throw e;
      failures = seg.pos > before ? 1 : failures + 1;
      if (failures >= ctx.maxRetries) {
        throw failed(
          `${job.file.path}: ${errText(e, ctx.token)}, ${failures} attempts in a row without progress`,
          "run the same command again to resume from the bytes already fetched",
        );
      }
      ctx.retries++;
      if (!job.stateSaved && seg.pos > seg.start) await saveState(ctx, job, state);
      const delay = e instanceof HubHttpError && e.retryAfterMs !== undefined
        ? e.retryAfterMs
        : backoffMs(ctx, failures);
      ctx.env.log.warn(
        `${job.file.path}: ${errText(e, ctx.token)}; attempt ${
          failures + 1
        }/${ctx.maxRetries} in ${delay} ms, resuming at byte ${seg.pos}`,
      );
      await ctx.env.sleep(delay, signal);
    }
  }
}

function isExpiredCdnLink(ctx: Ctx, e: unknown, url: string): boolean {
  return e instanceof HubHttpError && [401, 403, 410].includes(e.status) &&
    new URL(url).origin !== ctx.client.origin;
}

/** One GET of the rest of a segment, written at its offset; a watchdog aborts it when no byte comes. */
async function streamOnce(
  ctx: Ctx,
  job: Job,
  state: PartState,
  seg: Segment,
  url: string,
  signal: AbortSignal,
) {
  const wholeFile = state.segments.length === 1;
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal.reason);
  signal.addEventListener("abort", onAbort);
  let last = ctx.env.now();
  let stalled = false;
  const watchdog = setInterval(() => {
    if (ctx.env.now() - last > ctx.stallMs) {
      stalled = true;
      ac.abort(new StallError(`no byte for ${formatDuration(ctx.stallMs)}`));
    }
  }, Math.max(20, Math.min(1000, ctx.stallMs / 4)));
  const useRange = !(wholeFile && seg.pos === 0);
  // A split while streaming shortens this segment: the server's extra bytes then belong to other ranges.
  const requestedEnd = seg.end;
  let file: Deno.FsFile | undefined;
  try {
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (useRange) headers.range = `bytes=${seg.pos}-${seg.end - 1}`;
    const res = await ctx.client.request(url, { headers, signal: ac.signal });
    if (res.status === 416) {
      await res.body?.cancel();
      throw new RestartFile(`the server answered 416 to bytes=${seg.pos}-`);
    }
    if (!res.ok) throw await ctx.client.explain(res, ctx.repo, job.file.path);
    if (useRange && res.status !== 206) {
      await res.body?.cancel();
      throw new RestartFile(`the server ignored the Range request (HTTP ${res.status})`, true);
    }
    if (res.status === 206) {
      const m = (res.headers.get("content-range") ?? "").match(/bytes (\d+)-(\d+)\/(\d+|\*)/);
      if (!m || Number(m[1]) !== seg.pos || (m[3] !== "*" && Number(m[3]) !== job.size)) {
        await res.body?.cancel();
        throw new RestartFile(`the server answered a different range (${res.headers.get("content-range")})`);
      }
    }
    if (!res.body) throw new HubHttpError(`${job.file.path}: empty body`, res.status, true);
    file = await ctx.env.fs.open(incompletePath(ctx.localDir, job.file.path), {
      write: true,
      create: true,
      truncate: wholeFile && seg.pos === 0,
    });
    if (seg.pos > 0) await file.seek(seg.pos, Deno.SeekMode.Start);
    // A BYOB reader fills one buffer again and again: no allocation per chunk, so memory stays flat and GC
    // has nothing to chase however big the file is.
    const reader = res.body.getReader({ mode: "byob" });
    let buf = new ArrayBuffer(READ_BUFFER_BYTES);
    try {
      while (true) {
        const { done, value } = await reader.read(new Uint8Array(buf));
        if (done || !value) break;
        buf = value.buffer as ArrayBuffer;
        last = ctx.env.now();
        let chunk = value;
        if (seg.pos + chunk.length > seg.end) chunk = chunk.subarray(0, seg.end - seg.pos);
        // Synchronous: a page-cache write is faster than another trip through the event loop. Measured on a
        // 2-core node: async writes double-buffered on Deno's pool took 30-60% longer for 1 GiB, and 1 MiB
        // BYOB buffers 2-3x the system time of 256 KiB ones (each read hands the buffer over).
        let off = 0;
        while (off < chunk.length) off += file.writeSync(chunk.subarray(off));
        job.hasher?.feed(seg.pos, chunk);
        seg.pos += chunk.length;
        job.done += chunk.length;
        ctx.fetched += chunk.length;
        if (seg.end < requestedEnd && seg.pos >= seg.end) break;
        if (chunk.length < value.length) {
          throw new RestartFile(`the server sent more bytes than the ${job.size} expected`);
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    if (seg.pos < seg.end) {
      throw new HubHttpError(`connection closed at byte ${seg.pos} of ${job.size}`, 0, true);
    }
    if (state.segments.length === 1) {
      const info = file.statSync();
      job.written = { size: info.size, mtimeMs: info.mtime?.getTime() ?? 0 };
    }
  } catch (e) {
    if (stalled) throw new StallError(`no byte for ${formatDuration(ctx.stallMs)} (watchdog); resuming`);
    throw e;
  } finally {
    clearInterval(watchdog);
    signal.removeEventListener("abort", onAbort);
    file?.close();
  }
}

/** Bytes, rate and ETA per file and in total, redrawn every second on a terminal only. */
function startProgress(ctx: Ctx, jobs: Job[]): () => void {
  if (!ctx.env.stderrIsTerminal || jobs.length === 0) return () => {};
  const total = jobs.reduce((a, j) => a + j.size, 0);
  const t0 = ctx.env.now();
  const startFetched = ctx.fetched;
  const timer = setInterval(() => {
    const done = jobs.reduce((a, j) => a + Math.min(j.done, j.size), 0);
    const secs = Math.max(0.001, (ctx.env.now() - t0) / 1000);
    const rate = (ctx.fetched - startFetched) / secs;
    const eta = rate > 0 ? formatDuration(((total - done) / rate) * 1000) : "?";
    const files = [...ctx.active].slice(0, 3).map((j) =>
      `${j.file.path} ${j.size ? Math.floor((100 * j.done) / j.size) : 100}%`
    );
    ctx.env.log.progress(
      `${formatBytes(done)}/${formatBytes(total)} ${formatBytes(rate)}/s ETA ${eta}${
        files.length ? `  ${files.join(", ")}` : ""
      }`,
    );
  }, 1000);
  return () => clearInterval(timer);
}
