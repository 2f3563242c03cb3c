/** One download run's shared state: the jobs, their parts and segments, and the knobs that tune the transfer. */
import { numberVar } from "../core/vars.ts";
import type { Env } from "../core/env.ts";
import { type FileMetadata, HubClient, type HubFile } from "./hub.ts";
import { InlineHasher } from "./hasher.ts";
import type { Layout } from "./layout.ts";
import type { DownloadOptions } from "./types.ts";

export interface Segment {
  start: number;
  /** Exclusive. */
  end: number;
  /** Next byte to write. */
  pos: number;
}

export interface PartState {
  etag: string;
  size: number;
  segments: Segment[];
}

export interface Job {
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
  /** The GET whose headers gave `meta`, its body not yet read (a regular file's bytes from byte 0). */
  opened?: Response;
  /** Hub cache: the other listed paths with the same bytes, linked to the one blob this job fetches. */
  alsoPaths?: string[];
}
export const READ_BUFFER_BYTES = 256 * 1024;

/** Smaller files keep no state file unless interrupted: restarting them costs less than the extra write. */
export const STATE_MIN_BYTES = 1024 * 1024;

export class RestartFile extends Error {
  constructor(message: string, readonly singleStream = false) {
    super(message);
  }
}
export class StallError extends Error {}

export interface Ctx {
  env: Env;
  client: HubClient;
  repo: string;
  commit: string;
  layout: Layout;
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
  /** Bytes not fetched: complete files found done, plus `resumed`. */
  reused: number;
  /** Bytes of partial files an earlier run left, kept and resumed from. */
  resumed: number;
  filesResumed: number;
  active: Set<Job>;
  /** Dirs known to exist (saves a mkdir per file). */
  dirs: Set<string>;
  /** Read buffers of finished streams, handed to the next: no fresh 256 KiB (zeroed, page-faulted) per file. */
  buffers: ArrayBuffer[];
}

export function ensureDir(ctx: Ctx, dir: string) {
  if (ctx.dirs.has(dir)) return;
  ctx.env.fs.mkdirSync(dir, { recursive: true });
  ctx.dirs.add(dir);
}

export function stallMsFor(env: Env, opts: DownloadOptions): number {
  return opts.stallTimeoutMs ?? numberVar(env, "MLAGENT_STALL_TIMEOUT_S", 60) * 1000;
}
