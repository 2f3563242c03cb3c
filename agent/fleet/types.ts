/** The cluster report `mlagent fleet` builds from each node's status and health files. */

/** What can be wrong with one node file; the report names it, the merge goes on. */
export type FileProblemKind =
  | "unreadable"
  | "truncated"
  | "empty"
  | "too-large"
  | "newer-schema"
  | "unknown-format"
  | "clock-skew"
  | "stale"
  | "duplicate";

export interface FileProblem {
  kind: FileProblemKind;
  /** The file's name in the directory (or `stdin#N`). */
  file: string;
  detail: string;
}

/** One node file as read: its text, or why it could not be read. */
export interface RawNodeFile {
  name: string;
  text: string | null;
  /** Modification time (the filesystem's clock), when known. */
  mtime_ms: number | null;
  problem: FileProblem | null;
}

export interface NodeRow {
  node: string;
  status_file: string | null;
  health_file: string | null;
  status_at: string | null;
  status_age_ms: number | null;
  health_at: string | null;
  health_age_ms: number | null;
  /** The last health verdict (healthy, unhealthy, unknown); null without a health file. */
  verdict: string | null;
  failed_checks: string[];
  /** Each failing check with its short reason (`gpu.health GPU 3 ERR!`). */
  faults: string[];
  /** The node as health last saw it in the scheduler. */
  drained: boolean | null;
  drain_reason: string | null;
  driver_version: string | null;
  gpu_faults: { gpu: number; uuid: string | null; faults: string[] }[];
  cache_corrupt_entries: number | null;
  /** Venvs here whose CUDA wheels this node's driver cannot run. */
  driver_too_old: {
    venv: string;
    profile: string | null;
    cuda_variant: string | null;
    cuda_version: string | null;
  }[];
  /** Venvs by profile: profile -> condition (ready, damaged, outdated, failed, ...). */
  venvs: Record<string, string>;
  problems: FileProblem[];
  /** Anything here an admin should look at. */
  attention: boolean;
}

export interface ProfileRow {
  profile: string;
  ready: string[];
  damaged: string[];
  outdated: string[];
  /** Nodes whose status file is current and has no venv for the profile. */
  missing: string[];
  /** Other conditions (failed, installing, interpreter-gone, ...). */
  other: { node: string; condition: string }[];
  /** Nodes without a usable status file: nothing is known. */
  unknown: string[];
  /** Nodes whose driver is too old for the CUDA wheels of this profile's venv. */
  driver_too_old: string[];
}

export interface FleetCounts {
  nodes: number;
  files: number;
  /** Nodes with a readable, current status file. */
  current: number;
  healthy: number;
  unhealthy: number;
  cannot_judge: number;
  drained: number;
  gpu_faults: number;
  corrupt_caches: number;
  driver_too_old: number;
  /** Nodes with at least one file problem of each kind. */
  problems: Partial<Record<FileProblemKind, number>>;
  attention: number;
}

export interface FleetReport {
  ok: boolean;
  generated_at: string;
  source: string;
  max_age_s: number;
  max_skew_s: number;
  duration_ms: number;
  counts: FleetCounts;
  profiles: ProfileRow[];
  nodes: NodeRow[];
}

export interface MergeOptions {
  /** This clock, ms since the epoch. */
  now: number;
  /** A report older than this is stale. */
  maxAgeMs: number;
  /** A report this far ahead of this clock, or this far off its file's mtime, comes from a clock far off. */
  maxSkewMs: number;
  source: string;
}
