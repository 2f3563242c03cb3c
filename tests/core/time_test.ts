import assert from "node:assert/strict";
import { every, sleep, STEP_MS } from "../../agent/core/time.ts";

Deno.test("sleep() waits at least its time, and returns at once when its signal aborts", async () => {
  const t0 = performance.now();
  await sleep(30);
  assert.ok(performance.now() - t0 >= 29, `${performance.now() - t0} ms`);

  const stop = new AbortController();
  const t1 = performance.now();
  const long = sleep(10 * 60_000, stop.signal);
  stop.abort();
  await long;
  assert.ok(performance.now() - t1 < STEP_MS, "a cancelled wait returns before its next step");

  const already = new AbortController();
  already.abort();
  await sleep(60_000, already.signal);
});

Deno.test("a process whose wait was cancelled exits within one step, not at the wait's end", async () => {
  // No Deno.exit: only the runtime's pending timers decide when this ends.
  const script = `import { sleep } from ${
    JSON.stringify(new URL("../../agent/core/time.ts", import.meta.url).href)
  };
const stop = new AbortController();
const w = sleep(60_000, stop.signal);
stop.abort();
await w;`;
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", "-"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const w = out.stdin.getWriter();
  await w.write(new TextEncoder().encode(script));
  await w.close();
  const r = await out.output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  assert.ok(performance.now() - t0 < 10_000, `${performance.now() - t0} ms`);
});

Deno.test("sleep(0) still waits for a timer, so a loop of them lets other work in", async () => {
  let ran = false;
  const other = new Promise<void>((r) =>
    AbortSignal.timeout(0).addEventListener("abort", () => (ran = true, r()))
  );
  for (let i = 0; i < 50 && !ran; i++) await sleep(0);
  assert.ok(ran, "a timer armed before the loop fired while it ran");
  await other;
  await sleep(Number.NaN);
});

Deno.test("every() calls again and again until stopped, and never after", async () => {
  let calls = 0;
  const stop = every(5, () => calls++);
  while (calls < 3) await sleep(5);
  stop();
  const after = calls;
  await sleep(30);
  assert.equal(calls, after);
});
