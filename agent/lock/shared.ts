/**
 * Shared holds: many holders at once (`mlagent run` using a venv), excluded by exclusive holders (install
 * --force, remove, cache clean) and excluding them.
 *
 * - flock mode: LOCK_SH on the same lock file exclusive holders lock with LOCK_EX, so the kernel does the
 *   excluding and a holder that dies lets go at once. Each holder also writes its owner record to
 *   `X.lock.shared/ID.json`, so a busy message can name the holders and a command that outlives its
 *   SIGKILLed mlagent keeps the hold (as it keeps an exclusive lock). The last holder to leave takes the
 *   lock exclusively for a moment, if it can, and removes the lock file and the records' directory.
 * - lease mode: a holder joins by taking the lock's claim for a moment (so it waits while an exclusive holder
 *   has it), writing its record and adding its id to `X.lock.shared/index`, then releasing the claim; it
 *   heartbeats beside its record and leaves by removing it, which needs no claim. An exclusive acquirer takes
 *   the claim (no one can join from then on) and waits until every holder has left or is judged stale: same
 *   host by its processes, another host once this host has seen its record unchanged for the TTL.
 */
import type { Env } from "../core/env.ts";
import { isoTime } from "../core/output.ts";
import type { SpawnedChild } from "../core/run.ts";
import { claimMethod, tryClaim } from "./claim.ts";
import { readFence, readFenceFloor } from "./fence.ts";
import { dirOf, readText, replaceText, writeRecord } from "./files.ts";
import { type LockFile, outliveOrphanedCommand, retireLockFile, takeKernelLock } from "./flock.ts";
import { HeldLock } from "./held.ts";
import {
  describeHolders,
  holderId,
  INDEX_FILE,
  isHeld,
  judgeHolders,
  readHolders,
  readIndex,
  removeHolder,
  sharedDirOf,
} from "./holders.ts";
import { acquireLease, removeClaimIf, startWatchdog } from "./lease.ts";
import { makeRecord, newToken, parseOwnerRecord } from "./record.ts";
import { type Heartbeat, parseFencingHeader } from "./state.ts";
import type { LockMode, LockOptions, LockSpec, OwnerRecord, Settings } from "./types.ts";
import { busyError, pause, type Waiter } from "./wait.ts";

abstract class SharedLock extends HeldLock {
  override readonly shared = true;
  constructor(
    env: Env,
    spec: LockSpec,
    mode: LockMode,
    token: string,
    fencing: number,
    record: OwnerRecord,
    s: Settings,
    protected recordPath: string,
  ) {
    super(env, spec, mode, token, fencing, record, s);
  }

  /** Our record as it is on disk; null when it was removed (judged stale by an exclusive acquirer). */
  protected async ownRecord(): Promise<OwnerRecord | null> {
    const text = await readText(this.env, this.recordPath).catch(() => null);
    const rec = text ? parseOwnerRecord(text) : null;
    return rec?.token === this.token ? rec : null;
  }

  protected async removeOwnRecord() {
    if (await this.ownRecord()) await this.env.fs.remove(this.recordPath).catch(() => {});
    const hb = await readText(this.env, `${this.recordPath}.heartbeat`).catch(() => null);
    if (hb?.includes(this.token)) await this.env.fs.remove(`${this.recordPath}.heartbeat`).catch(() => {});
  }
}

class SharedFlockLock extends SharedLock {
  constructor(
    env: Env,
    spec: LockSpec,
    token: string,
    fencing: number,
    record: OwnerRecord,
    s: Settings,
    recordPath: string,
    private file: LockFile,
  ) {
    super(env, spec, "flock", token, fencing, record, s, recordPath);
  }

  /** The kernel lock is the truth here; the record is rewritten so it names the command and stays current. */
  protected async beat() {
    this.record = {
      ...this.record,
      heartbeat_at: isoTime(this.env.now()),
      command_pid: this.commandPid,
      command_start_time: this.commandStart,
    };
    await writeRecord(this.env, this.recordPath, this.record);
  }

  protected async drop() {
    await this.removeOwnRecord();
    const { handle, writable } = this.file;
    try {
      // The last holder out tidies up. Converting to LOCK_EX fails while anyone else holds the lock (and may
      // drop ours on the way, which releasing does anyway).
      if (writable && (await handle.tryLock(true))) {
        const header = parseFencingHeader(await readText(this.env, this.spec.path));
        await retireLockFile(this.env, this.spec.path, handle, header);
      }
    } catch { /* tidying is optional */ }
    try {
      await handle.unlock();
    } catch { /* closing releases it too */ }
    handle.close();
  }
}

class SharedLeaseLock extends SharedLock {
  private watchdog: SpawnedChild | null = null;
  constructor(
    env: Env,
    spec: LockSpec,
    token: string,
    fencing: number,
    record: OwnerRecord,
    s: Settings,
    recordPath: string,
  ) {
    super(env, spec, "lease", token, fencing, record, s, recordPath);
  }

  override async recordCommand(pid: number): Promise<void> {
    await super.recordCommand(pid);
    startWatchdog(this.env, {
      pid,
      start: this.commandStart,
      heartbeatPath: `${this.recordPath}.heartbeat`,
      claimPath: this.recordPath,
      token: this.token,
      everyMs: this.s.heartbeatMs,
    }, (c) => (this.watchdog = c));
  }

  /**
   * The record is never rewritten (an exclusive acquirer that removed it as stale must not see it come back);
   * heartbeats go beside it.
   */
  protected async beat() {
    if (!(await this.ownRecord())) {
      this.loseLock(`shared hold on lock "${this.spec.name}" was lost: its record was removed; stopping`);
      return;
    }
    const hb: Heartbeat = {
      token: this.token,
      heartbeat_at: isoTime(this.env.now()),
      command_pid: this.commandPid,
      command_start_time: this.commandStart,
    };
    await writeRecord(this.env, `${this.recordPath}.heartbeat`, hb);
  }

  protected async drop() {
    this.watchdog?.kill("SIGKILL");
    await this.removeOwnRecord();
    await tidyLeaseHolders(this.env, this.spec, this.s).catch(() => {});
  }
}

/**
 * The last lease holder out removes the index and the records' directory, under the claim taken without
 * waiting (if anyone has it, they tidy up instead).
 */
async function tidyLeaseHolders(env: Env, spec: LockSpec, s: Settings): Promise<void> {
  if ((await readHolders(env, spec.path)).length) return;
  const token = newToken();
  const record = makeRecord(
    env,
    { ...spec, purpose: "tidy shared holders" },
    "lease",
    token,
    0,
    s,
    undefined,
  );
  if (!(await tryClaim(env, spec.path, JSON.stringify(record, null, 2) + "\n"))) return;
  try {
    if (!(await readHolders(env, spec.path)).length) {
      await env.fs.remove(sharedDirOf(spec.path), { recursive: true }).catch(() => {});
    }
  } finally {
    await removeClaimIf(env, spec.path, (t) => parseOwnerRecord(t)?.token === token);
  }
}

/** Takes a shared hold in flock mode; null when flock fails on this filesystem (then a lease). */
export async function acquireSharedFlock(
  env: Env,
  spec: LockSpec,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<HeldLock | null> {
  const file = await takeKernelLock(env, spec, false, s, opts, waiter);
  if (!file) return null;
  const { handle } = file;
  // No exclusive holder has the kernel lock now, but one's command may have outlived it.
  await outliveOrphanedCommand(env, spec, handle, s, opts, waiter);
  const fencing = Math.max(
    parseFencingHeader(await readText(env, spec.path)),
    await readFence(env, spec.path),
    await readFenceFloor(env, dirOf(spec.path)),
  );
  const token = newToken();
  const record = makeRecord(env, spec, "flock", token, fencing, s, opts.command, { shared: true });
  const recordPath = `${sharedDirOf(spec.path)}/${holderId(env, token)}.json`;
  try {
    await env.fs.mkdir(sharedDirOf(spec.path), { recursive: true, mode: 0o755 });
    await writeRecord(env, recordPath, record);
  } catch (e) {
    handle.close();
    throw e;
  }
  return new SharedFlockLock(env, spec, token, fencing, record, s, recordPath, file);
}

/** Takes a shared hold in lease mode: joins under the claim, then lets the claim go. */
export async function acquireSharedLease(
  env: Env,
  spec: LockSpec,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<HeldLock> {
  const joining = await acquireLease(
    env,
    { ...spec, purpose: `${spec.purpose} (joining the shared holders)` },
    s,
    { ...opts, command: undefined },
    waiter,
  );
  const token = newToken();
  const dir = sharedDirOf(spec.path);
  const recordPath = `${dir}/${holderId(env, token)}.json`;
  let record: OwnerRecord;
  try {
    const claim = await claimMethod(env, dirOf(spec.path));
    record = makeRecord(env, spec, "lease", token, joining.fencing, s, opts.command, { shared: true, claim });
    await env.fs.mkdir(dir, { recursive: true, mode: 0o755 });
    await writeRecord(env, recordPath, record);
    // Under the claim no one else edits the index; ids whose records are gone are dropped on the way.
    const ids: string[] = [];
    for (const other of await readIndex(env, spec.path)) {
      if ((await readText(env, `${dir}/${other}.json`).catch(() => null)) !== null) ids.push(other);
    }
    ids.push(holderId(env, token));
    await replaceText(env, `${dir}/${INDEX_FILE}`, ids.join("\n") + "\n");
  } catch (e) {
    // A record of ours left behind would hold the lock for as long as this process lives.
    await env.fs.remove(recordPath).catch(() => {});
    throw e;
  } finally {
    await joining.release();
  }
  // Made after the claim is let go: both would count as this process's hold on the path.
  return new SharedLeaseLock(env, spec, token, joining.fencing, record, s, recordPath);
}

/**
 * For an exclusive acquirer that now holds the kernel lock or the claim: waits until no shared holder is
 * left (removing the records of those judged stale), or throws busy (noWait) or on the waiter's deadline.
 */
export async function drainShared(
  env: Env,
  spec: LockSpec,
  mode: LockMode,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<void> {
  for (;;) {
    const holders = await readHolders(env, spec.path, { index: mode === "lease" });
    if (!holders.length) break;
    const judged = judgeHolders(env, holders, s);
    for (const h of judged) {
      if (h.verdict.status.startsWith("stale")) {
        env.log.warn(
          `removed the record of shared holder ${h.id} of lock "${spec.name}" (${h.verdict.reason})`,
        );
        await removeHolder(env, h);
      }
    }
    const live = judged.filter((h) => isHeld(h.verdict)).map((h) => h.owner);
    if (!live.length) break;
    const who = describeHolders(env, live);
    if (opts.noWait) throw busyError(env, spec, null, "", who);
    waiter.tick(null, who);
    await pause(env, Math.min(s.pollMs, waiter.untilNextTick()), opts.signal);
  }
  // Holding the claim (lease) or LOCK_EX (flock), no one joins now: the directory can go.
  await env.fs.remove(sharedDirOf(spec.path), { recursive: true }).catch(() => {});
}
