/**
 * Retry with exponential backoff and full jitter (AWS's "full jitter": a delay drawn uniformly from
 * [0, min(cap, base * 2^(n-1)))), so many nodes retrying one index do not stampede in step. Pure with
 * respect to time: waiting goes through the passed `sleep` (env.sleep), randomness through `random`.
 * Only what `isRetriable` accepts is retried; the last error is rethrown unchanged for the caller to report.
 */

export interface RetryOptions {
  /** Total tries, including the first. 1 means no retry. */
  maxAttempts: number;
  /** Which failures are worth another try; default: every failure. `attempt` is the try that failed (1-based). */
  isRetriable?: (error: unknown, attempt: number) => boolean;
  /** Waits; pass env.sleep so tests do not wait for real. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** [0, 1); pass env.random. Default Math.random. */
  random?: () => number;
  /** Called before each wait: the error, the try that failed (1-based) and the delay chosen. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** First backoff ceiling, ms (default 1000). */
  baseMs?: number;
  /** Largest backoff ceiling, ms (default 30000). */
  capMs?: number;
  /** Stops retrying (the last error is thrown) once aborted; also passed to sleep. */
  signal?: AbortSignal;
  /** A delay the failure itself asks for (a server's Retry-After), used instead of the backoff. */
  delayFor?: (error: unknown) => number | undefined;
}

/** The delay before the retry that follows failed try `attempt` (1-based): full jitter under a capped exponential. */
export function backoffDelayMs(
  attempt: number,
  { baseMs = 1000, capMs = 30_000, random = Math.random }: Pick<RetryOptions, "baseMs" | "capMs" | "random"> =
    {},
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/**
 * Runs `fn` until it succeeds, the error is not retriable, `maxAttempts` tries are spent, or `signal`
 * aborts. `fn` gets the try number (1-based). Throws the last error.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const { maxAttempts, isRetriable = () => true, sleep, onRetry, signal } = opts;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(`retry: maxAttempts must be a whole number >= 1, got ${maxAttempts}`);
  }
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= maxAttempts || signal?.aborted || !isRetriable(error, attempt)) throw error;
      const delayMs = opts.delayFor?.(error) ?? backoffDelayMs(attempt, opts);
      onRetry?.(error, attempt, delayMs);
      await sleep(delayMs, signal);
      if (signal?.aborted) throw error;
    }
  }
}
