/** Waiting without setTimeout's limits: a delay past 2^31 ms must wait that long, not fire at once. */

/** setTimeout's largest delay; a longer one fires at once, so longer waits are taken in pieces. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const until = Date.now() + ms;
    let t = setTimeout(tick, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    function tick() {
      const left = until - Date.now();
      if (left > 0 && !signal?.aborted) {
        t = setTimeout(tick, Math.min(left, MAX_TIMER_MS));
        return;
      }
      done();
    }
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done);
  });
}
