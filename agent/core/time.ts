/**
 * Waiting, on the runtime's own timers. Deno's global setTimeout is Node's, and the first call in a process
 * loads Node's timers: 17-24 ms here, a sixth of a whole prologue, paid by every command that starts a child
 * (its deadline is a wait). AbortSignal.timeout runs on the runtime's timers and keeps the process alive as
 * setTimeout does (4-5 ms for the first), but it cannot be cancelled: a wait is taken in steps of at most
 * STEP_MS, so one cut short by its signal holds an exiting process at most that long (main.ts exits at once).
 * Steps also keep a wait past setTimeout's 2^31 ms limit from firing at once.
 */

/** The longest step of a wait: how long a cancelled wait's last timer may outlive it. */
export const STEP_MS = 1000;

/** Resolves after `ms` (monotonic clock), or as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    // NaN waits nothing, as setTimeout takes it.
    const wait = Number.isNaN(ms) ? 0 : Math.max(0, ms);
    const until = performance.now() + wait;
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const arm = (delay: number) =>
      AbortSignal.timeout(Math.min(Math.ceil(delay), STEP_MS)).addEventListener("abort", step, {
        once: true,
      });
    const step = () => {
      if (finished) return;
      const left = until - performance.now();
      if (left <= 0 || signal?.aborted) return done();
      arm(left);
    };
    signal?.addEventListener("abort", done);
    // Even sleep(0) waits for a timer, as setTimeout(0) did: a polling loop still lets other work in.
    arm(wait);
  });
}

/**
 * Calls `fn` every `ms` until the returned function is called, on the same timers as sleep (setInterval is
 * Node's too). As with setInterval, an async `fn` is not awaited: a slow one does not hold back the next call.
 */
export function every(ms: number, fn: () => void): () => void {
  const stop = new AbortController();
  (async () => {
    while (true) {
      await sleep(ms, stop.signal);
      if (stop.signal.aborted) return;
      fn();
    }
  })();
  return () => stop.abort();
}
