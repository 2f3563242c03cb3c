/** What a download is asked for and what it reports; the manifest mlagent keeps beside the files. */

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
export interface Manifest {
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
