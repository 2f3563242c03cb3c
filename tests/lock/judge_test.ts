import assert from "node:assert/strict";
import {
  acquire,
  judgeRecord,
  namedLockSpec,
  type OwnerRecord,
  parseOwnerRecord,
  withLock,
} from "../../agent/lock/mod.ts";
import { bootId, readProc } from "../../agent/core/proc.ts";
import { runMlagent } from "../support/cli.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { fileExists, lockVars } from "../support/lock_helpers.ts";

const HOST = Deno.hostname();

function record(over: Partial<OwnerRecord>): OwnerRecord {
  const now = new Date().toISOString();
  return {
    mlagent_lock: 1,
    mode: "lease",
    name: "judged",
    token: "0123abcd",
    host: HOST,
    pid: 999_999,
    pid_start_time: 1,
    boot_id: bootId(testEnv()),
    user: "root",
    uid: 0,
    purpose: "test",
    scheduler: null,
    job_id: null,
    acquired_at: now,
    heartbeat_at: now,
    ttl_ms: 60_000,
    fencing: 3,
    command: null,
    command_pid: null,
    command_start_time: null,
    ...over,
  };
}

/** A live process that is not the one a record names. */
function liveSleeper(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" }).spawn();
}

async function writeClaim(dir: string, name: string, text: string) {
  await Deno.mkdir(`${dir}/locks`, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(`${dir}/locks/${name}.lock`, text);
}

async function listStatuses(vars: Record<string, string>): Promise<Record<string, string>> {
  const r = await runMlagent(["lock", "list", "--json"], { env: vars });
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json<{ ok: boolean; locks: { name: string; status: string }[] }>();
  assert.equal(doc.ok, true);
  return Object.fromEntries(doc.locks.map((l) => [l.name, l.status]));
}

Deno.test("judgeRecord() calls a live pid with another start time dead (PID reuse)", async () => {
  const env = testEnv();
  const sleeper = liveSleeper();
  try {
    const start = readProc(env, sleeper.pid)!.startTime;
    const reused = judgeRecord(env, record({ pid: sleeper.pid, pid_start_time: start + 12345 }));
    assert.equal(reused.status, "stale-dead");
    assert.match(reused.reason, /now belongs to another process/);
    assert.equal(judgeRecord(env, record({ pid: sleeper.pid, pid_start_time: start })).status, "held");
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
  }
});

Deno.test("judgeRecord() judges another host's record by how long this host saw it unchanged, never by its clock", () => {
  const env = testEnv();
  const hour = 3600_000;
  const stamped = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();
  const rows: [string, Partial<OwnerRecord>, number | undefined, string][] = [
    [
      "first sight of a heartbeat stamped 10 min ago",
      { host: "gpu-9", heartbeat_at: stamped(-600_000) },
      undefined,
      "held-remote",
    ],
    [
      "a slow clock (1 h behind) whose heartbeat keeps changing",
      { host: "gpu-9", heartbeat_at: stamped(-hour) },
      5_000,
      "held-remote",
    ],
    [
      "a fast clock (1 h ahead) that crashed: unchanged past the TTL",
      { host: "gpu-9", heartbeat_at: stamped(hour) },
      61_000,
      "stale-expired",
    ],
    [
      "a fast clock (1 h ahead), unchanged within the TTL",
      { host: "gpu-9", heartbeat_at: stamped(hour) },
      59_000,
      "held-remote",
    ],
    ["a heartbeat stamped just now, unchanged past the TTL", { host: "gpu-9" }, 61_000, "stale-expired"],
    [
      "the record's own TTL (5 min) when longer than ours",
      { host: "gpu-9", ttl_ms: 300_000 },
      120_000,
      "held-remote",
    ],
    [
      "our name from another boot (a twin, or before a reboot), fresh",
      { pid: env.pid, boot_id: "old-boot" },
      0,
      "held-remote",
    ],
    [
      "our name from another boot, unchanged past the TTL",
      { pid: env.pid, boot_id: "old-boot", heartbeat_at: stamped(-600_000) },
      61_000,
      "stale-expired",
    ],
  ];
  for (const [what, over, quietMs, want] of rows) {
    const v = judgeRecord(env, record({ pid_start_time: null, ...over }), 60_000, { quietMs });
    assert.equal(v.status, want, what);
    assert.equal(v.quietMs, quietMs ?? 0, what);
  }
  const ahead = judgeRecord(env, record({ host: "gpu-9", heartbeat_at: stamped(hour) }), 60_000, {
    quietMs: 61_000,
  });
  assert.match(
    ahead.reason,
    /no change from gpu-9 seen here for 1m01s \(ttl 1m00s\); its heartbeat is stamped 1h00m ahead/,
  );
  const twin = judgeRecord(env, record({ pid: env.pid, pid_start_time: null, boot_id: "old-boot" }), 60_000);
  assert.match(twin.reason, /another boot/);
  assert.equal(judgeRecord(env, null).status, "stale-no-owner");
});

Deno.test("parseOwnerRecord() reads garbage, half-written and mistyped records as no record", () => {
  const full = JSON.stringify(record({}));
  for (
    const [what, text] of [
      ["empty", ""],
      ["garbage", "\x00\xff not json"],
      ["truncated", full.slice(0, full.length / 2)],
      ["array", "[1,2]"],
      ["pid is a string", JSON.stringify(record({ pid: "12" as unknown as number }))],
      ["no host", JSON.stringify({ ...record({}), host: "" })],
      ["bad time", JSON.stringify(record({ heartbeat_at: "yesterday" }))],
    ]
  ) {
    assert.equal(parseOwnerRecord(text), null, what);
  }
  assert.equal(parseOwnerRecord(full)?.fencing, 3);
});

Deno.test("lock run breaks a lease whose pid was reused, and respects one whose pid still runs", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path, { MLAGENT_LOCK_MODE: "lease" });
  const env = testEnv();
  const sleeper = liveSleeper();
  try {
    const start = readProc(env, sleeper.pid)!.startTime;
    await writeClaim(
      dir.path,
      "reused",
      JSON.stringify(record({ pid: sleeper.pid, pid_start_time: start + 1 })),
    );
    await writeClaim(dir.path, "live", JSON.stringify(record({ pid: sleeper.pid, pid_start_time: start })));
    assert.deepEqual(await listStatuses(vars), { live: "held", reused: "stale-dead" });
    const r = await runMlagent(["lock", "run", "reused", "--", "sh", "-c", 'echo "$MLAGENT_LOCK_FENCING"'], {
      env: vars,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "4", "fencing continues past the broken holder's");
    assert.match(r.stderr, /broke stale lock "reused" \(stale-dead/);
    const busy = await runMlagent(["lock", "run", "live", "--no-wait", "--", "true"], { env: vars });
    assert.equal(busy.code, 3);
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
  }
});

for (const mode of ["flock", "lease"] as const) {
  Deno.test(`garbage and truncated owner records (${mode}) are listed as stale-no-owner and taken over`, async () => {
    await using dir = await tempDir();
    const vars = lockVars(dir.path, { MLAGENT_LOCK_MODE: mode });
    const full = JSON.stringify(record({ pid: 999_999 }));
    if (mode === "lease") {
      await writeClaim(dir.path, "garbage", "\x00\x01 definitely not a record");
      await writeClaim(dir.path, "truncated", full.slice(0, 40));
    } else {
      await writeClaim(dir.path, "garbage", "");
      await Deno.writeTextFile(`${dir.path}/locks/garbage.lock.owner`, "}{");
      await writeClaim(dir.path, "truncated", "");
      await Deno.writeTextFile(`${dir.path}/locks/truncated.lock.owner`, full.slice(0, 40));
    }
    assert.deepEqual(await listStatuses(vars), { garbage: "stale-no-owner", truncated: "stale-no-owner" });
    for (const name of ["garbage", "truncated"]) {
      const r = await runMlagent(["lock", "run", name, "--no-wait", "--", "true"], { env: vars });
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(await listStatuses(vars), {});
  });
}

Deno.test("lock clear is a dry run without --yes, removes only stale locks, and --force says it loudly", async () => {
  await using dir = await tempDir();
  const root = `${dir.path}/venvs`;
  const vars = { ...lockVars(dir.path, { MLAGENT_LOCK_MODE: "lease" }), MLAGENT_ROOT: root };
  const dead = new Deno.Command("true").spawn();
  await dead.status;
  const old = new Date(Date.now() - 600_000).toISOString();
  await writeClaim(dir.path, "dead", JSON.stringify(record({ pid: dead.pid })));
  // Other hosts' records with a short TTL: one crashed, one whose holder keeps heartbeating (below).
  await writeClaim(
    dir.path,
    "expired",
    JSON.stringify(record({ host: "gpu-3", heartbeat_at: old, ttl_ms: 1000 })),
  );
  await writeClaim(
    dir.path,
    "remote",
    JSON.stringify(record({ host: "gpu-4", token: "live4", ttl_ms: 1000 })),
  );
  const beat = (n: number) =>
    Deno.writeTextFile(
      `${dir.path}/locks/remote.lock.heartbeat`,
      JSON.stringify({ token: "live4", heartbeat_at: old, command_pid: null, command_start_time: null, n }),
    );
  await writeClaim(dir.path, "junk", "{");
  await Deno.mkdir(root, { recursive: true });
  await Deno.writeTextFile(`${root}/model-a.lock`, JSON.stringify(record({ pid: dead.pid })));
  const locks = `${dir.path}/locks`;
  for (
    const f of [
      ".dead.lock.owner.tmp-123-deadbeef",
      "dead.lock.claim-gpu-1-77-abcdef12",
      "dead.lock.broken-x-9-0badc0de",
    ]
  ) {
    await Deno.writeTextFile(`${locks}/${f}`, "{");
    await Deno.utime(`${locks}/${f}`, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
  }
  await Deno.writeTextFile(`${locks}/live.lock.claim-gpu-1-78-abcdef13`, "{");
  // Seen for the first time, another host's record is held whatever its stamps say; this host's sightings
  // are kept between runs, so once it has seen the crashed one unchanged past the TTL (1.5 s) it is stale.
  await beat(1);
  const first = await listStatuses(vars);
  assert.equal(first.expired, "held-remote");
  await new Promise((r) => setTimeout(r, 1700));
  await beat(2);
  const before = await listStatuses(vars);
  assert.deepEqual(before, {
    dead: "stale-dead",
    expired: "stale-expired",
    junk: "stale-no-owner",
    remote: "held-remote",
    "venv:model-a": "stale-dead",
  });

  // The live holder keeps beating while the test looks (each look may take a while on a loaded machine).
  await beat(3);
  const dry = await runMlagent(["lock", "clear"], { env: vars });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /dry run: pass --yes/);
  assert.equal((dry.stdout.match(/^would remove .* lock/gm) ?? []).length, 4);
  assert.equal((dry.stdout.match(/^would remove leftover temp file/gm) ?? []).length, 3);
  await beat(4);
  assert.deepEqual(await listStatuses(vars), before);

  await beat(5);
  const yes = await runMlagent(["lock", "clear", "--yes", "--json"], { env: vars });
  assert.equal(yes.code, 0, yes.stderr);
  assert.equal(yes.json<{ removed: string[] }>().removed.length, 4);
  assert.equal(yes.json<{ leftovers: string[] }>().leftovers.length, 3);
  assert.equal(
    await fileExists(`${locks}/live.lock.claim-gpu-1-78-abcdef13`),
    true,
    "a fresh temp file stays",
  );
  assert.equal(await fileExists(`${locks}/dead.lock.claim-gpu-1-77-abcdef12`), false);
  await beat(6);
  assert.deepEqual(await listStatuses(vars), { remote: "held-remote" });

  const force = await runMlagent(["lock", "clear", "--yes", "--force"], { env: vars });
  assert.equal(force.code, 0, force.stderr);
  assert.match(force.stderr, /FORCIBLY REMOVING lock "remote" held by gpu-4 pid 999999/);
  assert.deepEqual(await listStatuses(vars), {});
});

Deno.test("a flock lock left by a SIGKILLed holder lists as stale-dead and check calls it free", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const dead = new Deno.Command("true").spawn();
  await dead.status;
  await writeClaim(dir.path, "left", "");
  await Deno.writeTextFile(
    `${dir.path}/locks/left.lock.owner`,
    JSON.stringify(record({ mode: "flock", pid: dead.pid })),
  );
  assert.deepEqual(await listStatuses(vars), { left: "stale-dead" });
  const check = await runMlagent(["lock", "check", "left"], { env: vars });
  assert.equal(check.code, 0);
  assert.match(check.stdout, /free \(stale-dead/);
});

Deno.test("acquire() in lease mode notices a claim replaced under it and aborts `lost`", async () => {
  await using dir = await tempDir();
  const env = testEnv({ vars: hermeticVars({ MLAGENT_LOCK_DIR: `${dir.path}/locks` }) });
  const spec = namedLockSpec(env, "stolen", "test");
  const lock = await acquire(env, spec, { mode: "lease", heartbeatMs: 20, handleSignals: false });
  try {
    assert.equal(lock.fencing, 1);
    await Deno.writeTextFile(
      spec.path,
      JSON.stringify(record({ host: "thief", token: "other", fencing: 9 })),
    );
    await new Promise<void>((resolve) => lock.lost.addEventListener("abort", () => resolve()));
    assert.ok(
      env.logs.some((l) =>
        /lock "stolen" was lost: broken and now held by thief pid 999999 \(fencing 9/.test(l)
      ),
    );
  } finally {
    await lock.release();
  }
  // The thief's claim is not ours to remove.
  assert.match(await Deno.readTextFile(spec.path), /thief/);
});

Deno.test("withLock() releases on return and on throw, and the fencing number grows each time", async () => {
  await using dir = await tempDir();
  const env = testEnv({ vars: hermeticVars({ MLAGENT_LOCK_DIR: `${dir.path}/locks` }) });
  const spec = namedLockSpec(env, "api", "test");
  const first = await withLock(env, spec, {}, (l) => Promise.resolve(l.fencing));
  await assert.rejects(withLock(env, spec, {}, () => Promise.reject(new Error("boom"))), /boom/);
  const third = await withLock(env, spec, { noWait: true }, async (l) => {
    await assert.rejects(acquire(env, spec, { noWait: true }), /already held by this process/);
    return l.fencing;
  });
  assert.equal(first, 1);
  assert.equal(third, 3);
  // Released lock files are removed; the number lives on in the directory's floor.
  assert.equal(await fileExists(spec.path), false);
  assert.equal((await Deno.readTextFile(`${dir.path}/locks/.mlagent-fencing`)).trim(), "3");
});
