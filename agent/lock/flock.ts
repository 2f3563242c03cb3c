/** flock mode: the kernel lock on node-local filesystems, with the owner record in a sidecar. */
import type { Env } from "../core/env.ts";
import { isoTime } from "../core/output.ts";
import { raiseFenceFloor, readFence, readFenceFloor } from "./fence.ts";
import { checkLockPath, dirOf, readText, writeRecord } from "./files.ts";
import { HeldLock } from "./held.ts";
import { describeHolders, isHeld, judgeHolders, listedIds, readHolders, sharedDirOf } from "./holders.ts";
import { makeRecord, newToken, parseOwnerRecord } from "./record.ts";
import { judgeState, parseFencingHeader, readLockState } from "./state.ts";
import {
  FLOCK_HEADER_BYTES,
  FLOCK_MAGIC,
  type LockOptions,
  type LockSpec,
  type LockVerdict,
  type OwnerRecord,
  type Settings,
} from "./types.ts";
import { busyError, pause, Waiter } from "./wait.ts";

class FlockLock extends HeldLock {
  constructor(
    env: Env,
    spec: LockSpec,
    token: string,
    fencing: number,
    record: OwnerRecord,
    s: Settings,
    private file: LockFile,
  ) {
    super(env, spec, "flock", token, fencing, record, s);
  }

  protected async beat() {
    this.record = {
      ...this.record,
      heartbeat_at: isoTime(this.env.now()),
      command_pid: this.commandPid,
      command_start_time: this.commandStart,
    };
    await writeRecord(this.env, `${this.spec.path}.owner`, this.record);
  }

  protected async drop() {
    // The record goes first, while the kernel lock still keeps everyone else out.
    const text = await readText(this.env, `${this.spec.path}.owner`).catch(() => null);
    if (text && parseOwnerRecord(text)?.token === this.token) {
      await this.env.fs.remove(`${this.spec.path}.owner`).catch(() => {});
    }
    if (this.file.writable) await retireLockFile(this.env, this.spec.path, this.file.handle, this.fencing);
    try {
      await this.file.handle.unlock();
    } catch { /* closing releases it too */ }
    this.file.handle.close();
  }
}

export interface LockFile {
  handle: Deno.FsFile;
  /** False for another user's lock file in a shared directory, opened read-only. */
  writable: boolean;
}

export async function sameInode(env: Env, path: string, file: Deno.FsFile): Promise<boolean> {
  try {
    const [a, b] = await Promise.all([env.fs.lstat(path), file.stat()]);
    return !a.isSymlink && a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** Errors that say flock does not work on this filesystem (ENOLCK, ENOSYS, ENOTSUP/524, EBADF on NFS). */
function flockUnsupported(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /os error (37|38|95|524|9)\b/.test(msg) || e instanceof Deno.errors.NotSupported;
}

/**
 * Removes a released lock file while still holding its kernel lock, so per-job lock names leave nothing
 * behind. Safe for waiters: one blocked in flock(2) on this inode wakes holding an unlinked file, sees that
 * the path no longer names it (sameInode) and starts over on the new file. The fencing number is folded into
 * the directory's floor first (fence.ts); where that cannot be written, or a record still names a holder
 * (a command that outlived its mlagent), the file stays.
 */
export async function retireLockFile(
  env: Env,
  path: string,
  file: Deno.FsFile,
  fencing: number,
): Promise<boolean> {
  try {
    if (!(await sameInode(env, path, file))) return false;
    if ((await readText(env, `${path}.owner`)) !== null) return false;
    if (listedIds(env, path).length) return false;
    const header = parseFencingHeader(await readText(env, path));
    await raiseFenceFloor(env, dirOf(path), Math.max(fencing, header, await readFence(env, path)));
    await env.fs.remove(`${path}.fence`).catch(() => {});
    await env.fs.remove(sharedDirOf(path), { recursive: true }).catch(() => {});
    await env.fs.remove(path);
    return true;
  } catch (e) {
    env.log.debug(`kept lock file ${path}: ${e instanceof Error ? e.message : e}`);
    return false;
  }
}

/** Who holds the lock, for a message: the exclusive owner if its record says held, else the shared holders. */
export async function holdersMessage(
  env: Env,
  spec: LockSpec,
  s: Settings,
): Promise<{ owner: OwnerRecord | null; shared: (OwnerRecord | null)[] }> {
  const st = await readLockState(env, spec.path).catch(() => ({ kind: "missing" as const, path: spec.path }));
  const owner = st.kind === "missing" ? null : st.owner;
  if (owner && isHeld(judgeState(env, st, s))) return { owner, shared: [] };
  const shared = judgeHolders(env, await readHolders(env, spec.path, { index: false }), s)
    .filter((h) => isHeld(h.verdict)).map((h) => h.owner);
  return { owner, shared };
}

/** The busy error for a flock lock: names the exclusive owner, or the shared holders. */
async function flockBusy(env: Env, spec: LockSpec, s: Settings) {
  const { owner, shared } = await holdersMessage(env, spec, s);
  return shared.length
    ? busyError(env, spec, null, "", describeHolders(env, shared))
    : busyError(env, spec, owner);
}

/** The kernel lock. Returns null when flock fails on this filesystem, so the caller falls back to a lease. */
export async function acquireFlock(
  env: Env,
  spec: LockSpec,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<HeldLock | null> {
  const file = await takeKernelLock(env, spec, true, s, opts, waiter);
  if (!file) return null;
  const { handle } = file;
  const verdict = await outliveOrphanedCommand(env, spec, handle, s, opts, waiter);
  const header = await readText(env, spec.path);
  const fencing = Math.max(
    parseFencingHeader(header),
    await readFence(env, spec.path),
    await readFenceFloor(env, dirOf(spec.path)),
    verdict.owner?.fencing ?? 0,
  ) + 1;
  const token = newToken();
  const record = makeRecord(env, spec, "flock", token, fencing, s, opts.command);
  try {
    // Another user's lock file (a shared venv) opens read-only: flock works, the counter goes beside it.
    if (!(await writeHeader(handle, fencing, header))) {
      await writeRecord(env, `${spec.path}.fence`, fencing);
    }
    await writeRecord(env, `${spec.path}.owner`, record);
  } catch (e) {
    handle.close();
    throw e;
  }
  if (verdict.status !== "free" && verdict.owner) {
    env.log.debug(`lock "${spec.name}": previous owner ${verdict.reason}`);
  }
  return new FlockLock(env, spec, token, fencing, record, s, file);
}

/**
 * flock(2), exclusive or shared, on the file `spec.path` names once it is granted (waiting unless --no-wait);
 * null when flock does not work on this filesystem, so the caller falls back to a lease. Opened for writing
 * without truncation: a holder's header stays intact until we hold the lock.
 */
export async function takeKernelLock(
  env: Env,
  spec: LockSpec,
  exclusive: boolean,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<LockFile | null> {
  for (;;) {
    const file = await openCurrentLockFile(env, spec.path);
    const { handle } = file;
    let locked: boolean;
    try {
      locked = await handle.tryLock(exclusive);
    } catch (e) {
      handle.close();
      if (flockUnsupported(e)) {
        env.log.debug(`flock failed on ${spec.path} (${e instanceof Error ? e.message : e}); using a lease`);
        return null;
      }
      throw e;
    }
    if (!locked) {
      if (opts.noWait) {
        const err = await flockBusy(env, spec, s);
        handle.close();
        throw err;
      }
      await blockOnFlock(env, spec, handle, exclusive, s, opts, waiter);
    }
    // Whoever held it may have removed the file (release, lock clear) while we waited on the old inode.
    if (await sameInode(env, spec.path, handle)) return file;
    handle.close();
  }
}

/**
 * With the kernel lock in hand, waits until no earlier exclusive owner lives on through a command that
 * outlived it (the owner record says so); closes `handle` when it gives up (--no-wait, interrupted).
 */
export async function outliveOrphanedCommand(
  env: Env,
  spec: LockSpec,
  handle: Deno.FsFile,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<LockVerdict> {
  for (;;) {
    const verdict = judgeState(env, await readLockState(env, spec.path), s, { kernelLockFree: true });
    if (!isHeld(verdict)) return verdict;
    try {
      if (opts.noWait) throw busyError(env, spec, verdict.owner);
      waiter.tick(verdict.owner);
    } catch (e) {
      handle.close();
      throw e;
    }
    await pause(env, Math.min(s.pollMs, waiter.untilNextTick()), opts.signal);
  }
}

/** The lock file `path` names now: a releaser may retire the file between our open and our check. */
async function openCurrentLockFile(env: Env, path: string): Promise<LockFile> {
  for (;;) {
    await checkLockPath(env, path);
    const file = await openLockFile(env, path);
    if (await sameInode(env, path, file.handle)) return file;
    file.handle.close();
  }
}

/**
 * Opens (creating) the lock file for locking, never truncating it. A lock file another user created in a
 * shared directory may only be readable to us; flock(2) does not care, so read-only will do.
 */
export async function openLockFile(env: Env, path: string): Promise<LockFile> {
  try {
    return {
      handle: await env.fs.open(path, { read: true, write: true, create: true, mode: 0o644 }),
      writable: true,
    };
  } catch (e) {
    if (!(e instanceof Deno.errors.PermissionDenied)) throw e;
    return { handle: await env.fs.open(path, { read: true }), writable: false };
  }
}

/** Writes the fencing header in place; false when the file is open read-only. */
async function writeHeader(file: Deno.FsFile, fencing: number, previous: string | null): Promise<boolean> {
  const line = `${FLOCK_MAGIC} fencing=${fencing}`;
  const bytes = new TextEncoder().encode(line.padEnd(FLOCK_HEADER_BYTES - 1, " ") + "\n");
  // Shrinking is safe now: we hold the lock. Only a leftover lease claim is longer than the header.
  try {
    if (previous !== null && previous.length > FLOCK_HEADER_BYTES) await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.BadResource) return false;
    throw e;
  }
}

/**
 * Blocks in flock(2) (exclusive or shared) on a pool thread, so the main thread stays free to print who
 * holds the lock and to honour the deadline. On giving up we close our handle: the pending flock then ends
 * with the last reference to the file and releases at once if it had just succeeded.
 */
async function blockOnFlock(
  env: Env,
  spec: LockSpec,
  file: Deno.FsFile,
  exclusive: boolean,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<true> {
  let done = false;
  let failure: unknown = null;
  const wake = new AbortController();
  const pending = file.lock(exclusive).then(
    () => {
      done = true;
      wake.abort();
    },
    (e) => {
      done = true;
      failure = e;
      wake.abort();
    },
  );
  try {
    while (!done) {
      if (waiter.noticeDue()) {
        const { owner, shared } = await holdersMessage(env, spec, s);
        waiter.tick(owner, shared.length ? describeHolders(env, shared) : undefined);
      } else waiter.tick(null);
      await pause(env, waiter.untilNextTick(), wake.signal, opts.signal);
    }
  } catch (e) {
    file.close();
    pending.catch(() => {});
    throw e;
  }
  if (failure) {
    file.close();
    throw failure;
  }
  return true;
}
