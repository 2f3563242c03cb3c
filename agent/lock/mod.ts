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
 *
 * Shared holds (acquireShared, shared.ts): many holders at once, excluded by exclusive holders and excluding
 * them. In flock mode LOCK_SH on the same lock file; in lease mode a record per holder, joined under the claim.
 *
 * A record written on another host is judged by how long this host has seen it unchanged, on this host's
 * clock (observe.ts), never by the times written inside it: clocks across a cluster disagree.
 *
 * Files beside the locks: `X.lock` (lock file or claim), `X.lock.owner` (flock owner record),
 * `X.lock.heartbeat` and `X.lock.fence` (lease), `X.lock.shared/` (shared holders), and per directory
 * `.mlagent-claim-method` (claim.ts), `.mlagent-fencing` (fence.ts); in the node-local lock dir
 * `.mlagent-sightings.json` (observe.ts).
 */
import type { Env } from "../core/env.ts";
import { failed } from "../core/errors.ts";
import { checkLockPath, dirOf, ensureLockDir } from "./files.ts";
import { acquireFlock } from "./flock.ts";
import { HeldLock, heldPaths } from "./held.ts";
import { acquireLease } from "./lease.ts";
import { lockModeFor, settings } from "./settings.ts";
import { acquireSharedFlock, acquireSharedLease, drainShared } from "./shared.ts";
import type { LockHandle, LockOptions, LockSpec } from "./types.ts";
import { Waiter } from "./wait.ts";

export {
  clearLock,
  clearStaleLocks,
  findLeftovers,
  inspectLock,
  knownLockDirs,
  listLocks,
} from "./inspect.ts";
export type { ClearResult, LockDir } from "./inspect.ts";
export { checkPrivateLockDir } from "./files.ts";
export { describeOwner, judgeRecord, parseOwnerRecord } from "./record.ts";
export { lockModeFor } from "./settings.ts";
export {
  CACHE_LOCK_DIR,
  cacheLockSpec,
  downloadLockSpec,
  namedLockSpec,
  validateLockName,
  venvLockSpec,
} from "./specs.ts";
export type { ClaimMethod, LockHandle, LockInfo, LockSpec, LockVerdict, OwnerRecord } from "./types.ts";

/**
 * Takes the lock exclusively: waits (up to opts.timeoutMs, default 30 min, printing who holds it) while
 * another process holds it exclusively or any process holds it shared, or fails at once with opts.noWait
 * (MlagentError "lock-busy", exit 3) naming the owner or the shared holders.
 */
export async function acquire(env: Env, spec: LockSpec, opts: LockOptions = {}): Promise<LockHandle> {
  return await withPlainErrors(spec, () => acquireOnce(env, spec, opts, false));
}

/**
 * Takes a shared hold on the lock: any number of processes (and hosts) may hold it shared at once, while no
 * one holds it exclusively. For a command that uses what the lock protects (`mlagent run` using a venv and
 * its models) against one that replaces or removes it (install --force, remove, cache clean, which take it
 * with acquire()).
 *
 * - Waits while an exclusive holder has it, as acquire() does (opts.timeoutMs, notices), or with opts.noWait
 *   fails at once with "lock-busy" naming that holder. An exclusive acquire() waits for every shared holder
 *   to release (or fails with noWait naming them); once it waits, later shared holders queue behind it in
 *   lease mode (flock(2) gives no such promise: a stream of readers can keep a writer waiting).
 * - Each holder has the same owner record as an exclusive one (`shared: true`), shown by `lock list` under
 *   the lock's `holders`. Record the command you run with handle.recordCommand(pid) and pass handle.token to
 *   it as MLAGENT_LOCK_TOKEN: if mlagent is SIGKILLed the command keeps the hold while it runs.
 * - A holder that dies holds nothing: in flock mode the kernel lets go at once; in lease mode its record is
 *   judged like a lease (same host: its process is gone; another host: unchanged for the TTL) and removed by
 *   the next exclusive acquirer.
 * - handle.fencing is the lock's current fencing number (shared holds do not advance it); handle.lost aborts
 *   if an exclusive acquirer judged the hold stale and removed it; release() is idempotent.
 *
 * ```ts
 * const hold = await acquireShared(env, venvLockSpec(venvDir, "run yolo"), { command: argv });
 * try { ...run the command... } finally { await hold.release(); }
 * ```
 */
export async function acquireShared(env: Env, spec: LockSpec, opts: LockOptions = {}): Promise<LockHandle> {
  return await withPlainErrors(spec, () => acquireOnce(env, spec, opts, true));
}

async function withPlainErrors(spec: LockSpec, fn: () => Promise<LockHandle>): Promise<LockHandle> {
  try {
    return await fn();
  } catch (e) {
    if (
      e instanceof Deno.errors.PermissionDenied || (e instanceof Error && /os error 30\b/.test(e.message))
    ) {
      throw failed(
        `cannot acquire lock "${spec.name}": ${e.message} (${spec.path})`,
        "check the owner and mode of the lock's directory, or point MLAGENT_LOCK_DIR / --root elsewhere",
      );
    }
    throw e;
  }
}

async function acquireOnce(
  env: Env,
  spec: LockSpec,
  opts: LockOptions,
  shared: boolean,
): Promise<LockHandle> {
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
  let handle: HeldLock | null = null;
  if (shared) {
    if (mode === "flock") handle = await acquireSharedFlock(env, spec, s, opts, waiter);
    handle ??= await acquireSharedLease(env, spec, s, opts, waiter);
  } else {
    if (mode === "flock") handle = await acquireFlock(env, spec, s, opts, waiter);
    handle ??= await acquireLease(env, spec, s, opts, waiter);
    try {
      await drainShared(env, spec, handle.mode, s, opts, waiter);
    } catch (e) {
      await handle.release();
      throw e;
    }
  }
  handle.waitedMs = waiter.waitedMs();
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
