import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";
import {
  fileExists,
  lockRunSh,
  lockVars,
  readOr,
  section,
  sectionsInOrder,
  spawnMlagent,
  waitUntil,
} from "../support/lock_helpers.ts";

for (const mode of ["flock", "lease"] as const) {
  Deno.test(`lock run (${mode}): 8 contenders never overlap and none is lost`, async () => {
    await using dir = await tempDir();
    const log = `${dir.path}/sections.log`;
    const procs = Array.from(
      { length: 8 },
      (_, i) =>
        spawnMlagent(["lock", "run", "shared", "--", ...section(log, i, 0.03)], {
          env: lockVars(dir.path, { MLAGENT_LOCK_MODE: mode }),
        }),
    );
    const results = await Promise.all(procs.map((p) => p.done));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const ids = sectionsInOrder(await readOr(log));
    assert.deepEqual([...ids].sort(), ["0", "1", "2", "3", "4", "5", "6", "7"]);
  });
}

Deno.test("lock run passes the command's exit code through and gives it the lock's name and fencing", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const r = await runMlagent(
    ["lock", "run", "job-a", "--", "sh", "-c", 'echo "$MLAGENT_LOCK_NAME $MLAGENT_LOCK_FENCING"; exit 7'],
    { env: vars },
  );
  assert.equal(r.code, 7, r.stderr);
  assert.equal(r.stdout.trim(), "job-a 1");
  const again = await runMlagent(["lock", "run", "job-a", "--", "sh", "-c", 'echo "$MLAGENT_LOCK_FENCING"'], {
    env: vars,
  });
  assert.equal(again.stdout.trim(), "2", "the fencing number grows with every acquisition");
});

Deno.test("lock run --no-wait on a held lock exits 3 naming the holder, then a hint", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const marker = `${dir.path}/holding`;
  const holder = spawnMlagent(["lock", "run", "busy", "--", "sh", "-c", `touch '${marker}'; exec sleep 5`], {
    env: vars,
  });
  try {
    await waitUntil("the holder runs its command", () => fileExists(marker));
    const r = await runMlagent(["lock", "run", "busy", "--no-wait", "--", "true"], { env: vars });
    assert.equal(r.code, 3);
    const lines = r.stderr.trim().split("\n");
    assert.match(lines[0], /^error: cannot acquire lock "busy": held by \S+ pid \d+ for \d+s/);
    assert.match(lines[1], /^hint: /);
    const check = await runMlagent(["lock", "check", "busy"], { env: vars });
    assert.equal(check.code, 3);
    const list = await runMlagent(["lock", "list", "--json"], { env: vars });
    const doc = list.json<
      { locks: { name: string; status: string; owner: { command_pid: number | null } }[] }
    >();
    assert.equal(doc.locks.length, 1);
    assert.equal(doc.locks[0].name, "busy");
    assert.equal(doc.locks[0].status, "held");
  } finally {
    holder.child.kill("SIGTERM");
    await holder.done;
  }
  const free = await runMlagent(["lock", "check", "busy"], { env: vars });
  assert.equal(free.code, 0, free.stderr);
});

Deno.test("lock run --timeout gives up with exit 1 and says who holds the lock", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const marker = `${dir.path}/holding`;
  const holder = spawnMlagent(["lock", "run", "slow", "--", "sh", "-c", `touch '${marker}'; exec sleep 5`], {
    env: vars,
  });
  try {
    await waitUntil("the holder runs its command", () => fileExists(marker));
    const r = await runMlagent(["lock", "run", "slow", "--timeout", "0.6", "--", "true"], { env: vars });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /waiting for lock "slow": held by \S+ pid \d+/);
    assert.match(r.stderr, /timed out after \d+s waiting for lock "slow": held by/);
  } finally {
    holder.child.kill("SIGTERM");
    await holder.done;
  }
});

Deno.test("SIGTERM to lock run reaches the command, then releases the lock and removes the record", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const marker = `${dir.path}/holding`;
  const trapped = `${dir.path}/trapped`;
  const holder = spawnMlagent(
    lockRunSh(
      "sig",
      `trap 'echo term > "${trapped}"; exit 5' TERM; touch '${marker}'; while :; do sleep 0.05; done`,
    ),
    { env: vars },
  );
  await waitUntil("the holder runs its command", () => fileExists(marker));
  await new Promise((r) => setTimeout(r, 100));
  holder.child.kill("SIGTERM");
  const r = await holder.done;
  assert.equal(r.code, 5, r.stderr);
  assert.equal((await readOr(trapped)).trim(), "term");
  assert.equal(await fileExists(`${dir.path}/locks/sig.lock.owner`), false);
  const check = await runMlagent(["lock", "check", "sig"], { env: vars });
  assert.equal(check.code, 0);
});

Deno.test("lock names with '/', '..' or control characters are refused with exit 2", async () => {
  await using dir = await tempDir();
  for (const name of ["a/b", "..", "x..y", "bad\x01name", ""]) {
    const r = await runMlagent(["lock", "run", name, "--", "true"], { env: lockVars(dir.path) });
    assert.equal(r.code, 2, `${JSON.stringify(name)}: ${r.stderr}`);
    assert.match(r.stderr, /bad lock name/);
  }
});

Deno.test("a lock path that is a symlink or a directory is refused with exit 2 naming it", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  await Deno.mkdir(`${dir.path}/locks`, { mode: 0o700 });
  await Deno.writeTextFile(`${dir.path}/victim`, "precious\n");
  await Deno.symlink(`${dir.path}/victim`, `${dir.path}/locks/linked.lock`);
  const r = await runMlagent(["lock", "run", "linked", "--", "true"], { env: vars });
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`lock path is a symlink: ${dir.path}/locks/linked.lock`));
  assert.equal(await Deno.readTextFile(`${dir.path}/victim`), "precious\n");
  await Deno.mkdir(`${dir.path}/locks/dir.lock`);
  const d = await runMlagent(["lock", "check", "dir"], { env: vars });
  assert.equal(d.code, 2);
  assert.match(d.stderr, /lock path is a directory: .*dir\.lock/);
});

Deno.test("a node-local lock dir owned by another user or writable by others is refused", async () => {
  await using dir = await tempDir();
  const locks = `${dir.path}/locks`;
  await Deno.mkdir(locks);
  await Deno.chmod(locks, 0o777);
  const open = await runMlagent(["lock", "run", "x", "--", "true"], { env: lockVars(dir.path) });
  assert.equal(open.code, 2);
  assert.match(open.stderr, /lock directory \(MLAGENT_LOCK_DIR\) .* is writable by every user/);
  await Deno.chmod(locks, 0o700);
  await Deno.chown(locks, 4242, 4242);
  const foreign = await runMlagent(["lock", "run", "x", "--", "true"], { env: lockVars(dir.path) });
  assert.equal(foreign.code, 2);
  assert.match(foreign.stderr, /owned by uid 4242/);
});

Deno.test("lock run with an unknown command exits 127 as a shell would and leaves the lock free", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const r = await runMlagent(["lock", "run", "nf", "--", "no-such-command-xyz"], { env: vars });
  assert.equal(r.code, 127);
  assert.match(r.stderr, /command not found: no-such-command-xyz/);
  assert.equal((await runMlagent(["lock", "check", "nf"], { env: vars })).code, 0);
});

Deno.test("SIGINT to a waiting lock run stops the wait with exit 130 and leaves the holder alone", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const marker = `${dir.path}/holding`;
  const holder = spawnMlagent(["lock", "run", "int", "--", "sh", "-c", `touch '${marker}'; exec sleep 5`], {
    env: vars,
  });
  try {
    await waitUntil("the holder runs its command", () => fileExists(marker));
    const waiter = spawnMlagent(["lock", "run", "int", "--", "true"], { env: vars });
    await new Promise((r) => setTimeout(r, 600));
    waiter.child.kill("SIGINT");
    const w = await waiter.done;
    assert.equal(w.code, 130, w.stderr);
    assert.doesNotMatch(w.stderr, /at .*\.ts:\d+/, "no stack trace");
    assert.equal((await runMlagent(["lock", "check", "int"], { env: vars })).code, 3);
  } finally {
    holder.child.kill("SIGTERM");
    await holder.done;
  }
});

Deno.test("lock clear keeps fencing numbers growing after it removes a stale flock lock", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  for (let i = 0; i < 2; i++) await runMlagent(["lock", "run", "fence", "--", "true"], { env: vars });
  const dead = new Deno.Command("true").spawn();
  await dead.status;
  const owner = {
    mlagent_lock: 1,
    mode: "flock",
    name: "fence",
    token: "t",
    host: Deno.hostname(),
    pid: dead.pid,
    acquired_at: new Date().toISOString(),
    heartbeat_at: new Date().toISOString(),
    fencing: 2,
  };
  // What a SIGKILLed holder leaves: the lock file with its fencing header, and the owner record.
  await Deno.writeTextFile(`${dir.path}/locks/fence.lock`, "mlagent-flock fencing=2".padEnd(47) + "\n");
  await Deno.writeTextFile(`${dir.path}/locks/fence.lock.owner`, JSON.stringify(owner));
  const clear = await runMlagent(["lock", "clear", "--yes"], { env: vars });
  assert.match(clear.stdout, /removed stale-dead lock "fence"/);
  const r = await runMlagent(["lock", "run", "fence", "--", "sh", "-c", 'echo "$MLAGENT_LOCK_FENCING"'], {
    env: vars,
  });
  assert.equal(r.stdout.trim(), "3");
});

Deno.test("lock run venv:NAME takes the lock beside the venv that install takes, and list names it so", async () => {
  await using dir = await tempDir();
  const root = `${dir.path}/venvs`;
  const vars = { ...lockVars(dir.path), MLAGENT_ROOT: root };
  const r = await runMlagent([
    "lock",
    "run",
    "venv:model-a",
    "--ttl",
    "90",
    "--",
    "sh",
    "-c",
    `cat '${root}/model-a.lock.owner'`,
  ], { env: vars });
  assert.equal(r.code, 0, r.stderr);
  const owner = JSON.parse(r.stdout);
  assert.equal(owner.name, "venv:model-a");
  assert.equal(owner.ttl_ms, 90_000);
  assert.deepEqual(owner.command.slice(0, 2), ["sh", "-c"]);
  const bad = await runMlagent(["lock", "check", "venv:../etc"], { env: vars });
  assert.equal(bad.code, 2);
});
