/**
 * Install storms: six hosts (UTS namespaces with their own host names, node-local caches and lock dirs)
 * start the same `mlagent install` at once against one shared venv root. Exactly one installs, the other
 * five wait and find the venv ready, and the index serves each wheel once. Not timed: scripts/bench/storm.ts
 * measures. The index holds file downloads back a moment so that every host is queued before the install
 * can finish, however slowly six runtimes start on a loaded machine.
 */
import assert from "node:assert/strict";
import { runStorm, type StormResult, writeStormProfile } from "../../scripts/bench/storm.ts";
import { tempDir } from "../support/env.ts";
import { canUnshareUts } from "../support/lock_helpers.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { sshfsAvailable, startSshfs } from "../support/sshfs.ts";

const unshare = await canUnshareUts();

function assertOneInstall(storm: StormResult, hosts: number) {
  for (const h of storm.hosts) assert.equal(h.code, 0, `${h.host}: ${h.stderr}`);
  const installers = storm.hosts.filter((h) => h.installedStages > 0);
  assert.equal(
    installers.length,
    1,
    `installs: ${storm.hosts.map((h) => `${h.host} ${h.action}`).join(", ")}`,
  );
  assert.equal(storm.waitedReady, hosts - 1, storm.hosts.map((h) => `${h.host}: ${h.stderr}`).join("\n"));
  assert.ok(storm.fetches.size >= 3, `files fetched: ${[...storm.fetches.keys()]}`);
  for (const [file, n] of storm.fetches) assert.equal(n, 1, `${file} fetched ${n} times`);
  for (const h of storm.hosts) assert.doesNotMatch(h.stderr, /broke stale lock|Operation not permitted/);
}

Deno.test({
  name:
    "install storm: six hosts on one shared network root, one install, five find it ready, each wheel fetched once",
  ignore: !unshare,
  async fn() {
    const dists = await testDists();
    await using index = await startIndex(dists.dir);
    await using dir = await tempDir("mlagent-storm-");
    index.delayPath("/files/", 1500);
    const shared = `${dir.path}/shared`;
    const storm = await runStorm({
      dir: dir.path,
      index,
      profile: await writeStormProfile(dir.path),
      rootFor: () => `${shared}/venvs`,
      vars: { MLAGENT_FORCE_NETWORK_FS: shared },
    }, 6);
    assertOneInstall(storm, 6);
    // The venv's lock was a lease (a network root), released: nothing held is left.
    assert.deepEqual(
      [...Deno.readDirSync(`${shared}/venvs`)].map((e) => e.name).filter((n) => n.endsWith(".lock")),
      [],
    );
  },
});

Deno.test({
  name: "install storm on sshfs without hard links: three hosts on their own mounts, one install, no EPERM",
  ignore: !unshare || !sshfsAvailable(),
  sanitizeResources: false,
  async fn() {
    const dists = await testDists();
    await using index = await startIndex(dists.dir);
    await using dir = await tempDir("mlagent-storm-");
    await using fs = await startSshfs({
      clients: 3,
      hardLinks: false,
      mountOptions: ["dir_cache=no", "noauto_cache"],
    });
    index.delayPath("/files/", 1500);
    const storm = await runStorm({
      dir: dir.path,
      index,
      profile: await writeStormProfile(dir.path),
      rootFor: (i) => `${fs.mounts[i]}/venvs`,
    }, 3);
    assertOneInstall(storm, 3);
    assert.equal((await Deno.readTextFile(`${fs.export}/venvs/.mlagent-claim-method`)).trim(), "exclusive");
  },
});
