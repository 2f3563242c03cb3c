/**
 * `cache heal`'s cron chores beside corruption: --max-size prunes least recently used entries, stale mlagent
 * locks (holders SIGKILLed) are removed, venvs left "installing" by a dead installer are marked failed; and
 * `cache clean` is a dry run unless --yes.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";
import { spawnMlagent, waitUntil } from "../support/lock_helpers.ts";

function vars(d: string) {
  return {
    MLAGENT_CACHE_DIR: `${d}/cache`,
    XDG_STATE_HOME: `${d}/state`,
    MLAGENT_ROOT: `${d}/venvs`,
    MLAGENT_LOCK_DIR: `${d}/locks`,
  };
}

/** An unzipped wheel of `kib` KiB in uv's archive bucket, last used at `usedS` (epoch seconds). */
async function archiveEntry(cache: string, id: string, kib: number, usedS: number) {
  const dir = `${cache}/uv/archive-v0/${id}`;
  const di = `${dir}/p_${id}-1.0.dist-info`;
  await Deno.mkdir(`${dir}/p_${id}`, { recursive: true });
  await Deno.mkdir(di);
  await Deno.writeFile(`${dir}/p_${id}/data.bin`, new Uint8Array(kib * 1024));
  await Deno.writeTextFile(`${di}/METADATA`, `Name: p-${id}\nVersion: 1.0\n`);
  await Deno.writeTextFile(`${di}/RECORD`, `p_${id}/data.bin,,\np_${id}-1.0.dist-info/METADATA,,\n`);
  for (const p of [`${dir}/p_${id}/data.bin`, `${di}/METADATA`, `${di}/RECORD`, di, `${dir}/p_${id}`, dir]) {
    await Deno.utime(p, usedS, usedS);
  }
}

Deno.test("cache heal --max-size prunes the least recently used entries down to the budget", async () => {
  await using dir = await tempDir();
  const v = vars(dir.path);
  await Deno.mkdir(v.MLAGENT_CACHE_DIR, { mode: 0o700 });
  const day = 86_400;
  const now = Math.floor(Date.now() / 1000);
  await archiveEntry(v.MLAGENT_CACHE_DIR, "oldest", 300, now - 30 * day);
  await archiveEntry(v.MLAGENT_CACHE_DIR, "older", 300, now - 20 * day);
  await archiveEntry(v.MLAGENT_CACHE_DIR, "recent", 300, now - day);
  await archiveEntry(v.MLAGENT_CACHE_DIR, "newest", 300, now);

  const dry = await runMlagent(["cache", "heal", "--dry-run", "--max-size", "700K", "--json"], { env: v });
  assert.equal(dry.code, 0, dry.stderr);
  const want = ["oldest", "older"].map((id) => `${v.MLAGENT_CACHE_DIR}/uv/archive-v0/${id}`);
  assert.deepEqual(dry.json<{ pruned: string[] }>().pruned, want);
  await Deno.stat(want[0]);

  const r = await runMlagent(["cache", "heal", "--max-size", "700K", "--json"], { env: v });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json<{ pruned: string[] }>().pruned, want);
  for (const p of want) await assert.rejects(Deno.stat(p), Deno.errors.NotFound);
  for (const id of ["recent", "newest"]) await Deno.stat(`${v.MLAGENT_CACHE_DIR}/uv/archive-v0/${id}`);

  const again = await runMlagent(["cache", "heal", "--max-size", "700K", "--json"], { env: v });
  assert.equal(again.json<{ result: string }>().result, "nothing");

  const bad = await runMlagent(["cache", "heal", "--max-size", "lots"], { env: v });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--max-size must be a size like 20G/);
});

Deno.test("cache heal clears locks whose holders were killed and marks their installs failed", async () => {
  await using dir = await tempDir();
  const v = vars(dir.path);
  // A holder SIGKILLed with its command: the lease record stays behind with a dead owner.
  const holder = spawnMlagent(["lock", "run", "train-data", "--", "sleep", "30"], {
    env: { ...v, MLAGENT_LOCK_MODE: "lease" },
    detached: true,
  });
  await waitUntil("the lock is taken", async () => {
    try {
      return (await Deno.readTextFile(`${v.MLAGENT_LOCK_DIR}/train-data.lock`)).includes("command_pid");
    } catch {
      return false;
    }
  });
  Deno.kill(-holder.pid, "SIGKILL");
  await holder.done;

  // A venv an installer left "installing" when it died (pid 2^22 + 1 is above pid_max's default: never live).
  const venv = `${v.MLAGENT_ROOT}/dead-model`;
  await Deno.mkdir(`${venv}/.mlagent`, { recursive: true });
  const now = new Date().toISOString();
  await Deno.writeTextFile(
    `${venv}/.mlagent/state.json`,
    JSON.stringify({
      profile: "dead-model",
      status: "installing",
      fingerprint: "f",
      plan: {
        profile_sha256: "p",
        cuda_variant: null,
        python_executable: "/usr/bin/python3",
        python_version: "3.11.2",
        installer: "pip",
      },
      stages: [],
      owner: { host: Deno.hostname(), pid: 4_194_305, pid_start_time: 1, boot_id: null },
      started_at: now,
      updated_at: now,
      finished_at: null,
      packages: {},
      error: null,
    }),
  );

  const r = await runMlagent(["cache", "heal", "--json"], {
    env: { ...v, MLAGENT_HOSTNAME: Deno.hostname() },
  });
  assert.equal(r.code, 0, r.stderr);
  const j = r.json<{ stale_locks_cleared: string[]; venvs_marked_failed: string[] }>();
  assert.deepEqual(j.stale_locks_cleared, ["train-data"]);
  assert.deepEqual(j.venvs_marked_failed, [venv]);
  const state = JSON.parse(await Deno.readTextFile(`${venv}/.mlagent/state.json`));
  assert.equal(state.status, "failed");
  assert.match(state.error.message, /died before finishing/);

  const again = await runMlagent(["cache", "heal", "--json"], { env: v });
  const j2 = again.json<{ result: string; stale_locks_cleared: string[]; venvs_marked_failed: string[] }>();
  assert.deepEqual([j2.result, j2.stale_locks_cleared, j2.venvs_marked_failed], ["nothing", [], []]);
});

Deno.test("cache clean is a dry run without --yes and removes everything with it", async () => {
  await using dir = await tempDir();
  const v = vars(dir.path);
  await Deno.mkdir(v.MLAGENT_CACHE_DIR, { mode: 0o700 });
  await archiveEntry(v.MLAGENT_CACHE_DIR, "one", 10, Math.floor(Date.now() / 1000));
  const dry = await runMlagent(["cache", "clean", "--json"], { env: v });
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(dry.json<{ result: string }>().result, "dry-run");
  await Deno.stat(`${v.MLAGENT_CACHE_DIR}/uv/archive-v0/one`);
  const yes = await runMlagent(["cache", "clean", "--yes", "--json"], { env: v });
  assert.equal(yes.code, 0, yes.stderr);
  assert.equal(yes.json<{ result: string }>().result, "cleaned");
  const left = [...Deno.readDirSync(v.MLAGENT_CACHE_DIR)].map((e) => e.name).sort();
  assert.deepEqual(left, [".mlagent-cache.json", ".mlagent-lock", ".mlagent-trash"]);
  const info = await runMlagent(["cache", "info", "--json"], { env: v });
  assert.equal(info.json<{ last_heal: { action: string } }>().last_heal.action, "clean");
  // A second clean finds only the cache's own record: already clean, not "nothing could be removed".
  const again = await runMlagent(["cache", "clean", "--yes"], { env: v });
  assert.equal(again.code, 0, again.stderr);
});
