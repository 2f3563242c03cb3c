/** What `mlagent health` reports: its checks, the verdict, and what it did to the node in the scheduler. */
import type { SchedulerKind } from "./scheduler.ts";

/**
 * Every health check id (part of the JSON contract, and of the drain reasons: `mlagent: <id> <detail>`).
 * Ids shared with doctor and the prologue mean what they mean there.
 */
export type HealthCheckId =
  | "gpu.driver"
  | "gpu.count"
  | "gpu.health"
  | "kernel.xid"
  | "disk.space"
  | "tmpdir"
  | "cuda.wheels"
  | "venv.damaged"
  | "cache.corrupt";

/**
 * pass, warn and skip as elsewhere; fail is a node fault (health drains for it); unknown means the check
 * could not judge (it missed its deadline, or mlagent itself failed), which never drains and never resumes.
 */
export type HealthStatus = "pass" | "warn" | "fail" | "skip" | "unknown";

export interface HealthCheck {
  id: HealthCheckId;
  status: HealthStatus;
  message: string;
  remedy: string | null;
  /** The short text a drain reason carries for a fail (`GPU 3 uncorrectable ECC`); null otherwise. */
  reason: string | null;
  timed_out: boolean;
  duration_ms: number;
}

/** healthy: nothing failed and every check judged; unhealthy: a node fault; unknown: mlagent could not judge. */
export type HealthVerdict = "healthy" | "unhealthy" | "unknown";

export interface GpuFaultFacts {
  index: number;
  name: string | null;
  uuid: string | null;
  bus_id: string | null;
  /** "err" (ERR! fields), "ecc" (uncorrectable ECC since the driver loaded), "row-remap-failure". */
  faults: string[];
}

export interface VenvCudaFacts {
  name: string;
  profile: string | null;
  condition: string;
  cuda_variant: string | null;
  /** The variant's CUDA version (from the profile, else read from its name: cu121 is 12.1). */
  cuda_version: string | null;
  /** Whether this node's driver runs the venv's wheels; null when there is nothing to judge. */
  driver_support: "yes" | "minor-compat" | "no" | null;
}

export interface HealthFacts {
  driver_version: string | null;
  cuda_version: string | null;
  gpu_count: number | null;
  /** GPUs the scheduler says the node has (Slurm's Gres=gpu:N), when it says. */
  expected_gpus: number | null;
  gpus: GpuFaultFacts[];
  xids: { code: number; pci: string; time: string | null; severity: string }[];
  venvs: VenvCudaFacts[];
  cache:
    | { path: string; corrupt_entries: number | null; last_heal_at: string | null; problem: string | null }
    | null;
}

/** The node as the scheduler sees it, read before deciding anything. */
export interface NodeState {
  scheduler: SchedulerKind;
  node: string;
  /** The scheduler's own words: Slurm's State (IDLE+DRAIN), LSF's STATUS (closed_Adm). */
  state: string;
  /** Drained (Slurm) or closed by an administrator (LSF). */
  drained: boolean;
  /** The reason (Slurm) or admin action comment (LSF) currently set, without Slurm's `[user@time]` suffix. */
  reason: string | null;
  /** The reason starts with "mlagent:": mlagent set it and may lift it. */
  by_mlagent: boolean;
  /** GPUs configured for the node (Slurm Gres=gpu:N); null when not said. */
  gres_gpus: number | null;
}

export type ActionKind = "drain" | "update-reason" | "resume" | "none";

export interface SchedulerAction {
  kind: ActionKind;
  /** The reason set by drain or update-reason. */
  reason: string | null;
  /** Why this action (or none), in words. */
  why: string;
  /** The commands run (or, with --dry-run, that would run), each as argv. */
  commands: string[][];
  dry_run: boolean;
  /** True once every command exited 0; false when not run or one failed. */
  done: boolean;
  error: string | null;
}

export interface HealthReport {
  ok: boolean;
  verdict: HealthVerdict;
  exit_code: number;
  host: string;
  /** The node's name in the scheduler (SLURMD_NODENAME, --node, else the host name). */
  node: string;
  scheduler: SchedulerKind | null;
  checked_at: string;
  duration_ms: number;
  timeout_ms: number;
  checks: HealthCheck[];
  /** Ids of the checks that missed their deadline. */
  timed_out: string[];
  facts: HealthFacts;
  /** The node's state before any action; null without a scheduler or when it could not be read. */
  node_state: NodeState | null;
  /** Why node_state is null when a scheduler was in use. */
  node_state_problem: string | null;
  action: SchedulerAction;
  /** Set when mlagent itself failed: the verdict is then unknown and nothing was changed. */
  internal_error: string | null;
}

export interface HealthOptions {
  scheduler: SchedulerKind | null;
  node: string;
  /** Drain and resume through the scheduler (default when a scheduler is in use). */
  drain: boolean;
  /** Read the node's state and print the commands, run none of them. */
  dryRun: boolean;
  /** The whole run, checks and scheduler commands together. */
  timeoutMs: number;
  root?: string;
  /** Look back this far for Xid errors (default MLAGENT_XID_WINDOW_S, else 1 h). */
  xidWindowS?: number;
  /** Fail below this much free space on the venv root and TMPDIR (default MLAGENT_HEALTH_MIN_FREE_GIB, else 1 GiB). */
  minFreeBytes?: number;
}
