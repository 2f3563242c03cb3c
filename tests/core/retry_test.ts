import assert from "node:assert/strict";
import { backoffDelayMs, retry } from "../../agent/core/retry.ts";

/** A sleep that records the delays and returns at once. */
function fakeSleep() {
  const delays: number[] = [];
  return { delays, sleep: (ms: number) => (delays.push(ms), Promise.resolve()) };
}

class Transient extends Error {}
class Fatal extends Error {}

Deno.test("retry() returns the first success without sleeping", async () => {
  const { delays, sleep } = fakeSleep();
  assert.equal(await retry(() => Promise.resolve(7), { maxAttempts: 3, sleep }), 7);
  assert.deepEqual(delays, []);
});

Deno.test("retry() retries a transient failure until it succeeds, passing the try number", async () => {
  const { delays, sleep } = fakeSleep();
  const seen: number[] = [];
  const value = await retry((attempt) => {
    seen.push(attempt);
    return attempt < 3 ? Promise.reject(new Transient("503")) : Promise.resolve("served");
  }, { maxAttempts: 3, sleep, random: () => 0.5, baseMs: 1000 });
  assert.equal(value, "served");
  assert.deepEqual(seen, [1, 2, 3]);
  assert.deepEqual(delays, [500, 1000]);
});

Deno.test("retry() rethrows the last error unchanged once maxAttempts tries are spent", async () => {
  const { delays, sleep } = fakeSleep();
  let calls = 0;
  const err = await retry(() => Promise.reject(new Transient(`try ${++calls}`)), { maxAttempts: 3, sleep })
    .catch((e) => e);
  assert.ok(err instanceof Transient);
  assert.equal(err.message, "try 3");
  assert.equal(calls, 3);
  assert.equal(delays.length, 2);
});

Deno.test("retry() does not retry what isRetriable rejects", async () => {
  const { delays, sleep } = fakeSleep();
  let calls = 0;
  await assert.rejects(
    retry(() => (calls++, Promise.reject(new Fatal("resolution"))), {
      maxAttempts: 5,
      sleep,
      isRetriable: (e) => e instanceof Transient,
    }),
    Fatal,
  );
  assert.equal(calls, 1);
  assert.deepEqual(delays, []);
});

Deno.test("retry() reports each retry with the failed try, and the delay it then sleeps", async () => {
  const { delays, sleep } = fakeSleep();
  const reports: [string, number, number][] = [];
  await retry((n) => n < 3 ? Promise.reject(new Transient(`e${n}`)) : Promise.resolve(), {
    maxAttempts: 3,
    sleep,
    random: () => 0.25,
    baseMs: 400,
    onRetry: (e, n, ms) => reports.push([(e as Error).message, n, ms]),
  });
  assert.deepEqual(reports, [["e1", 1, 100], ["e2", 2, 200]]);
  assert.deepEqual(delays, [100, 200]);
});

Deno.test("backoffDelayMs() doubles the ceiling per try, caps it, and draws full jitter below it", () => {
  const top = () => 0.999999;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(n, { baseMs: 1000, capMs: 10_000, random: top })),
    [
      999,
      1999,
      3999,
      7999,
      9999,
      9999,
    ],
  );
  assert.equal(backoffDelayMs(4, { random: () => 0 }), 0);
  assert.equal(backoffDelayMs(1, { random: () => 0.5 }), 500, "defaults: base 1 s");
  assert.equal(backoffDelayMs(40, { random: top }), 29_999, "defaults: cap 30 s, no overflow");
});

Deno.test("retry() stops at once when its signal is aborted during a wait", async () => {
  const ctl = new AbortController();
  let calls = 0;
  const sleep = () => (ctl.abort(), Promise.resolve());
  await assert.rejects(
    retry(() => (calls++, Promise.reject(new Transient("x"))), { maxAttempts: 5, sleep, signal: ctl.signal }),
    Transient,
  );
  assert.equal(calls, 1);
});

Deno.test("retry() refuses a maxAttempts below one", async () => {
  const { sleep } = fakeSleep();
  await assert.rejects(retry(() => Promise.resolve(1), { maxAttempts: 0, sleep }), RangeError);
});
