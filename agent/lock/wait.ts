/** Waiting for a lock: the deadline, the periodic "held by" notice, and the errors a waiter ends with. */
import type { Env } from "../core/env.ts";
import { failed, MlagentError } from "../core/errors.ts";
import { formatDuration } from "../core/output.ts";
import { describeOwner } from "./record.ts";
import { type LockOptions, type LockSpec, type OwnerRecord, type Settings } from "./types.ts";

function abortError(spec: LockSpec): MlagentError {
  return failed(`stopped waiting for lock "${spec.name}": interrupted`);
}

/** `who` names the holders when they are not one owner (shared holders: holders.ts describeHolders). */
export function busyError(
  env: Env,
  spec: LockSpec,
  owner: OwnerRecord | null,
  extra = "",
  who?: string,
): MlagentError {
  return new MlagentError(
    "lock-busy",
    `cannot acquire lock "${spec.name}": held by ${who ?? describeOwner(env, owner)}${extra}`,
    "wait for it (drop --no-wait, or raise --timeout); see every lock and its owner: mlagent lock list",
    { lock: spec.name, path: spec.path, owner },
  );
}

function timeoutError(
  env: Env,
  spec: LockSpec,
  waitedMs: number,
  owner: OwnerRecord | null,
  who?: string,
): MlagentError {
  return new MlagentError(
    "lock-timeout",
    `timed out after ${formatDuration(waitedMs)} waiting for lock "${spec.name}": held by ${
      who ?? describeOwner(env, owner)
    }`,
    "raise --timeout, or check whether the holder is stuck: mlagent lock list",
    { lock: spec.name, path: spec.path, owner },
  );
}

/** Waits up to `ms`, or until `signal` aborts; cancels its timer either way so nothing is left running. */
export function pause(env: Env, ms: number, ...signals: (AbortSignal | undefined)[]): Promise<void> {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort();
  for (const s of signals) s?.addEventListener("abort", onAbort, { once: true });
  return env.sleep(Math.max(0, ms), ctl.signal).finally(() => {
    for (const s of signals) s?.removeEventListener("abort", onAbort);
  });
}

export class Waiter {
  readonly started: number;
  private lastNotice = -Infinity;
  /** Set by the first tick: ticks happen only while another process holds the lock. */
  private waitedOnOther = false;
  constructor(private env: Env, private spec: LockSpec, private s: Settings, private opts: LockOptions) {
    this.started = env.now();
  }
  get deadline(): number {
    return this.started + (this.opts.timeoutMs ?? 30 * 60_000);
  }
  /**
   * Says who holds the lock every few seconds; throws on the deadline or an abort. `who` names holders that
   * are not one owner (shared holders).
   */
  tick(owner: OwnerRecord | null, who?: string): void {
    this.waitedOnOther = true;
    if (this.opts.signal?.aborted) throw abortError(this.spec);
    const now = this.env.now();
    if (now >= this.deadline) throw timeoutError(this.env, this.spec, now - this.started, owner, who);
    if (now - this.lastNotice >= this.s.noticeMs) {
      this.lastNotice = now;
      this.env.log.info(
        `waiting for lock "${this.spec.name}": held by ${who ?? describeOwner(this.env, owner)}`,
      );
    }
  }
  /** Whether the next tick prints or throws, so a caller can look up who holds the lock only then. */
  noticeDue(): boolean {
    const now = this.env.now();
    return now >= this.deadline || now - this.lastNotice >= this.s.noticeMs || !!this.opts.signal?.aborted;
  }
  /** How long this acquisition waited on other holders: 0 when it never had to (only a wait counts). */
  waitedMs(): number {
    return this.waitedOnOther ? Math.max(1, this.env.now() - this.started) : 0;
  }
  untilNextTick(): number {
    return Math.max(1, Math.min(this.s.noticeMs, this.deadline - this.env.now()));
  }
}
