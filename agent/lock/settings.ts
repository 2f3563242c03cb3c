/** Lock timings from options and MLAGENT_LOCK_* variables, and the choice between flock and a lease. */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { mountForPath } from "../core/mounts.ts";
import {
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_NOTICE_MS,
  DEFAULT_POLL_MS,
  DEFAULT_TTL_MS,
  type LockMode,
  type LockOptions,
  type Settings,
} from "./types.ts";

function secondsVar(env: Env, name: string): number | undefined {
  const v = env.vars[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw badInput(`${name} must be a number of seconds > 0, got "${v}"`);
  return n * 1000;
}

export function settings(env: Env, opts: LockOptions): Settings {
  const pollVar = env.vars.MLAGENT_LOCK_POLL_MS;
  const poll = pollVar ? Number(pollVar) : undefined;
  if (poll !== undefined && (!Number.isFinite(poll) || poll <= 0)) {
    throw badInput(`MLAGENT_LOCK_POLL_MS must be a number > 0, got "${pollVar}"`);
  }
  return {
    ttlMs: opts.ttlMs ?? secondsVar(env, "MLAGENT_LOCK_TTL") ?? DEFAULT_TTL_MS,
    heartbeatMs: opts.heartbeatMs ?? secondsVar(env, "MLAGENT_LOCK_HEARTBEAT") ?? DEFAULT_HEARTBEAT_MS,
    pollMs: opts.pollMs ?? poll ?? DEFAULT_POLL_MS,
    noticeMs: opts.noticeMs ?? secondsVar(env, "MLAGENT_LOCK_NOTICE") ?? DEFAULT_NOTICE_MS,
  };
}

/** flock where the kernel can be trusted with it, a lease where the lock file sits on a network filesystem. */
export function lockModeFor(env: Env, path: string, requested?: LockOptions["mode"]): LockMode {
  const want = requested ?? env.vars.MLAGENT_LOCK_MODE ?? "auto";
  if (want === "flock" || want === "lease") return want;
  if (want !== "auto") throw badInput(`MLAGENT_LOCK_MODE must be auto, flock or lease, got "${want}"`);
  return mountForPath(env, path)?.network ? "lease" : "flock";
}
