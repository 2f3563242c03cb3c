/**
 * Other hosts sharing one directory, as on NFS or Lustre: contenders run under `unshare --uts` with their own
 * host names, in lease mode (what mlagent picks on a network filesystem).
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";
import {
  canUnshareUts,
  fileExists,
  lockRunSh,
  lockVars,
  readOr,
  section,
  sectionsInOrder,
  spawnMlagent,
  waitUntil,
} from "../support/lock_helpers.ts";

const unshare = await canUnshareUts();

function leaseVars(dir: string, extra: Record<string, string> = {}) {
  return lockVars(dir, { MLAGENT_LOCK_MODE: "lease", ...extra });
}

/** A claim left by a host that is not here, its heartbeat `ageMs` old. */
async function writeRemoteClaim(
  path: string,
  host: string,
  ageMs: number,
  pid = 4411,
  boot = "another-boot",
) {
  const at = new Date(Date.now() - ageMs).toISOString();
  const record = {
    mlagent_lock: 1,
    mode: "lease",
    name: "remote",
    token: "feedc0de",
    host,
    pid,
    pid_start_time: 1234,
    boot_id: boot,
    user: "alice",
    uid: 1000,
    purpose: "install",
    scheduler: "slurm",
    job_id: "77",
    acquired_at: at,
    heartbeat_at: at,
    ttl_ms: 1500,
    fencing: 41,
    command: null,
    command_pid: null,
    command_start_time: null,
  };
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(path, JSON.stringify(record));
}

Deno.test({
  name: "a holder on another host with a fresh heartbeat is respected past the TTL",
  ignore: !unshare,
  async fn() {
    await using dir = await tempDir();
    const vars = leaseVars(dir.path, { MLAGENT_LOCK_TTL: "2" });
    const log = `${dir.path}/sections.log`;
    // The holder keeps the lock for longer than the TTL (2 s); only its heartbeats (every 0.2 s) keep it.
    const holder = spawnMlagent(["lock", "run", "remote", "--", ...section(log, "host-a", 3)], {
      env: vars,
      host: "host-a",
    });
    await waitUntil("host-a holds the lock", async () => (await readOr(log)).includes("begin host-a"));
    const waiter = spawnMlagent(["lock", "run", "remote", "--", ...section(log, "host-b", 0.01)], {
      env: vars,
      host: "host-b",
    });
    const [h, w] = await Promise.all([holder.done, waiter.done]);
    assert.equal(h.code, 0, h.stderr);
    assert.equal(w.code, 0, w.stderr);
    assert.deepEqual(sectionsInOrder(await readOr(log)), ["host-a", "host-b"]);
    assert.match(w.stderr, /waiting for lock "remote": held by host-a pid \d+/);
    assert.doesNotMatch(w.stderr, /broke stale lock/);
  },
});

Deno.test({
  name: "a crashed host's claim is broken exactly once by many contenders, once seen unchanged for the TTL",
  ignore: !unshare,
  async fn() {
    await using dir = await tempDir();
    const vars = leaseVars(dir.path);
    await writeRemoteClaim(`${dir.path}/locks/remote.lock`, "gpu-17", 10 * 60_000);
    // Its stamps say 10 minutes old, but that is gpu-17's clock: first seen, it counts as held.
    const check = await runMlagent(["lock", "check", "remote"], { env: vars });
    assert.equal(check.code, 3, check.stderr);
    assert.match(check.stdout, /held by gpu-17 pid 4411/);
    const log = `${dir.path}/sections.log`;
    const procs = ["host-b", "host-c", "host-d", "host-e"].map((host) =>
      spawnMlagent(["lock", "run", "remote", "--", ...section(log, host, 0.02)], { env: vars, host })
    );
    const results = await Promise.all(procs.map((p) => p.done));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...sectionsInOrder(await readOr(log))].sort(), [
      "host-b",
      "host-c",
      "host-d",
      "host-e",
    ]);
    const breaks = results.flatMap((r) => r.stderr.split("\n").filter((l) => l.includes("broke stale lock")));
    assert.equal(breaks.length, 1, breaks.join("\n"));
    assert.match(breaks[0], /stale-expired: no change from gpu-17 seen here for \d+s \(ttl 2s\)/);
  },
});

Deno.test({
  name: "a SIGKILLed holder on another host is broken only once its heartbeat is older than the TTL",
  ignore: !unshare,
  async fn() {
    await using dir = await tempDir();
    const vars = leaseVars(dir.path);
    const marker = `${dir.path}/holding`;
    const acquired = `${dir.path}/acquired`;
    const holder = spawnMlagent(lockRunSh("remote", `touch '${marker}'; exec sleep 30`), {
      env: vars,
      host: "host-a",
      detached: true,
    });
    await waitUntil("host-a holds the lock", () => fileExists(marker));
    const killedAt = Date.now();
    Deno.kill(-holder.pid, "SIGKILL");
    const waiter = spawnMlagent(["lock", "run", "remote", "--", "touch", acquired], {
      env: vars,
      host: "host-b",
    });
    await waitUntil("host-b acquires", () => fileExists(acquired), 15_000);
    const waited = Date.now() - killedAt;
    const w = await waiter.done;
    assert.equal(w.code, 0, w.stderr);
    // Another host cannot see the holder's pid: only the heartbeat's age (TTL 1.5 s) frees the lock.
    assert.ok(waited >= 1_200, `host-b got in after ${waited} ms, before the TTL ran out`);
    assert.match(w.stderr, /broke stale lock "remote" \(stale-expired/);
    await holder.done;
  },
});

Deno.test("without unshare, MLAGENT_HOSTNAME stands in for another host", async () => {
  await using dir = await tempDir();
  const vars = leaseVars(dir.path);
  const boot = (await Deno.readTextFile("/proc/sys/kernel/random/boot_id")).trim();
  await writeRemoteClaim(`${dir.path}/locks/remote.lock`, "gpu-17", 100, 4411, boot);
  const held = await runMlagent(["lock", "check", "remote"], { env: vars });
  assert.equal(held.code, 3, held.stderr);
  assert.match(held.stdout, /held by gpu-17 pid 4411 for \d+s \(install, job 77\)/);
  // The same record judged from "gpu-17" itself: pid 4411's start time does not match, so it is dead.
  const local = await runMlagent(["lock", "list", "--json"], {
    env: { ...vars, MLAGENT_HOSTNAME: "gpu-17" },
  });
  const doc = local.json<{ locks: { status: string }[] }>();
  assert.equal(doc.locks[0].status, "stale-dead");
});

Deno.test({
  name: "a command that outlives its SIGKILLed mlagent keeps the lease against other hosts past the TTL",
  ignore: !unshare,
  async fn() {
    await using dir = await tempDir();
    const vars = leaseVars(dir.path);
    const log = `${dir.path}/order.log`;
    const cmdPid = `${dir.path}/cmd.pid`;
    const holder = spawnMlagent(
      lockRunSh("remote", `echo $$ > '${cmdPid}'; sleep 3; echo holder-command-ended >> '${log}'`),
      { env: vars, host: "host-a" },
    );
    await waitUntil("the holder's command runs", async () => (await readOr(cmdPid)).trim() !== "");
    await new Promise((r) => setTimeout(r, 100));
    Deno.kill(holder.pid, "SIGKILL");
    const waiter = spawnMlagent(lockRunSh("remote", `echo waiter-entered >> '${log}'`), {
      env: vars,
      host: "host-b",
    });
    const w = await waiter.done;
    assert.equal(w.code, 0, w.stderr);
    assert.deepEqual((await readOr(log)).trim().split("\n"), ["holder-command-ended", "waiter-entered"]);
    await holder.done;
  },
});
