/**
 * The sshfs harness against itself: several clients of one exported directory behave as a network
 * filesystem does (shared data, per-client flock, link(2) as the server allows), and dispose leaves nothing.
 */
import assert from "node:assert/strict";
import { isAlive, runBounded } from "../support/daemon.ts";
import { pathExists } from "../support/env.ts";
import { mountinfoEntry, sshfsAvailable, sshfsMountsUnder, startSshfs } from "../support/sshfs.ts";

// Needs root, /dev/fuse, sshfs and openssh-server (.ci/run installs the packages where missing).
const available = sshfsAvailable();

async function errnoOf(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
    return "ok";
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

Deno.test({
  name: "startSshfs() gives separate sshfs clients of one exported directory",
  ignore: !available,
  fn: async (t) => {
    const started = performance.now();
    await using fs = await startSshfs({ clients: 3 });
    console.log(`sshfs harness up with 3 clients in ${Math.round(performance.now() - started)} ms`);
    const [a, b, c] = fs.mounts;

    await t.step("each mount is its own fuse.sshfs mount", () => {
      const entries = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").map(mountinfoEntry);
      for (const m of fs.mounts) {
        assert.deepEqual(entries.filter((e) => e?.mountPoint === m).map((e) => e!.fstype), ["fuse.sshfs"]);
      }
      assert.equal(new Set(fs.mounts.map((m) => Deno.statSync(m).dev)).size, 3, "one device per client");
    });

    await t.step("a file written through one mount is read through the others at once", async () => {
      await Deno.writeTextFile(`${a}/shared.txt`, "from a\n");
      assert.equal(await Deno.readTextFile(`${b}/shared.txt`), "from a\n");
      assert.equal(await Deno.readTextFile(`${fs.export}/shared.txt`), "from a\n");
      // Close-to-open: b has the file cached now; a rewrite through c must still be seen by b.
      await Deno.writeTextFile(`${c}/shared.txt`, "from c, longer\n");
      assert.equal(await Deno.readTextFile(`${b}/shared.txt`), "from c, longer\n");
      await Deno.remove(`${b}/shared.txt`);
      assert.equal(await pathExists(`${a}/shared.txt`), false, "a removal through b is seen by a");
    });

    await t.step("flock through mount A does not exclude mount B (but does exclude A)", async () => {
      await Deno.writeTextFile(`${fs.export}/lockfile`, "");
      // flock -n takes the lock or fails at once (exit 1); the inner flock runs while the outer holds it.
      const across = await runBounded([
        "flock",
        "-n",
        `${a}/lockfile`,
        "flock",
        "-n",
        `${b}/lockfile`,
        "echo",
        "both",
      ]);
      assert.equal(across.code, 0, across.stderr);
      assert.equal(across.stdout.trim(), "both", "B got the lock A holds");
      const same = await runBounded([
        "flock",
        "-n",
        `${a}/lockfile`,
        "flock",
        "-n",
        `${a}/lockfile`,
        "echo",
        "both",
      ]);
      assert.equal(same.code, 1, "a second flock through the same mount is refused");
      assert.equal(same.stdout, "");
    });

    await t.step("link() works through OpenSSH's extension, but the link count always reads 1", async () => {
      await Deno.writeTextFile(`${a}/record`, "claim");
      await Deno.link(`${a}/record`, `${a}/claim`);
      assert.equal(await Deno.readTextFile(`${b}/claim`), "claim");
      assert.equal((await Deno.stat(`${fs.export}/record`)).nlink, 2, "the server's file has two names");
      assert.equal((await Deno.stat(`${a}/record`)).nlink, 1, "SFTP carries no link count");
      assert.equal(await errnoOf(() => Deno.link(`${b}/record`, `${b}/claim`)), "EEXIST");
    });

    await t.step(
      "exclusive create and mkdir are atomic across mounts; rename across mounts is EXDEV",
      async () => {
        await Deno.writeTextFile(`${a}/excl`, "a", { createNew: true });
        assert.equal(
          await errnoOf(() => Deno.writeTextFile(`${b}/excl`, "b", { createNew: true })),
          "EEXIST",
        );
        await Deno.mkdir(`${b}/dirclaim`);
        assert.equal(await errnoOf(() => Deno.mkdir(`${c}/dirclaim`)), "EEXIST");
        assert.equal(await errnoOf(() => Deno.rename(`${a}/excl`, `${b}/moved`)), "EXDEV");
      },
    );
  },
});

Deno.test({
  name: "startSshfs({ hardLinks: false }) refuses link() with EPERM, as SFTP servers without hard links do",
  ignore: !available,
  fn: async () => {
    await using fs = await startSshfs({ clients: 1, hardLinks: false });
    const [a] = fs.mounts;
    await Deno.writeTextFile(`${a}/record`, "claim");
    const ln = await runBounded(["ln", `${a}/record`, `${a}/claim`]);
    assert.equal(ln.code, 1);
    assert.match(ln.stderr, /Operation not permitted/);
    assert.equal(await errnoOf(() => Deno.link(`${a}/record`, `${a}/claim`)), "EPERM");
    assert.equal(await pathExists(`${fs.export}/claim`), false);
  },
});

Deno.test({
  name: "startSshfs() disposal unmounts, stops every process and removes its dir, even when the test throws",
  ignore: !available,
  fn: async () => {
    let dir = "";
    let pids: number[] = [];
    let held: Deno.FsFile | undefined;
    await assert.rejects(async () => {
      await using fs = await startSshfs({ clients: 2 });
      dir = fs.dir;
      pids = fs.pids;
      // A file left open makes the mount busy: dispose must still get it off (lazily).
      held = await Deno.open(`${fs.mounts[0]}/open-file`, { write: true, create: true });
      throw new Error("the test failed");
    }, /the test failed/);
    held?.close();
    assert.equal(pids.length, 3);
    assert.deepEqual(pids.filter(isAlive), [], "sshd and both sshfs clients are gone");
    assert.deepEqual(sshfsMountsUnder(dir), []);
    assert.equal(await pathExists(dir), false);
  },
});
