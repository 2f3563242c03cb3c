/** A lock this process holds: heartbeat, signal handling and release, shared by both modes. */
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import { readProc } from "../core/proc.ts";
import type { LockHandle, LockMode, LockSpec, OwnerRecord, Settings } from "./types.ts";

export const heldPaths = new Set<string>();
let signalHolders = 0;

export abstract class HeldLock implements LockHandle {
  readonly lost: AbortSignal;
  protected lostCtl = new AbortController();
  private interruptCtl = new AbortController();
  readonly interrupted: AbortSignal = this.interruptCtl.signal;
  /** Stops the heartbeat loop's wait at release. */
  private stopBeats = new AbortController();
  private released = false;
  /** A heartbeat in flight: release waits for it, or it could write the record back after drop removed it. */
  private beating: Promise<void> | null = null;
  private unwatch: (() => void)[] = [];
  protected commandPid: number | null = null;
  protected commandStart: number | null = null;
  /** True for a shared hold (shared.ts). */
  readonly shared: boolean = false;
  /** Set by acquire from its Waiter (types.ts LockHandle.waitedMs). */
  waitedMs = 0;

  constructor(
    protected env: Env,
    readonly spec: LockSpec,
    readonly mode: LockMode,
    readonly token: string,
    readonly fencing: number,
    protected record: OwnerRecord,
    protected s: Settings,
  ) {
    this.lost = this.lostCtl.signal;
    heldPaths.add(spec.path);
    void this.heartbeats();
  }

  /** Refreshes the owner record every heartbeatMs (through the Env's clock) until released or lost. */
  private async heartbeats() {
    for (;;) {
      await this.env.sleep(this.s.heartbeatMs, this.stopBeats.signal);
      if (this.released || this.lost.aborted) return;
      try {
        this.beating = this.beat();
        await this.beating;
      } catch (e) {
        this.env.log.warn(
          `lock "${this.spec.name}": heartbeat failed: ${e instanceof Error ? e.message : e}`,
        );
      }
    }
  }

  protected abstract beat(): Promise<void>;
  protected abstract drop(): Promise<void>;

  async recordCommand(pid: number): Promise<void> {
    this.commandPid = pid;
    this.commandStart = readProc(this.env, pid)?.startTime ?? null;
    await this.beat();
  }

  watchSignals() {
    signalHolders++;
    for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
      this.unwatch.push(this.env.onSignal(sig, async () => {
        // Children wired to `interrupted` are killed synchronously here, before the lock goes.
        this.interruptCtl.abort(new MlagentError("failed", `interrupted by ${sig}`));
        await this.release();
        if (signalHolders === 0) this.env.exit?.(code);
      }));
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopBeats.abort();
    if (this.unwatch.length) signalHolders--;
    for (const u of this.unwatch.splice(0)) u();
    heldPaths.delete(this.spec.path);
    await this.beating?.catch(() => {});
    await this.drop();
  }

  protected loseLock(message: string) {
    if (this.lost.aborted) return;
    this.env.log.error(message);
    this.lostCtl.abort(new MlagentError("lock-lost", message));
  }
}
