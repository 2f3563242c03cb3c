/** The prologue's checks, verdicts and report. */

import type { Profile } from "../profiles/types.ts";
import type { Scheduler } from "./scheduler.ts";

export type Fault = "node" | "job";
export type PrologueStatus = "pass" | "warn" | "fail" | "skip";

/** Every prologue check id (part of the JSON contract; shared ones mean what doctor's do). */
export type PrologueCheckId =
  /** Reported alone when the job cannot be judged at all: a bad flag, or a profile that does not load. */
  | "usage"
  | "profile"
  | "gpu.request"
  | "gpu.visible"
  /** The profile's per-GPU memory need against each GPU or MIG slice the job was given. */
  | "gpu.memory"
  | "gpu.health"
  | "cuda.wheels"
  | "kernel.xid"
  | "tmpdir"
  | "disk.space"
  | "venv.ready"
  | "venv.verify"
  | "models.complete";

export interface PrologueCheck {
  id: PrologueCheckId;
  status: PrologueStatus;
  /** Whose problem a fail is; null for pass, warn and skip. */
  fault: Fault | null;
  message: string;
  remedy: string | null;
  timed_out: boolean;
  duration_ms: number;
}

export type Verdict = "run" | "node-fault" | "job-fault";

export interface PrologueReport {
  ok: boolean;
  verdict: Verdict;
  exit_code: number;
  scheduler: Scheduler | null;
  host: string;
  job_id: string | null;
  profile: string | null;
  gpu_request: { source: string; count: number; devices: string[] | null } | null;
  checks: PrologueCheck[];
  /** Ids of the checks that missed their deadline. */
  timed_out: string[];
  started_at: string;
  duration_ms: number;
  /** Set when --install ran an install. */
  installed: { action: string; duration_ms: number } | null;
}

export interface PrologueOptions {
  /** The profile, when one was named and loaded. */
  profile: Profile | null;
  /** How the profile was named (for --install). */
  profileRef: string | null;
  scheduler: Scheduler | null;
  root?: string;
  /** Deadline for the whole prologue. */
  timeoutMs: number;
  /** Deadline for each check (default: the whole deadline minus a margin for the report). */
  checkTimeoutMs?: number;
  install: boolean;
  /** Also run the profile's verify steps in the venv (prologue --verify). */
  verify?: boolean;
  /** Look back this far for Xid errors (default 1 h, MLAGENT_XID_WINDOW_S). */
  xidWindowS?: number;
  /** Fail below this much free space on the venv root and TMPDIR (default 1 GiB, MLAGENT_PROLOGUE_MIN_FREE_GIB). */
  minFreeBytes?: number;
}
