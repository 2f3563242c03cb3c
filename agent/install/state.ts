/**
 * A venv's own record of itself: <venv>/.mlagent/state.json, written atomically. A venv cannot be renamed
 * into place, so it is built where it lives and `status: "ready"` is written last: no ready, not ready.
 */
import { readJson, writeJsonAtomic } from "../core/atomic.ts";
import type { Env } from "../core/env.ts";
import type { DriverRecord, InterpreterStamp } from "./stamp.ts";

export type VenvStatus = "installing" | "ready" | "failed";

export interface StageState {
  name: string;
  /** Hash of the stage's resolved content (packages, options, indexes). */
  fingerprint: string;
  status: "done" | "failed" | "pending";
}

export interface VenvState {
  profile: string;
  status: VenvStatus;
  /** Hash of the whole resolved plan: profile content, CUDA variant, interpreter version, installer. */
  fingerprint: string;
  plan: {
    profile_sha256: string;
    cuda_variant: string | null;
    python_executable: string;
    python_version: string;
    installer: "uv" | "pip";
    /** Where the profile came from: "builtin:NAME" or the absolute path of its file (absent before 0.2). */
    profile_source?: string;
  };
  stages: StageState[];
  owner: { host: string; pid: number; pid_start_time: number | null; boot_id: string | null };
  started_at: string;
  updated_at: string;
  finished_at: string | null;
  /** name -> version as installed (lowercase canonical names). */
  packages: Record<string, string>;
  error: { stage: string | null; kind: string; message: string } | null;
  /**
   * The interpreter's files as they were when this install last ran it (stamp.ts), written with `ready`:
   * while they are unchanged, a no-op install need not start Python to know it runs. Absent before 0.2.
   */
  interpreter_stamp?: InterpreterStamp;
  /**
   * The driver facts the CUDA variant was chosen from, with the driver's stamp taken just before nvidia-smi
   * gave them (stamp.ts): a no-op of a CUDA profile reuses them while the stamp holds. Absent before 0.2.
   */
  driver?: DriverRecord;
}

export const stateDirOf = (venv: string) => `${venv}/.mlagent`;
export const stateFileOf = (venv: string) => `${venv}/.mlagent/state.json`;

export function readVenvState(env: Env, venv: string) {
  return readJson<VenvState>(env, stateFileOf(venv));
}

export async function writeVenvState(env: Env, venv: string, state: VenvState): Promise<void> {
  await env.fs.mkdir(stateDirOf(venv), { recursive: true });
  await writeJsonAtomic(env, stateFileOf(venv), state);
}
