/** What a download is asked for and what it reports; the manifest mlagent keeps beside the files. */
import type { LayoutKind } from "./layout.ts";

/** Where the files go: a local dir (default), or the hub cache (`models--ORG--NAME` under HF_HUB_CACHE). */
export interface Target {
  /** "local-dir" (the default) needs localDir; "hub-cache" ignores it. */
  layout?: LayoutKind;
  localDir?: string;
  /** Hub cache to use instead of HF_HUB_CACHE / $HF_HOME/hub (as hf's `cache_dir`). */
  hubCacheDir?: string;
}

export interface DownloadOptions extends Target {
  repo: string;
  /** Branch, tag or commit; default "main". */
  revision?: string;
  /** fnmatch globs as in `hf download --include` (`*` crosses `/`). */
  include?: string[];
  exclude?: string[];
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
  layout: LayoutKind;
  /** Where the files are: the local dir, or the commit's snapshot folder in the hub cache. */
  local_dir: string;
  offline: boolean;
  files: number;
  files_fetched: number;
  files_reused: number;
  files_resumed: number;
  total_bytes: number;
  fetched_bytes: number;
  /** Bytes not fetched by this run: files already complete plus the kept parts of resumed files. */
  reused_bytes: number;
  /** The part of reused_bytes that came from partial files an earlier run left (resumed, not refetched). */
  resumed_bytes: number;
  retries: number;
  duration_ms: number;
  throughput_bytes_per_s: number;
  missing: string[];
  partial: string[];
  /** Offline: why the dir is not complete when that is not a file list (another repo or revision, ...). */
  reason: string | null;
}

export interface VerifyOptions extends Target {
  repo: string;
  revision?: string;
  requiredFiles?: string[];
  include?: string[];
  exclude?: string[];
  /** Re-hash every file (sha256 for LFS files, git blob sha1 for the others) against its recorded hash. */
  deep?: boolean;
}

export interface VerifyResult {
  complete: boolean;
  repo: string;
  commit: string | null;
  /** Always set by verifyLocalModel (optional only for reports built on this type elsewhere). */
  layout?: LayoutKind;
  /** The local dir; in the hub cache, the snapshot folder of the commit (the repo's folder when none is known). */
  local_dir: string;
  /** Files expected and checked. */
  files: number;
  bytes: number;
  missing: string[];
  /** Files with an `.incomplete` download or a wrong size. */
  partial: string[];
  /** Files whose bytes no longer match the recorded hash. */
  corrupt: string[];
  // The three fields below are always set by verifyLocalModel; optional only so that reports built on this
  // type elsewhere (status's ModelReport) need not carry them.
  /**
   * Files present at the listed size that nothing proves: no record of their hash, a record of other bytes
   * (another revision's), or changed since their record with no hash to check them against.
   */
  unverified?: string[];
  /**
   * Where the list of expected files came from: mlagent's manifest, huggingface_hub's `trees/<commit>.json`
   * (in `.cache/huggingface` of a local dir, in the repo folder of the hub cache), or "unknown" (only per-file
   * records or snapshot entries, or nothing).
   */
  listing?: "mlagent" | "hf" | "unknown";
  /** Files whose bytes were hashed by this check (all of them with `deep`). */
  hashed_files?: number;
  /** Why the dir is not complete, in words, whenever it is not (the lists above name the files). */
  reason: string | null;
}

/** One file as the Hub lists it: size, etag (git blob sha1, or the sha256 of an LFS file), sha256 if LFS. */
export interface ListedFile {
  size: number;
  etag: string;
  sha256?: string;
}

/**
 * What mlagent records about a download; huggingface_hub ignores it. Written (atomically) with the whole
 * listing before the first byte of a run is fetched, and again when the run ends: a run killed in between
 * leaves a listing against which the missing files are named.
 */
export interface Manifest {
  /** 2 since the listing is written first; 1 (written only at the end of a run) is still read. */
  schema_version: 1 | 2;
  repo: string;
  revision: string;
  commit: string;
  /** When the listing was recorded. */
  listed_at?: string;
  /** When a run last finished every file it was asked for; null while one runs (or after it was killed). */
  completed_at: string | null;
  /** Files mlagent verified and finished, with their mtime at that moment (a later change is then seen). */
  files: Record<string, ListedFile & { mtime_ms: number }>;
  /**
   * Every file of the revision, downloaded or not, so a later check with a wider include knows what the
   * repo has beyond what an earlier, narrower download fetched. Absent in schema 1 manifests of old runs.
   */
  listing?: Record<string, ListedFile>;
}
