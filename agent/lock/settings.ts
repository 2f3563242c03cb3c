/** Lock timings from options and MLAGENT_LOCK_* variables, and the choice between flock and a lease. */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { numberVar } from "../core/vars.ts";
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

/** A MLAGENT_LOCK_* number of seconds, in ms. */
function secondsVar(env: Env, name: string): number | undefined {
  const s = numberVar(env, name, undefined, { positive: true });
  return s === undefined ? undefined : s * 1000;
}

export function settings(env: Env, opts: LockOptions): Settings {
  const poll = numberVar(env, "MLAGENT_LOCK_POLL_MS", undefined, { positive: true });
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
