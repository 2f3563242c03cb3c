/**
 * Shared holds (acquireShared, `lock run --shared`): real processes holding one lock together, exclusive
 * acquirers waiting for all of them or refusing with --no-wait, and holders killed with SIGKILL.
 */
import assert from "node:assert/strict";
import { mlagentArgv, runMlagent } from "../support/cli.ts";
import { hermeticVars, REPO_ROOT, tempDir } from "../support/env.ts";
import {
  canUnshareUts,
  fileExists,
  lockVars,
  readOr,
  spawnMlagent,
  waitUntil,
} from "../support/lock_helpers.ts";

const unshare = await canUnshareUts();

const shared = (name: string, script: string, extra: string[] = []) => [
  "lock",
  "run",
  name,
  "--shared",
  ...extra,
  "--",
  "sh",
  "-c",
  script,
];

/** Spawns mlagent with its stderr read as it comes, so a test can wait for a line (e.g. "waiting for lock"). */
function spawnWatched(args: string[], vars: Record<string, string>) {
  const argv = mlagentArgv(args);
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: REPO_ROOT,
    env: hermeticVars(vars),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  return {
    waitFor: (re: RegExp) => waitUntil(`stderr matches ${re}`, () => re.test(stderr)),
    done: Promise.all([child.status, reading]).then(([st]) => ({ code: st.code, stderr })),
  };
}

interface ListedLock {
  name: string;
  status: string;
  owner: unknown;
  holders: { status: string; owner: { host: string; pid: number; shared: boolean } | null }[];
}

async function listed(vars: Record<string, string>, name: string): Promise<ListedLock | undefined> {
  const r = await runMlagent(["lock", "list", "--json"], { env: vars });
  assert.equal(r.code, 0, r.stderr);
  return r.json<{ locks: ListedLock[] }>().locks.find((l) => l.name === name);
}

for (const mode of ["flock", "lease"] as const) {
  Deno.test(`shared holds (${mode}): three at once, then an exclusive waiter gets in only after all have left`, async () => {
    await using dir = await tempDir();
    const vars = lockVars(dir.path, { MLAGENT_LOCK_MODE: mode, MLAGENT_LOCK_TTL: "60" });
    const log = `${dir.path}/order.log`;
    const go = `${dir.path}/go`;
    const holders = [0, 1, 2].map((i) =>
      spawnMlagent(
        shared(
          "venvish",
          `touch '${dir.path}/in-${i}'; while [ ! -e '${go}' ]; do sleep 0.05; done; sleep 0.${
            i + 1
          }; echo shared-${i} >> '${log}'`,
        ),
        { env: vars },
      )
    );
    // All three inside at once: none can leave before the test says so.
    await waitUntil("all three hold the lock", async () => {
      for (const i of [0, 1, 2]) if (!(await fileExists(`${dir.path}/in-${i}`))) return false;
      return true;
    });
    const lock = await listed(vars, "venvish");
    assert.equal(lock?.status, "held");
    assert.equal(lock?.owner, null);
    assert.deepEqual(lock?.holders.map((h) => [h.status, h.owner?.shared]), [
      ["held", true],
      ["held", true],
      ["held", true],
    ]);
    const exclusive = spawnWatched(
      ["lock", "run", "venvish", "--", "sh", "-c", `echo exclusive >> '${log}'`],
      vars,
    );
    await exclusive.waitFor(/waiting for lock "venvish": held by 3 shared holders: \S+ pid \d+/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await readOr(log), "", "the exclusive waiter got in beside shared holders");
    await Deno.writeTextFile(go, "");
    const results = await Promise.all([...holders, exclusive].map((p) => p.done));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const order = (await readOr(log)).trim().split("\n");
    assert.deepEqual(order.slice(0, 3).sort(), ["shared-0", "shared-1", "shared-2"]);
    assert.equal(order[3], "exclusive");
    assert.equal(await listed(vars, "venvish"), undefined, "nothing left behind");
    assert.deepEqual(
      [...Deno.readDirSync(`${dir.path}/locks`)].map((e) => e.name).filter((n) => !n.startsWith(".")).filter((
        n,
      ) => !n.endsWith(".fence")),
      [],
      "the lock file and the holders' records are gone",
    );
  });

  Deno.test(`shared holds (${mode}): --no-wait refusals name the holders on either side`, async () => {
    await using dir = await tempDir();
    const vars = lockVars(dir.path, { MLAGENT_LOCK_MODE: mode });
    const go = `${dir.path}/go`;
    const wait = `while [ ! -e '${go}' ]; do sleep 0.05; done`;
    const holders = [0, 1].map((i) =>
      spawnMlagent(shared("busy", `touch '${dir.path}/in-${i}'; ${wait}`), { env: vars })
    );
    await waitUntil(
      "both hold the lock",
      async () => (await fileExists(`${dir.path}/in-0`)) && (await fileExists(`${dir.path}/in-1`)),
    );
    const refused = await runMlagent(["lock", "run", "busy", "--no-wait", "--", "true"], { env: vars });
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(
      refused.stderr,
      /^error: cannot acquire lock "busy": held by 2 shared holders: \S+ pid \d+ for \d+s \(lock run sh\), \S+ pid \d+/,
    );
    const another = await runMlagent(shared("busy", "true", ["--no-wait"]), { env: vars });
    assert.equal(another.code, 0, `a third shared holder may join: ${another.stderr}`);
    await Deno.writeTextFile(go, "");
    for (const h of holders) assert.equal((await h.done).code, 0);

    await Deno.remove(go);
    const marker = `${dir.path}/exclusive-in`;
    const ex = spawnMlagent(["lock", "run", "busy", "--", "sh", "-c", `touch '${marker}'; ${wait}`], {
      env: vars,
    });
    await waitUntil("the exclusive holder is in", () => fileExists(marker));
    const join = await runMlagent(shared("busy", "true", ["--no-wait"]), { env: vars });
    assert.equal(join.code, 3);
    assert.match(join.stderr, /cannot acquire lock "busy": held by \S+ pid \d+ for \d+s \(lock run sh\)/);
    await Deno.writeTextFile(go, "");
    assert.equal((await ex.done).code, 0);
  });

  Deno.test(`shared holds (${mode}): a SIGKILLed holder's hold does not block a later exclusive acquire`, async () => {
    await using dir = await tempDir();
    // A long TTL: the exclusive acquirer must get in because the holder is provably dead, not because time passed.
    const vars = lockVars(dir.path, { MLAGENT_LOCK_MODE: mode, MLAGENT_LOCK_TTL: "60" });
    const marker = `${dir.path}/holding`;
    const holder = spawnMlagent(shared("killed", `touch '${marker}'; exec sleep 30`), {
      env: vars,
      detached: true,
    });
    await waitUntil("the shared holder runs its command", () => fileExists(marker));
    Deno.kill(-holder.pid, "SIGKILL");
    await holder.done;
    const started = Date.now();
    const r = await runMlagent(["lock", "run", "killed", "--timeout", "10", "--", "true"], { env: vars });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    if (mode === "lease") {
      assert.match(r.stderr, /removed the record of shared holder .* \(owner pid \d+ is gone\)/);
    }
  });

  Deno.test(`shared holds (${mode}): a command that outlives its SIGKILLed mlagent keeps the hold until it ends`, async () => {
    await using dir = await tempDir();
    const vars = lockVars(dir.path, { MLAGENT_LOCK_MODE: mode, MLAGENT_LOCK_TTL: "60" });
    const log = `${dir.path}/order.log`;
    const cmdPid = `${dir.path}/cmd.pid`;
    const holder = spawnMlagent(
      shared("orphan", `echo $$ > '${cmdPid}'; sleep 1.5; echo command-ended >> '${log}'`),
      { env: vars },
    );
    await waitUntil("the command runs", async () => (await readOr(cmdPid)).trim() !== "");
    await new Promise((r) => setTimeout(r, 100));
    Deno.kill(holder.pid, "SIGKILL");
    await holder.done;
    const r = await runMlagent(["lock", "run", "orphan", "--", "sh", "-c", `echo exclusive >> '${log}'`], {
      env: vars,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await readOr(log)).trim().split("\n"), ["command-ended", "exclusive"]);
  });
}

Deno.test({
  name:
    "shared holds (lease): a holder on another host that was SIGKILLed is removed only once seen unchanged for the TTL",
  ignore: !unshare,
  async fn() {
    await using dir = await tempDir();
    const vars = lockVars(dir.path, { MLAGENT_LOCK_MODE: "lease", MLAGENT_LOCK_TTL: "1.5" });
    const marker = `${dir.path}/holding`;
    const holder = spawnMlagent(shared("remote", `touch '${marker}'; exec sleep 30`), {
      env: vars,
      host: "host-a",
      detached: true,
    });
    await waitUntil("host-a holds the lock shared", () => fileExists(marker));
    const busy = await runMlagent(["lock", "run", "remote", "--no-wait", "--", "true"], {
      env: { ...vars, MLAGENT_HOSTNAME: "host-b" },
    });
    assert.equal(busy.code, 3);
    assert.match(busy.stderr, /held by 1 shared holder: host-a pid \d+/);
    Deno.kill(-holder.pid, "SIGKILL");
    await holder.done;
    const killedAt = Date.now();
    const r = await runMlagent(["lock", "run", "remote", "--", "true"], {
      env: { ...vars, MLAGENT_HOSTNAME: "host-b" },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - killedAt >= 1_300, `got in ${Date.now() - killedAt} ms after the kill`);
    assert.match(
      r.stderr,
      /removed the record of shared holder host-a-\S+ of lock "remote" \(no change from host-a seen here/,
    );
  },
});
