/** The lock's vocabulary: specs, options, handles, owner records and verdicts, and their defaults. */

export interface LockSpec {
  /** Human name shown in messages, e.g. "venv:hunyuan-video-i2v". */
  name: string;
  /** The lock file. */
  path: string;
  /** What the holder is doing ("install", "cache heal", ...). */
  purpose: string;
}

export type LockMode = "flock" | "lease";

/**
 * How a lease claim is made atomically: hard-linking a complete record into place, or, where the filesystem
 * refuses link(2) (SFTP servers without the hardlink extension, some SMB/CIFS and FUSE filesystems), an
 * exclusive create (O_EXCL) written at once, whose readers allow an unreadable claim one TTL to fill.
 */
export type ClaimMethod = "link" | "exclusive";

export interface LockOptions {
  /** Give up after this long (default 30 min). */
  timeoutMs?: number;
  /** Fail at once (exit 3) if held. */
  noWait?: boolean;
  mode?: "auto" | "flock" | "lease";
  /** Lease TTL: a remote holder whose heartbeat is older than this is stale (default 60 s, MLAGENT_LOCK_TTL). */
  ttlMs?: number;
  /** How often the holder refreshes its heartbeat (default 10 s, MLAGENT_LOCK_HEARTBEAT). */
  heartbeatMs?: number;
  /** How often a lease-mode waiter looks again (default 100 ms, MLAGENT_LOCK_POLL_MS). */
  pollMs?: number;
  /** How often a waiter says who holds the lock (default 5 s, MLAGENT_LOCK_NOTICE). */
  noticeMs?: number;
  /** Stops waiting (the caller was interrupted); acquire then throws. */
  signal?: AbortSignal;
  /** The command that will run under the lock (recorded; its liveness keeps the lock held). */
  command?: string[];
  /** Release on SIGINT/SIGTERM and exit (default true). `lock run` handles signals itself. */
  handleSignals?: boolean;
}

export interface LockHandle {
  spec: LockSpec;
  fencing: number;
  /** Aborted if the lock is lost (lease broken by someone else). */
  lost: AbortSignal;
  release(): Promise<void>;
  mode?: LockMode;
  /** Identifies this acquisition; children of `lock run` carry it as MLAGENT_LOCK_TOKEN. */
  token?: string;
  /** True for a shared hold (acquireShared): others may hold it shared at the same time. */
  shared?: boolean;
  /** Records the pid of the command running under the lock, so others can see who really holds it. */
  recordCommand?(pid: number): Promise<void>;
  /**
   * Aborted on SIGINT/SIGTERM just before the lock is released and the process exits (handleSignals).
   * Pass it as `signal` to env.run so the holder's children die before the lock is let go.
   */
  interrupted?: AbortSignal;
  /**
   * How long acquiring waited while another process held the lock (ms); 0 when it was taken without
   * waiting on anyone (breaking a stale lock is not a wait). Callers report `waited_for_other` from it.
   */
  waitedMs?: number;
}

/** The owner record: what makes a lock judgeable from another process or host. */
export interface OwnerRecord {
  mlagent_lock: 1;
  mode: LockMode;
  name: string;
  token: string;
  host: string;
  pid: number;
  pid_start_time: number | null;
  boot_id: string | null;
  user: string;
  uid: number;
  purpose: string;
  scheduler: string | null;
  job_id: string | null;
  acquired_at: string;
  heartbeat_at: string;
  ttl_ms: number;
  fencing: number;
  command: string[] | null;
  command_pid: number | null;
  command_start_time: number | null;
  /** A shared holder's record (acquireShared), as opposed to the exclusive owner's. */
  shared?: boolean;
  /** How the lease was claimed (lease mode only). */
  claim?: ClaimMethod;
}

export type LockStatus = "free" | "held" | "held-remote" | "stale-dead" | "stale-expired" | "stale-no-owner";

export interface LockVerdict {
  status: LockStatus;
  /** Why, in words ("owner pid 4411 is gone"). */
  reason: string;
  owner: OwnerRecord | null;
  /** For a record from another host: how long this host has seen it unchanged (ms, this host's clock). */
  quietMs?: number;
}

export interface LockInfo extends LockVerdict {
  name: string;
  path: string;
  mode: LockMode;
  /** How leases are claimed in this lock's directory (lease mode), else null. */
  claim: ClaimMethod | null;
  /** Shared holders (acquireShared), each judged like an owner; empty when none. */
  holders: LockVerdict[];
}

export const FLOCK_MAGIC = "mlagent-flock";
export const FLOCK_HEADER_BYTES = 48;
export const TOKEN_VAR = "MLAGENT_LOCK_TOKEN";
export const DEFAULT_TTL_MS = 60_000;
export const DEFAULT_HEARTBEAT_MS = 10_000;
export const DEFAULT_POLL_MS = 100;
export const DEFAULT_NOTICE_MS = 5_000;
export interface Settings {
  ttlMs: number;
  heartbeatMs: number;
  pollMs: number;
  noticeMs: number;
}
