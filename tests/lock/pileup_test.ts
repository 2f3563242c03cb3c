/**
 * Locks that pile up: per-job lock names must not leave a file each behind, waiters blocked on a lock file
 * that is removed at release must still exclude each other, and stale records clear in bulk.
 */
import assert from "node:assert/strict";
import { clearStaleLocks, knownLockDirs, listLocks, type OwnerRecord } from "../../agent/lock/mod.ts";
import { runMlagent } from "../support/cli.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { lockRunSh, lockVars, readOr, spawnMlagent, waitUntil } from "../support/lock_helpers.ts";

const visible = (dir: string) =>
  [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => !n.startsWith(".")).sort();

Deno.test("per-job flock locks leave nothing behind, and fencing keeps growing across names and removals", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const fences: number[] = [];
  for (const name of ["job-1", "job-2", "job-1", "job-3"]) {
    const r = await runMlagent(lockRunSh(name, 'echo "$MLAGENT_LOCK_FENCING"'), { env: vars });
    assert.equal(r.code, 0, r.stderr);
    fences.push(Number(r.stdout.trim()));
  }
  assert.deepEqual(fences, [1, 2, 3, 4]);
  assert.deepEqual(visible(`${dir.path}/locks`), []);
  assert.equal((await Deno.readTextFile(`${dir.path}/locks/.mlagent-fencing`)).trim(), "4");
  const list = await runMlagent(["lock", "list"], { env: vars });
  assert.equal(list.stdout.trim(), "no locks held or left behind");
});

Deno.test("waiters blocked in flock(2) on a lock file removed at release still take turns, one at a time", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const log = `${dir.path}/sections.log`;
  const marker = `${dir.path}/holding`;
  const go = `${dir.path}/go`;
  const holder = spawnMlagent(
    lockRunSh("turns", `touch '${marker}'; while [ ! -e '${go}' ]; do sleep 0.05; done`),
    { env: vars },
  );
  await waitUntil("the holder holds the lock", async () => (await readOr(marker, "\0")) !== "\0");
  const ino = Deno.statSync(`${dir.path}/locks/turns.lock`).ino!;
  const waiters = Array.from({ length: 6 }, (_, i) =>
    spawnMlagent(
      lockRunSh("turns", `echo "begin ${i}" >> '${log}'; sleep 0.05; echo "end ${i}" >> '${log}'`),
      { env: vars },
    ));
  // All six blocked on the holder's inode (which release unlinks) before it lets go.
  await waitUntil("six waiters block on the lock file", async () => {
    const locks = await Deno.readTextFile("/proc/locks");
    return locks.split("\n").filter((l) => l.includes("->") && l.includes(`:${ino} `)).length >= 6;
  }, 60_000);
  await Deno.writeTextFile(go, "");
  const results = await Promise.all([holder, ...waiters].map((p) => p.done));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const lines = (await readOr(log)).trim().split("\n");
  assert.equal(lines.length, 12);
  for (let i = 0; i < lines.length; i += 2) {
    assert.equal(lines[i + 1], lines[i].replace("begin", "end"), `sections overlap:\n${lines.join("\n")}`);
  }
  assert.deepEqual(visible(`${dir.path}/locks`), []);
});

function deadRecord(name: string, mode: "flock" | "lease", pid: number, fencing: number): OwnerRecord {
  const at = new Date().toISOString();
  return {
    mlagent_lock: 1,
    mode,
    name,
    token: `t-${name}`,
    host: Deno.hostname(),
    pid,
    pid_start_time: 1,
    boot_id: null,
    user: "root",
    uid: 0,
    purpose: "lock run",
    scheduler: "slurm",
    job_id: name,
    acquired_at: at,
    heartbeat_at: at,
    ttl_ms: 60_000,
    fencing,
    command: ["sleep", "1"],
    command_pid: null,
    command_start_time: null,
  };
}

Deno.test("clearStaleLocks() clears a thousand stale flock and lease records left by killed jobs in one call", async () => {
  await using dir = await tempDir();
  const env = testEnv({
    vars: hermeticVars({ MLAGENT_LOCK_DIR: `${dir.path}/locks`, MLAGENT_ROOT: `${dir.path}/venvs` }),
  });
  const locks = `${dir.path}/locks`;
  const venvs = `${dir.path}/venvs`;
  await Deno.mkdir(locks, { recursive: true, mode: 0o700 });
  await Deno.mkdir(venvs, { recursive: true });
  // pid 2^22 + 1 is above pid_max's default: never a live process.
  const dead = 4_194_305;
  for (let i = 0; i < 500; i++) {
    await Deno.writeTextFile(`${locks}/job-${i}.lock`, "mlagent-flock fencing=9".padEnd(47) + "\n");
    await Deno.writeTextFile(
      `${locks}/job-${i}.lock.owner`,
      JSON.stringify(deadRecord(`job-${i}`, "flock", dead, 9)),
    );
    await Deno.writeTextFile(
      `${venvs}/model-${i}.lock`,
      JSON.stringify(deadRecord(`venv:model-${i}`, "lease", dead, 5)),
    );
  }
  const live = await Deno.open(`${locks}/live.lock`, { create: true, write: true });
  await live.lock(true);
  try {
    const dirs = knownLockDirs(env);
    const started = performance.now();
    const result = await clearStaleLocks(env, dirs);
    const ms = performance.now() - started;
    assert.equal(result.candidates.length, 1000);
    assert.equal(result.removed.length, 1000, result.kept.map((l) => l.reason).join("\n"));
    assert.deepEqual(result.held.map((l) => l.name), ["live"]);
    assert.deepEqual(visible(locks), ["live.lock"]);
    assert.deepEqual(visible(venvs).filter((n) => !n.endsWith(".fence")), []);
    assert.equal(
      (await Deno.readTextFile(`${locks}/.mlagent-fencing`)).trim(),
      "9",
      "fencing survives the clear",
    );
    assert.deepEqual((await listLocks(env, dirs)).map((l) => l.status), ["held"]);
    console.log(`cleared 1000 stale records in ${Math.round(ms)} ms`);
  } finally {
    live.close();
  }
});
