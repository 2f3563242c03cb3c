/**
 * Locks safe across processes and hosts.
 *
 * Two mechanisms behind one contract:
 * - flock mode (node-local filesystems): a kernel lock on `X.lock`, so a holder that dies releases it at once
 *   and a waiter blocked in flock(2) wakes the moment it does. The lock file is persistent and never truncated
 *   before it is held; it carries only the fencing counter. The owner record is a sidecar `X.lock.owner`
 *   written atomically (temp file, then rename): readers that do not hold the lock (`lock list`, waiters printing who holds
 *   it) must never see half a record, and rewriting the locked file in place cannot promise that.
 * - lease mode (network filesystems, where flock is emulated, node-local or missing, or where flock fails):
 *   `X.lock` itself is the claim, made atomically by hard-linking a complete record into place (link(2) is
 *   atomic on NFS, where O_EXCL historically was not). The claim is never rewritten: heartbeats go to
 *   `X.lock.heartbeat` (tagged with the holder's token), so a holder that resumes after being broken cannot
 *   clobber its successor's claim. Breaking is rename-aside-then-claim, and the breaker checks that what it
 *   moved aside is the record it judged stale, putting anything else back.
 *
 * In both modes a lock taken for a command (`lock run`) stays held while that command lives, even when
 * mlagent itself is SIGKILLed: the command carries MLAGENT_LOCK_TOKEN, and a judge on the same host that
 * finds the owner dead looks for a live process carrying the token before calling the lock stale.
 */
import type { Env } from "../core/env.ts";
import { failed } from "../core/errors.ts";
import { checkLockPath, dirOf, ensureLockDir } from "./files.ts";
import { acquireFlock } from "./flock.ts";
import { HeldLock, heldPaths } from "./held.ts";
import { acquireLease } from "./lease.ts";
import { lockModeFor, settings } from "./settings.ts";
import type { LockHandle, LockOptions, LockSpec } from "./types.ts";
import { Waiter } from "./wait.ts";

export { clearLock, findLeftovers, inspectLock, listLocks } from "./inspect.ts";
export { describeOwner, judgeRecord, parseOwnerRecord } from "./record.ts";
export { lockModeFor } from "./settings.ts";
export { cacheLockSpec, downloadLockSpec, namedLockSpec, validateLockName, venvLockSpec } from "./specs.ts";
export type { LockHandle, LockInfo, LockSpec, OwnerRecord } from "./types.ts";

export async function acquire(env: Env, spec: LockSpec, opts: LockOptions = {}): Promise<LockHandle> {
  try {
    return await acquireOnce(env, spec, opts);
  } catch (e) {
    if (
      e instanceof Deno.errors.PermissionDenied || (e instanceof Error && /os error 30\b/.test(e.message))
    ) {
      throw failed(
        `Cannot acquire lock "${spec.name}": ${e.message} (${spec.path})`,
        "check the owner and mode of the lock's directory, or point MLAGENT_LOCK_DIR / --root elsewhere",
      );
    }
    throw e;
  }
}

async function acquireOnce(env: Env, spec: LockSpec, opts: LockOptions): Promise<LockHandle> {
  const s = settings(env, opts);
  await ensureLockDir(env, dirOf(spec.path));
  await checkLockPath(env, spec.path);
  if (heldPaths.has(spec.path)) {
    throw failed(
      `lock "${spec.name}" is already held by this process`,
      "this is a bug in mlagent: a lock was taken twice",
    );
  }
  const mode = lockModeFor(env, spec.path, opts.mode);
  const waiter = new Waiter(env, spec, s, opts);
  let handle: HeldLock;
  if (mode === "flock") {
    const got = await acquireFlock(env, spec, s, opts, waiter);
    handle = got ?? await acquireLease(env, spec, s, opts, waiter);
  } else {
    handle = await acquireLease(env, spec, s, opts, waiter);
  }
  if (opts.handleSignals ?? true) handle.watchSignals();
  return handle;
}

export async function withLock<T>(
  env: Env,
  spec: LockSpec,
  opts: LockOptions,
  fn: (lock: LockHandle) => Promise<T>,
): Promise<T> {
  const lock = await acquire(env, spec, opts);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}
