/**
 * Few error classes, each with a stable code, an exit code and a hint. Expected failures are thrown as
 * MlagentError and rendered once, by main.ts; anything else is a bug and prints its stack.
 */

/** Every exit code mlagent uses, in one table; README "Exit codes" and each command's help list them. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  lockBusy: 3,
  /** prologue under LSF: a fault of the job's own making, which LSF must not retry (unless LSB_EXIT_PRE_ABORT says otherwise). */
  lsfJobAbort: 99,
} as const;

/** 0 when the job held, 1 when it failed. */
export const exitFor = (ok: boolean): number => (ok ? EXIT.ok : EXIT.failed);

/** A process ended by signal number `n`, as shells report it (SIGINT 130, SIGTERM 143). */
export const exitForSignal = (n: number): number => 128 + n;

export type ErrorCode =
  | "usage" // bad flag, bad command, bad argument
  | "bad-input" // unknown profile, malformed file, hostile path
  | "failed" // the job ran and failed
  | "lock-busy" // held by another owner and the caller asked not to wait
  | "lock-timeout" // waited until the deadline
  | "lock-lost"; // a lease was broken under us

export class MlagentError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "MlagentError";
  }

  get exitCode(): number {
    if (this.code === "usage" || this.code === "bad-input") return EXIT.usage;
    if (this.code === "lock-busy") return EXIT.lockBusy;
    return EXIT.failed;
  }
}

export const usageError = (message: string, hint?: string) => new MlagentError("usage", message, hint);
export const badInput = (message: string, hint?: string, details?: Record<string, unknown>) =>
  new MlagentError("bad-input", message, hint, details);
export const failed = (message: string, hint?: string, details?: Record<string, unknown>) =>
  new MlagentError("failed", message, hint, details);
