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

Deno.test("judgeRecord() judges remote records and same-name records from another boot by heartbeat", () => {
  const env = testEnv();
  const long = new Date(Date.now() - 600_000).toISOString();
  const beforeReboot = record({
    pid: env.pid,
    pid_start_time: null,
    boot_id: "old-boot",
    heartbeat_at: long,
  });
  assert.equal(judgeRecord(env, beforeReboot).status, "stale-expired");
  // A fresh heartbeat under our name but another boot id: a twin host (containers), not us.
  const twin = judgeRecord(env, record({ pid: env.pid, pid_start_time: null, boot_id: "old-boot" }));
  assert.equal(twin.status, "held-remote");
  assert.match(twin.reason, /another boot/);
  const old = new Date(Date.now() - 120_000).toISOString();
  assert.equal(judgeRecord(env, record({ host: "gpu-9", heartbeat_at: old })).status, "stale-expired");
  assert.equal(judgeRecord(env, record({ host: "gpu-9" })).status, "held-remote");
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
  await writeClaim(dir.path, "expired", JSON.stringify(record({ host: "gpu-3", heartbeat_at: old })));
  await writeClaim(dir.path, "remote", JSON.stringify(record({ host: "gpu-4" })));
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
  const before = await listStatuses(vars);
  assert.deepEqual(before, {
    dead: "stale-dead",
    expired: "stale-expired",
    junk: "stale-no-owner",
    remote: "held-remote",
    "venv:model-a": "stale-dead",
  });

  const dry = await runMlagent(["lock", "clear"], { env: vars });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /dry run: pass --yes/);
  assert.equal((dry.stdout.match(/^would remove .* lock/gm) ?? []).length, 4);
  assert.equal((dry.stdout.match(/^would remove leftover temp file/gm) ?? []).length, 3);
  assert.deepEqual(await listStatuses(vars), before);

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
  assert.equal((await Deno.readTextFile(spec.path)).startsWith("mlagent-flock fencing=3"), true);
});
