/** flock mode: the kernel lock on node-local filesystems, with the owner record in a sidecar. */
import type { Env } from "../core/env.ts";
import { isoTime } from "../core/output.ts";
import { checkLockPath, readText, writeRecord } from "./files.ts";
import { HeldLock } from "./held.ts";
import { readFence } from "./lease.ts";
import { makeRecord, newToken, parseOwnerRecord } from "./record.ts";
import { judgeState, parseFencingHeader, readLockState } from "./state.ts";
import {
  FLOCK_HEADER_BYTES,
  FLOCK_MAGIC,
  type LockOptions,
  type LockSpec,
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
    private file: Deno.FsFile,
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
    try {
      await this.file.unlock();
    } catch { /* closing releases it too */ }
    this.file.close();
  }
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

/** The kernel lock. Returns null when flock fails on this filesystem, so the caller falls back to a lease. */
export async function acquireFlock(
  env: Env,
  spec: LockSpec,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<HeldLock | null> {
  for (;;) {
    await checkLockPath(env, spec.path);
    // Opened for writing without truncation: the holder's header stays intact until we hold the lock.
    const file = await openLockFile(env, spec.path);
    if (!(await sameInode(env, spec.path, file))) {
      file.close();
      await checkLockPath(env, spec.path);
      continue;
    }
    let locked: boolean;
    try {
      locked = await file.tryLock(true);
    } catch (e) {
      file.close();
      if (flockUnsupported(e)) {
        env.log.debug(`flock failed on ${spec.path} (${e instanceof Error ? e.message : e}); using a lease`);
        return null;
      }
      throw e;
    }
    if (!locked) {
      if (opts.noWait) {
        const st = await readLockState(env, spec.path);
        file.close();
        throw busyError(env, spec, st.kind === "missing" ? null : st.owner);
      }
      locked = await blockOnFlock(env, spec, file, opts, waiter);
    }
    // Whoever held it may have removed the file (lock clear) while we waited on the old inode.
    if (!(await sameInode(env, spec.path, file))) {
      file.close();
      continue;
    }
    // Kernel lock held. The previous owner may still be alive in one sense: a command it ran outlived it.
    let state = await readLockState(env, spec.path);
    let verdict = judgeState(env, state, s, true);
    while (verdict.status === "held" || verdict.status === "held-remote") {
      if (opts.noWait) {
        file.close();
        throw busyError(env, spec, verdict.owner);
      }
      try {
        waiter.tick(verdict.owner);
      } catch (e) {
        file.close();
        throw e;
      }
      await pause(env, Math.min(s.pollMs, waiter.untilNextTick()), opts.signal);
      state = await readLockState(env, spec.path);
      verdict = judgeState(env, state, s, true);
    }
    const header = await readText(env, spec.path);
    const fencing =
      Math.max(parseFencingHeader(header), await readFence(env, spec.path), verdict.owner?.fencing ?? 0) +
      1;
    const token = newToken();
    const record = makeRecord(env, spec, "flock", token, fencing, s, opts.command);
    try {
      // Another user's lock file (a shared venv) opens read-only: flock works, the counter goes beside it.
      if (!(await writeHeader(file, fencing, header))) await writeRecord(env, `${spec.path}.fence`, fencing);
      await writeRecord(env, `${spec.path}.owner`, record);
    } catch (e) {
      file.close();
      throw e;
    }
    if (verdict.status !== "free" && verdict.owner) {
      env.log.debug(`lock "${spec.name}": previous owner ${verdict.reason}`);
    }
    return new FlockLock(env, spec, token, fencing, record, s, file);
  }
}
/**
 * Opens (creating) the lock file for locking, never truncating it. A lock file another user created in a
 * shared directory may only be readable to us; flock(2) does not care, so read-only will do.
 */
async function openLockFile(env: Env, path: string): Promise<Deno.FsFile> {
  try {
    return await env.fs.open(path, { read: true, write: true, create: true, mode: 0o644 });
  } catch (e) {
    if (!(e instanceof Deno.errors.PermissionDenied)) throw e;
    return await env.fs.open(path, { read: true });
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
 * Blocks in flock(2) on a pool thread, so the main thread stays free to print who holds the lock and to
 * honour the deadline. On giving up we close our handle: the pending flock then ends with the last reference
 * to the file and releases at once if it had just succeeded.
 */
async function blockOnFlock(
  env: Env,
  spec: LockSpec,
  file: Deno.FsFile,
  opts: LockOptions,
  waiter: Waiter,
): Promise<true> {
  let done = false;
  let failure: unknown = null;
  const wake = new AbortController();
  const pending = file.lock(true).then(
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
      const st = await readLockState(env, spec.path).catch(() => ({ kind: "missing" as const }));
      waiter.tick(st.kind === "missing" ? null : st.owner);
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
