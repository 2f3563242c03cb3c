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
  /** health: the node could not be judged (a check missed its deadline, or mlagent failed); nothing was changed. */
  cannotJudge: 4,
  /** prologue under LSF: a fault of the job's own making, which LSF must not retry (unless LSB_EXIT_PRE_ABORT says otherwise). */
  lsfJobAbort: 99,
  /** Stopped by Ctrl-C (SIGINT), as shells report it: scripts can tell an interruption from a failure. */
  interrupted: 130,
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
  | "lock-lost" // a lease was broken under us
  | "interrupted"; // SIGINT/SIGTERM stopped the work (exit 130)

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
    if (this.code === "interrupted") return EXIT.interrupted;
    return EXIT.failed;
  }
}

export const usageError = (message: string, hint?: string) => new MlagentError("usage", message, hint);
export const badInput = (message: string, hint?: string, details?: Record<string, unknown>) =>
  new MlagentError("bad-input", message, hint, details);
export const failed = (message: string, hint?: string, details?: Record<string, unknown>) =>
  new MlagentError("failed", message, hint, details);
export const interrupted = (message: string, hint?: string, details?: Record<string, unknown>) =>
  new MlagentError("interrupted", message, hint, details);

/** What the operating system refused, by errno, with what the user can do about it. */
const SYSTEM_HINTS: { test: (e: Error) => boolean; what: string; hint: string; code: ErrorCode }[] = [
  {
    test: (e) => /os error 28\b|No space left on device/i.test(e.message),
    what: "no space left on the device",
    hint:
      "free space there (`df -h`; `mlagent cache clean --yes` frees the installer cache), or point the command elsewhere",
    code: "failed",
  },
  {
    test: (e) => /os error 122\b|Disk quota exceeded/i.test(e.message),
    what: "disk quota exceeded",
    hint: "free space in your quota (`quota -s`), or point the command at scratch space",
    code: "failed",
  },
  {
    test: (e) => /os error 30\b|Read-only file system/i.test(e.message),
    what: "the filesystem is read-only",
    hint:
      "point the command at a writable place (MLAGENT_ROOT, MLAGENT_CACHE_DIR, MLAGENT_STATE_DIR, --root)",
    code: "bad-input",
  },
  {
    test: (e) => e instanceof Deno.errors.PermissionDenied || /os error (13|1)\b/.test(e.message),
    what: "permission denied",
    hint: "check the owner and mode of the path (`ls -ld`), or point the command at a place of your own",
    code: "bad-input",
  },
  {
    test: (e) => /os error 36\b|File name too long/i.test(e.message),
    what: "a file name is too long for the filesystem",
    hint: "use shorter names (a lock or profile name), or a shorter root path",
    code: "bad-input",
  },
  {
    test: (e) => e instanceof Deno.errors.AlreadyExists || /os error 17\b/.test(e.message),
    what: "something already exists where a new file was to be made",
    hint: "move it away, or check whether another mlagent is running",
    code: "failed",
  },
  {
    test: (e) => e instanceof Deno.errors.NotADirectory || /os error 20\b/.test(e.message),
    what: "a path component is a file, not a directory",
    hint: "check each part of the path (`ls -ld`); one of them is a file",
    code: "bad-input",
  },
  {
    test: (e) => e instanceof Deno.errors.IsADirectory || /os error 21\b/.test(e.message),
    what: "a directory is where a file was expected",
    hint: "check the path: it names a directory",
    code: "bad-input",
  },
  {
    test: (e) => /os error 40\b|Too many levels of symbolic links/i.test(e.message),
    what: "a symbolic link loops",
    hint: "check the links along the path (`namei -l PATH`)",
    code: "bad-input",
  },
  {
    test: (e) => e instanceof Deno.errors.NotFound,
    what: "a file or directory does not exist",
    hint: "check the path",
    code: "bad-input",
  },
];

/**
 * An error the operating system raised (ENOSPC, EROFS, EACCES, ENAMETOOLONG, EEXIST...) as an MlagentError
 * saying what it means and what to do; null for anything else (a bug). `doing` says what was being done.
 */
export function fromSystemError(e: unknown, doing?: string): MlagentError | null {
  if (!(e instanceof Error) || e instanceof MlagentError) return null;
  for (const s of SYSTEM_HINTS) {
    if (s.test(e)) {
      return new MlagentError(s.code, `${doing ? `${doing}: ` : ""}${s.what} (${e.message})`, s.hint, {
        system_error: e.message,
      });
    }
  }
  return null;
}
