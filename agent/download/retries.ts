/** Which download failures are transient, and retrying them with the one backoff (core/retry.ts); Retry-After wins. */
import { MlagentError } from "../core/errors.ts";
import { backoffDelayMs, retry } from "../core/retry.ts";
import { HubHttpError, redact } from "./hub.ts";
import { type Ctx, RestartFile, StallError } from "./context.ts";

/** The wait before retry `attempt` + 1: the server's Retry-After when it sent one, else full-jitter backoff. */
export function retryDelayMs(ctx: Ctx, error: unknown, attempt: number): number {
  return retryAfterMs(error) ??
    backoffDelayMs(attempt, { baseMs: ctx.backoffBaseMs, random: ctx.env.random });
}

function retryAfterMs(e: unknown): number | undefined {
  return e instanceof HubHttpError ? e.retryAfterMs : undefined;
}

export function isRetriable(e: unknown): boolean {
  if (e instanceof HubHttpError) return e.retriable;
  if (e instanceof StallError) return true;
  if (e instanceof MlagentError || e instanceof RestartFile) return false;
  // Errors reading a body from a dropped connection surface as TypeError / Http / ConnectionReset.
  return e instanceof TypeError || e instanceof Deno.errors.Http ||
    e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.UnexpectedEof ||
    e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.TimedOut;
}

export const errText = (e: unknown, token?: string) =>
  redact(e instanceof Error ? e.message : String(e), token);

/**
 * Retries `fn` on transient errors with backoff; Retry-After wins over the backoff. `stop` ends the retries
 * (and the wait between them) of this one call, as the download's own abort ends every call's.
 */
export function withRetries<T>(ctx: Ctx, what: string, fn: () => Promise<T>, stop?: AbortSignal): Promise<T> {
  return retry(fn, {
    maxAttempts: ctx.maxRetries,
    isRetriable: (e) => isRetriable(e),
    sleep: ctx.env.sleep,
    random: ctx.env.random,
    baseMs: ctx.backoffBaseMs,
    signal: stop ? AbortSignal.any([ctx.signal, stop]) : ctx.signal,
    delayFor: retryAfterMs,
    onRetry: (e, attempt, delay) => {
      ctx.retries++;
      ctx.env.log.warn(
        `${what}: ${errText(e, ctx.token)}; attempt ${attempt + 1}/${ctx.maxRetries} in ${delay} ms`,
      );
    },
  });
}
