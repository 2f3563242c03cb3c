/** What an install is asked for, what it plans and what it reports. */

import type { CudaVariant, Profile } from "../profiles/types.ts";
import type { InstallerChoice, StageCommand } from "./installer.ts";
import type { PythonInfo } from "./venv.ts";
import type { DriverRecord } from "./stamp.ts";
import type { CheckResult } from "../../checks/types.ts";

export interface InstallOptions {
  /** Profile name or path. */
  profile: string;
  root?: string;
  force?: boolean;
  dryRun?: boolean;
  /** Force a CUDA variant ("cu121" or "12.1"). */
  cuda?: string;
  noModels?: boolean;
  /** How long to wait for another install of the same venv. */
  lockTimeoutMs?: number;
  noWait?: boolean;
}

export interface PlannedStage {
  name: string;
  /** Chained: a stage's fingerprint covers every stage before it, so a change reinstalls it and all after. */
  fingerprint: string;
  command: StageCommand;
  indexes: string[];
  /**
   * The exact pins of every earlier stage (`name==version`), installed as constraints so this stage cannot
   * move them; empty for the first stage, or with MLAGENT_STAGE_CONSTRAINTS=0.
   */
  constraints: string[];
  /** Where the constraints are written before the stage runs (inside the venv's state dir); null when none. */
  constraintsFile: string | null;
}

export interface InstallPlan {
  profile: Profile;
  profileSha256: string;
  /** "builtin:NAME" or the file the profile was read from, recorded so the venv can be judged by name. */
  profileSource: string;
  venvDir: string;
  python: PythonInfo;
  pythonReason: string;
  cuda: CudaVariant | null;
  cudaReason: string | null;
  installer: InstallerChoice;
  cacheDir: string | null;
  cacheReason: string;
  crossDevice: boolean;
  mirror: string | null;
  stages: PlannedStage[];
  fingerprint: string;
  /**
   * local_dir: where the model's files are. For layout "hub-cache", the snapshot folder of the pinned commit
   * (or of the commit refs/<revision> names); before that revision was ever fetched, the repo's folder
   * `models--ORG--NAME` (the download report then names the snapshot).
   */
  models: { repo: string; revision: string; local_dir: string; layout?: "local-dir" | "hub-cache" }[];
  /** The driver facts the CUDA variant was chosen from and the driver's stamp; null without a driver. */
  driver: DriverRecord | null;
  /** Whether GPU-only verify steps run (the profile requires a GPU, or the node has one). */
  gpuPresent: boolean;
  /** The doctor's verdicts the plan acted on, warnings included (shown by --dry-run). */
  doctor: CheckResult[];
}

export type InstallAction = "none" | "created" | "updated" | "rebuilt" | "repaired";

export interface StageReport {
  name: string;
  /** "repaired": only the stage's damaged packages were reinstalled (no deps, from the cache). */
  action: "installed" | "skipped" | "repaired";
  attempts: number;
  duration_ms: number;
  argv: string[];
}

export interface InstallReport {
  ok: boolean;
  profile: string;
  venv: string;
  status: "ready" | "planned";
  action: InstallAction;
  /** True when this run waited for the venv's lock while another process held it (which may have finished it). */
  waited_for_other: boolean;
  python: { executable: string; version: string };
  cuda_variant: string | null;
  installer: "uv" | "pip";
  cache_dir: string | null;
  fingerprint: string;
  stages: StageReport[];
  verify: { name: string; ok: boolean; skipped: boolean; duration_ms: number }[];
  models: { repo: string; local_dir: string; ok: boolean; skipped: boolean; files?: number }[];
  packages: Record<string, string>;
  duration_ms: number;
}
