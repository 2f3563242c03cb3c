/** Process identity from procfs: is a pid alive, and is it still the same process (start time, boot). */
import type { Env } from "./env.ts";

export interface ProcIdentity {
  pid: number;
  /** Start time in clock ticks since boot (field 22 of /proc/PID/stat); with the boot id it names one process. */
  startTime: number;
  state: string;
}

/** Reads /proc/PID/stat. Zombies count as dead: PID 1 here does not reap orphans. */
export function readProc(env: Env, pid: number): ProcIdentity | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  let text: string;
  try {
    text = env.fs.readTextFileSync(`${env.procRoot}/${pid}/stat`);
  } catch {
    return null;
  }
  // comm may contain spaces and parentheses: split after the last ')'.
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const fields = text.slice(close + 2).split(" ");
  const state = fields[0];
  const startTime = Number(fields[19]);
  return { pid, state, startTime };
}

/** True when pid runs and is not a zombie; with startTime, also that it is the same process. */
export function isAlive(env: Env, pid: number, startTime?: number | null): boolean {
  const p = readProc(env, pid);
  if (!p || p.state === "Z" || p.state === "X") return false;
  if (startTime !== undefined && startTime !== null && p.startTime !== startTime) return false;
  return true;
}

/** This boot's id; a lock or owner record from another boot is dead. */
export function bootId(env: Env): string | null {
  try {
    return env.fs.readTextFileSync(`${env.procRoot}/sys/kernel/random/boot_id`).trim();
  } catch {
    return null;
  }
}

export function selfIdentity(env: Env): { pid: number; startTime: number | null; bootId: string | null } {
  return { pid: env.pid, startTime: readProc(env, env.pid)?.startTime ?? null, bootId: bootId(env) };
}

/** The scheduler job id, if this runs inside a job. */
export function schedulerJob(env: Env): { scheduler: "lsf" | "slurm"; job_id: string } | null {
  if (env.vars.LSB_JOBID) return { scheduler: "lsf", job_id: env.vars.LSB_JOBID };
  if (env.vars.SLURM_JOB_ID) return { scheduler: "slurm", job_id: env.vars.SLURM_JOB_ID };
  return null;
}
