import assert from "node:assert/strict";
import { hermeticVars, REPO_ROOT, tempDir } from "../support/env.ts";
import {
  alive,
  fileExists,
  lockRunSh,
  lockVars,
  readOr,
  spawnMlagent,
  waitUntil,
} from "../support/lock_helpers.ts";

for (const mode of ["flock", "lease"] as const) {
  Deno.test(`lock run (${mode}): SIGKILL of the holder's process group lets the next waiter in at once`, async () => {
    await using dir = await tempDir();
    // A long TTL: the waiter must get in because the holder is provably dead, not because time passed.
    const vars = lockVars(dir.path, { MLAGENT_LOCK_MODE: mode, MLAGENT_LOCK_TTL: "60" });
    const marker = `${dir.path}/holding`;
    const acquired = `${dir.path}/acquired`;
    const holder = spawnMlagent(["lock", "run", "k", "--", "sh", "-c", `touch '${marker}'; exec sleep 30`], {
      env: vars,
      detached: true,
    });
    await waitUntil("the holder runs its command", () => fileExists(marker));
    const waiter = spawnMlagent(["lock", "run", "k", "--", "touch", acquired], { env: vars });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await fileExists(acquired), false, "the waiter must wait while the holder lives");
    const killedAt = Date.now();
    Deno.kill(-holder.pid, "SIGKILL");
    await waitUntil("the waiter acquires", () => fileExists(acquired), 10_000);
    const waited = Date.now() - killedAt;
    const w = await waiter.done;
    assert.equal(w.code, 0, w.stderr);
    assert.ok(waited < 5_000, `waiter took ${waited} ms after the holder died`);
    await holder.done;
  });

  Deno.test(`lock run (${mode}): SIGKILL of mlagent alone keeps the lock until its command ends`, async () => {
    await using dir = await tempDir();
    const vars = lockVars(dir.path, { MLAGENT_LOCK_MODE: mode, MLAGENT_LOCK_TTL: "60" });
    const log = `${dir.path}/order.log`;
    const cmdPid = `${dir.path}/cmd.pid`;
    const holder = spawnMlagent(
      lockRunSh("k2", `echo $$ > '${cmdPid}'; sleep 1.5; echo holder-command-ended >> '${log}'`),
      { env: vars },
    );
    await waitUntil("the holder's command runs", async () => (await readOr(cmdPid)).trim() !== "");
    Deno.kill(holder.pid, "SIGKILL");
    await waitUntil("mlagent is gone", () => !alive(holder.pid));
    const command = Number((await readOr(cmdPid)).trim());
    assert.ok(alive(command), "the command outlives mlagent");
    const waiter = spawnMlagent(["lock", "run", "k2", "--", "sh", "-c", `echo waiter-entered >> '${log}'`], {
      env: vars,
    });
    const w = await waiter.done;
    assert.equal(w.code, 0, w.stderr);
    assert.deepEqual((await readOr(log)).trim().split("\n"), ["holder-command-ended", "waiter-entered"]);
    assert.match(w.stderr, new RegExp(`command of exited mlagent pid ${holder.pid}`));
    await holder.done;
  });
}

Deno.test("SIGTERM to a process holding a lock through the API aborts `interrupted`, releases, exits 143", async () => {
  await using dir = await tempDir();
  const script = `${dir.path}/holder.ts`;
  await Deno.writeTextFile(
    script,
    `import { realEnv } from "${REPO_ROOT}/agent/core/env.ts";
import { acquire, namedLockSpec } from "${REPO_ROOT}/agent/lock/mod.ts";
const env = realEnv();
const lock = await acquire(env, namedLockSpec(env, "api", "test"));
lock.interrupted?.addEventListener("abort", () => console.log("interrupted"));
console.log("held");
await new Promise((r) => setTimeout(r, 30_000));
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "--config", `${REPO_ROOT}/deno.json`, script],
    env: hermeticVars(lockVars(dir.path)),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("held\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`holder exited before taking the lock: ${out}`);
    out += value;
  }
  assert.equal(await fileExists(`${dir.path}/locks/api.lock.owner`), true);
  child.kill("SIGTERM");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const status = await child.status;
  await child.stderr.cancel();
  assert.equal(status.code, 143);
  assert.match(out, /interrupted/);
  assert.equal(await fileExists(`${dir.path}/locks/api.lock.owner`), false);
});
