/**
 * Install storms: six hosts (UTS namespaces with their own host names, node-local caches and lock dirs)
 * start the same `mlagent install` at once against one shared venv root. Exactly one installs, the other
 * five wait and find the venv ready, and the index serves each wheel once. Not timed: scripts/bench/storm.ts
 * measures. The index holds file downloads back a moment so that every host is queued before the install
 * can finish, however slowly six runtimes start on a loaded machine.
 */
import assert from "node:assert/strict";
import { runStorm, type StormResult, writeStormProfile } from "../../scripts/bench/storm.ts";
import { MAIN_TS } from "../support/cli.ts";
import { hermeticVars, installVars, REPO_ROOT, tempDir } from "../support/env.ts";
import { canUnshareUts } from "../support/lock_helpers.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { slurmAvailable, startSlurm } from "../support/slurm.ts";
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

Deno.test({
  name:
    "scripts/slurm/install_storm.sh under a real Slurm: its srun step installs on the node and leaves the node's report",
  ignore: !slurmAvailable(),
  sanitizeResources: false,
  async fn() {
    const dists = await testDists();
    await using index = await startIndex(dists.dir);
    await using dir = await tempDir("mlagent-storm-slurm-");
    await using cluster = await startSlurm({ gpus: 0 });
    const denoDir = JSON.parse(
      new TextDecoder().decode(
        (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output()).stdout,
      ),
    ).denoDir;
    const bin = `${dir.path}/mlagent`;
    await Deno.writeTextFile(
      bin,
      `#!/bin/sh\nDENO_DIR='${denoDir}' exec '${Deno.execPath()}' run -A --quiet '${MAIN_TS}' "$@"\n`,
      { mode: 0o755 },
    );
    const reports = `${dir.path}/reports`;
    const id = await cluster.sbatch(
      [
        "-N",
        "1",
        "-o",
        `${dir.path}/job.out`,
        `${REPO_ROOT}/scripts/slurm/install_storm.sh`,
        await writeStormProfile(dir.path),
      ],
      { env: { ...installVars(dir.path, index.url), MLAGENT_BIN: bin, MLAGENT_STORM_DIR: reports } },
    );
    const job = await cluster.waitJob(id, ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"], 180_000);
    const out = await Deno.readTextFile(`${dir.path}/job.out`).catch(() => "");
    assert.equal(job.JobState, "COMPLETED", out);
    const files = [...Deno.readDirSync(reports)].map((e) => e.name);
    assert.equal(files.length, 1, `reports: ${files}`);
    const report = JSON.parse(await Deno.readTextFile(`${reports}/${files[0]}`));
    assert.deepEqual([report.ok, report.status, report.action], [true, "ready", "created"]);
  },
});

Deno.test("scripts/lsf/install_storm.sh: an array element installs on its host; a parallel job blaunches once per distinct host", async () => {
  await using dir = await tempDir("mlagent-storm-lsf-");
  const bin = `${dir.path}/bin`;
  await Deno.mkdir(bin);
  // mlagent that reports where it ran; blaunch that logs its host and runs the command here.
  await Deno.writeTextFile(`${bin}/mlagent`, `#!/bin/sh\necho "{\\"ok\\": true, \\"argv\\": \\"$*\\"}"\n`, {
    mode: 0o755,
  });
  await Deno.writeTextFile(
    `${bin}/blaunch`,
    `#!/bin/sh\n[ "$1" = -no-shell ] || exit 64\necho "$2" >> '${dir.path}/blaunch.log'\nshift 2\nexec "$@"\n`,
    { mode: 0o755 },
  );
  const run = (vars: Record<string, string>, out: string) =>
    new Deno.Command("sh", {
      args: [`${REPO_ROOT}/scripts/lsf/install_storm.sh`, "yolo"],
      env: hermeticVars({
        ...vars,
        PATH: `${bin}:${Deno.env.get("PATH")}`,
        MLAGENT_BIN: `${bin}/mlagent`,
        MLAGENT_STORM_DIR: out,
      }),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
  const element = await run({ LSB_JOBID: "7", LSB_JOBINDEX: "3", LSB_HOSTS: "gpu-1" }, `${dir.path}/array`);
  assert.equal(element.code, 0, new TextDecoder().decode(element.stderr));
  const [report] = [...Deno.readDirSync(`${dir.path}/array`)].map((e) => e.name);
  assert.match(await Deno.readTextFile(`${dir.path}/array/${report}`), /"argv": "install yolo --json"/);
  const parallel = await run(
    { LSB_JOBID: "8", LSB_HOSTS: "gpu-1 gpu-1 gpu-2 gpu-3 gpu-3" },
    `${dir.path}/par`,
  );
  assert.equal(parallel.code, 0, new TextDecoder().decode(parallel.stderr));
  assert.deepEqual((await Deno.readTextFile(`${dir.path}/blaunch.log`)).trim().split("\n").sort(), [
    "gpu-1",
    "gpu-2",
    "gpu-3",
  ]);
});
