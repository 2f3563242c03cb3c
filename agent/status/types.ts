/** What status reports: venvs and their conditions, models, the cache, locks and the last doctor verdict. */
import type { VerifyResult } from "../download/mod.ts";
import type { LockInfo } from "../lock/mod.ts";
import type { Profile } from "../profiles/types.ts";

/** A venv's state as status sees it. Only "ready" means a job can use it. */
export type VenvCondition =
  | "ready"
  | "installing"
  | "installing-dead-owner"
  | "failed"
  /** Ready, but for an older version of its profile: `mlagent install` will update it. */
  | "outdated"
  /** Ready, but bin/python no longer resolves (its base interpreter was removed or moved). */
  | "interpreter-gone"
  | "corrupt-state"
  /** A directory without mlagent's state (a venv made by hand, or an install that died before writing any). */
  | "no-state"
  /** Ready on record, but a pinned distribution is gone, at another version, or missing files of its RECORD. */
  | "damaged"
  /** Its state could not be read before the deadline (a hung network filesystem). */
  | "unreadable"
  | "missing";

export interface VenvReport {
  name: string;
  path: string;
  condition: VenvCondition;
  ready: boolean;
  /** Why it is in this condition, in words. */
  message: string;
  profile: string | null;
  fingerprint: string | null;
  profile_sha256: string | null;
  /** The current profile's hash, when the profile could be loaded. */
  current_profile_sha256: string | null;
  python_version: string | null;
  cuda_variant: string | null;
  installer: string | null;
  updated_at: string | null;
  finished_at: string | null;
  owner: { host: string; pid: number; alive: boolean | null } | null;
  error: { stage: string | null; kind: string; message: string } | null;
  /** What the integrity check of a ready venv found, and how deep it looked; null when it did not run. */
  integrity: VenvIntegrity | null;
}

export interface VenvIntegrity {
  /** "listing": each pinned dist-info present at its pin; "full": also every RECORD file at its size. */
  mode: "listing" | "full" | "deep";
  ok: boolean;
  packages: number;
  files: number;
  problems: { package: string; file: string | null; reason: string }[];
  duration_ms: number;
}

/** verifyLocalModel's verdict, naming the revision the profile asks for rather than the commit on disk. */
export type ModelReport = Omit<VerifyResult, "commit"> & { revision: string | null };

export interface ProfileReport {
  name: string;
  ready: boolean;
  venv: VenvReport;
  models: ModelReport[];
}

export interface CacheReport {
  path: string;
  exists: boolean;
  filesystem: string | null;
  network: boolean | null;
  bytes: number | null;
  entries: number | null;
  corrupt_entries: number | null;
  last_heal_at: string | null;
  problem: string | null;
}

export interface DoctorSummary {
  state: "ok" | "failed" | "missing" | "corrupt";
  ok: boolean | null;
  checked_at: string | null;
  age_ms: number | null;
  profile: string | null;
  failed: string[];
  warned: string[];
  problem: string | null;
  /** The verdict file read: the node's, from a plain `mlagent doctor`. */
  file: string;
  /** The facts the doctor gathered (GPU devices, ECC, remapped rows), for metrics. */
  facts: Record<string, unknown> | null;
}

export interface StatusReport {
  ok: boolean;
  generated_at: string;
  root: string;
  node: { host: string; boot_id: string | null; scheduler: string | null; job_id: string | null };
  venvs: VenvReport[];
  profiles: ProfileReport[];
  cache: CacheReport;
  locks: LockInfo[];
  doctor: DoctorSummary;
  /** Parts not read before the deadline ("venv hunyuan", "cache", ...): a hung filesystem, most likely. */
  timed_out: string[];
  duration_ms: number;
}

export interface StatusOptions {
  profiles: Profile[];
  root?: string;
  /** The whole report's deadline (default 10 s); parts not read by then are reported as timed out. */
  timeoutMs?: number;
}
