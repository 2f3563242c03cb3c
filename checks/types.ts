/** The result record every node check returns. Check ids are part of the JSON contract. */
import type { Env } from "../agent/core/env.ts";
import type { Profile } from "../agent/profiles/types.ts";

export type CheckStatus = "pass" | "warn" | "fail" | "skip";

/** Every doctor check id. Part of the JSON contract: renaming one breaks users' scripts and alerts. */
export type CheckId =
  | "gpu.driver"
  | "gpu.devices"
  | "gpu.health"
  | "cuda.toolkit"
  | "cuda.driver_compat"
  | "cuda.wheels"
  | "python.interpreter"
  | "python.headers"
  | "python.venv"
  | "disk.space"
  | "tmpdir"
  | "cache.fs"
  | "venv.fs"
  | "cache.link_mode"
  | "installer";

export interface CheckResult {
  id: CheckId;
  status: CheckStatus;
  /** The actual value against the expected one, with units. */
  message: string;
  /** What the user can do about a warn or fail; null when nothing is needed. */
  remedy: string | null;
  /** Raw facts the check found (also merged into the doctor's `facts`). */
  facts?: Record<string, unknown>;
  durationMs?: number;
}

export interface CheckContext {
  env: Env;
  /** The profile the node is judged against; null judges a plain node (a missing GPU is then a warn). */
  profile: Profile | null;
  /** Where venvs live (--root/MLAGENT_ROOT), for disk and filesystem checks. */
  venvRoot: string;
  /** Timeout for each probe (nvidia-smi etc.). */
  probeTimeoutMs: number;
  /** The installer cache dir when the caller knows it (install, cache); else checks derive it. */
  cacheDir?: string;
  /** Dirs scanned for cuda* toolkits (default /usr/local); tests point it at a temp tree. */
  cudaSearchRoots?: string[];
}

/** A check: gathers through the Env, then evaluates purely. May return several results (one per aspect). */
export type Check = (ctx: CheckContext) => Promise<CheckResult[]>;

export const result = (
  id: CheckId,
  status: CheckStatus,
  message: string,
  remedy: string | null = null,
  facts?: Record<string, unknown>,
): CheckResult => ({ id, status, message, remedy, ...(facts ? { facts } : {}) });
