/**
 * Clocks that disagree: another host's lease is judged by how long this host has seen it unchanged, on this
 * host's clock, never by the times written inside it. A fake clock through the Env (env.now, env.sleep)
 * stands for this host's; the records on disk carry the skewed stamps of the hosts that wrote them.
 */
import assert from "node:assert/strict";
import { acquire, inspectLock, listLocks, namedLockSpec, type OwnerRecord } from "../../agent/lock/mod.ts";
import { MlagentError } from "../../agent/core/errors.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";

const HOUR = 3600_000;
const TTL = 60_000;

/** An Env whose clock is ours to move; its sleep advances the clock instead of waiting. */
function fakeClock(dir: string, onSleep: (now: number) => Promise<void> | void = () => {}) {
  const start = Date.now();
  let now = start;
  const env = testEnv({
    vars: hermeticVars({ MLAGENT_LOCK_DIR: `${dir}/locks`, MLAGENT_LOCK_MODE: "lease" }),
    now: () => now,
    sleep: async (ms: number, signal?: AbortSignal) => {
      // Yield first, so a heartbeat loop started at acquisition moves the clock only after the caller looked.
      await new Promise((r) => setTimeout(r, 0));
      if (signal?.aborted) return;
      now += ms;
      await onSleep(now);
    },
  });
  return { env, start, set: (t: number) => void (now = start + t), elapsed: () => now - start };
}

/** A lease claim written by host gpu-9, its heartbeat stamped `skewMs` away from the real time. */
function remoteRecord(name: string, skewMs: number): OwnerRecord {
  const at = new Date(Date.now() + skewMs).toISOString();
  return {
    mlagent_lock: 1,
    mode: "lease",
    name,
    token: `tok-${name}`,
    host: "gpu-9",
    pid: 4411,
    pid_start_time: 1,
    boot_id: "gpu-9-boot",
    user: "alice",
    uid: 1000,
    purpose: "install",
    scheduler: null,
    job_id: null,
    acquired_at: at,
    heartbeat_at: at,
    ttl_ms: TTL,
    fencing: 7,
    command: null,
    command_pid: null,
    command_start_time: null,
  };
}

async function writeRemote(dir: string, name: string, skewMs: number) {
  await Deno.mkdir(`${dir}/locks`, { recursive: true, mode: 0o700 });
  const rec = remoteRecord(name, skewMs);
  await Deno.writeTextFile(`${dir}/locks/${name}.lock`, JSON.stringify(rec));
  let beats = 0;
  /** The holder's next heartbeat, stamped by its own (skewed) clock. */
  return async () => {
    beats++;
    await Deno.writeTextFile(
      `${dir}/locks/${name}.lock.heartbeat`,
      JSON.stringify({
        token: rec.token,
        heartbeat_at: new Date(Date.now() + skewMs + beats).toISOString(),
        command_pid: null,
        command_start_time: null,
      }),
    );
  };
}

type Look = [atMs: number, beatFirst: boolean, want: string];
const ROWS: [string, number, Look[]][] = [
  ["a host whose clock ran 1 h fast, then crashed", HOUR, [
    [0, false, "held-remote"],
    [30_000, false, "held-remote"],
    [61_000, false, "stale-expired"],
  ]],
  ["a live host whose clock runs 1 h slow (its stamps look an hour old)", -HOUR, [
    [0, true, "held-remote"],
    [30_000, true, "held-remote"],
    [61_000, true, "held-remote"],
    [200_000, true, "held-remote"],
  ]],
  ["a live host whose clock runs 1 h fast", HOUR, [
    [0, true, "held-remote"],
    [61_000, true, "held-remote"],
    [130_000, true, "held-remote"],
  ]],
  ["a host with a right clock that crashed", 0, [
    [0, false, "held-remote"],
    [59_000, false, "held-remote"],
    [61_000, false, "stale-expired"],
  ]],
  ["a record stamped 10 min ago, seen for the first time", -600_000, [[0, false, "held-remote"]]],
  ["a live host that stops beating, then resumes before the TTL", 0, [
    [0, true, "held-remote"],
    [50_000, false, "held-remote"],
    [100_000, true, "held-remote"],
    [150_000, false, "held-remote"],
  ]],
  ["this host's clock stepped back 10 min (NTP): no time counts as passed", 0, [
    [0, false, "held-remote"],
    [-600_000, false, "held-remote"],
    [-600_000 + 61_000, false, "held-remote"],
  ]],
];

for (const [situation, skew, looks] of ROWS) {
  Deno.test(`inspectLock() on ${situation}`, async () => {
    await using dir = await tempDir();
    const { env, set } = fakeClock(dir.path);
    const beat = await writeRemote(dir.path, "skewed", skew);
    const spec = namedLockSpec(env, "skewed", "test");
    for (const [at, beatFirst, want] of looks) {
      if (beatFirst) await beat();
      set(at);
      const info = await inspectLock(env, spec, { ttlMs: TTL });
      assert.equal(info.status, want, `at ${at / 1000} s: ${info.reason}`);
    }
  });
}

Deno.test("a fast clock's future heartbeat is called out in the reason", async () => {
  await using dir = await tempDir();
  const { env, set } = fakeClock(dir.path);
  await writeRemote(dir.path, "ahead", HOUR);
  const spec = namedLockSpec(env, "ahead", "test");
  await inspectLock(env, spec, { ttlMs: TTL });
  set(61_000);
  const info = await inspectLock(env, spec, { ttlMs: TTL });
  assert.match(
    info.reason,
    /no change from gpu-9 seen here for 1m01s \(ttl 1m00s\); its heartbeat is stamped 5\dm\d\ds ahead/,
  );
});

Deno.test("sightings outlive the process: the next run (cron) finds the crashed lease stale", async () => {
  await using dir = await tempDir();
  await writeRemote(dir.path, "crashed", HOUR);
  const first = fakeClock(dir.path);
  assert.deepEqual(
    (await listLocks(first.env, [{ dir: `${dir.path}/locks`, prefix: "" }])).map((l) => l.status),
    [
      "held-remote",
    ],
  );
  // A new process an hour later (its own Env, no memory): the node-local store says since when.
  const later = fakeClock(dir.path);
  later.set(HOUR);
  const locks = await listLocks(later.env, [{ dir: `${dir.path}/locks`, prefix: "" }]);
  assert.deepEqual(locks.map((l) => l.status), ["stale-expired"]);
  assert.match(locks[0].reason, /no change from gpu-9 seen here for 1h00m/);
});

Deno.test("acquire() breaks a crashed fast-clock host's lease after one TTL of this host's clock", async () => {
  await using dir = await tempDir();
  const { env, elapsed } = fakeClock(dir.path);
  await writeRemote(dir.path, "fast", HOUR);
  const spec = namedLockSpec(env, "fast", "test");
  // When the break happened, on the fake clock (the new holder's heartbeat loop moves it on afterwards).
  let waited = NaN;
  const warn = env.log.warn;
  env.log.warn = (m) => {
    if (m.startsWith("broke stale lock")) waited = elapsed();
    warn(m);
  };
  const lock = await acquire(env, spec, { ttlMs: TTL, pollMs: 1000, handleSignals: false });
  await lock.release();
  assert.ok(waited > TTL && waited < TTL + 5_000, `acquired after ${waited} ms of this host's clock`);
  assert.equal(lock.fencing, 8, "fencing continues past the broken holder's");
  assert.ok(
    env.logs.some((l) =>
      /broke stale lock "fast" \(stale-expired: .*stamped .* ahead of this host's clock/.test(l)
    ),
    env.logs.join("\n"),
  );
});

Deno.test("acquire() never breaks a live slow-clock host's lease: it times out instead", async () => {
  await using dir = await tempDir();
  let beat: () => Promise<void> = () => Promise.resolve();
  let lastBeat = 0;
  const { env } = fakeClock(dir.path, async (now) => {
    // The holder beats every 10 s of (our) time; its stamps read an hour old.
    if (now - lastBeat >= 10_000) {
      lastBeat = now;
      await beat();
    }
  });
  beat = await writeRemote(dir.path, "slow", -HOUR);
  const spec = namedLockSpec(env, "slow", "test");
  await assert.rejects(
    acquire(env, spec, { ttlMs: TTL, pollMs: 1000, timeoutMs: 5 * 60_000, handleSignals: false }),
    (e) => e instanceof MlagentError && e.code === "lock-timeout" && /held by gpu-9 pid 4411/.test(e.message),
  );
  assert.match(await Deno.readTextFile(spec.path), /tok-slow/, "the live holder's claim is untouched");
});
