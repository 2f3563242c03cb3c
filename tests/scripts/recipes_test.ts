/**
 * The scheduler recipes in scripts/ run as LSF and Slurm would run them (sh, the job's variables, a fake
 * nvidia-smi), with MLAGENT_BIN pointing at this checkout; the systemd units pass `systemd-analyze verify`.
 */
import assert from "node:assert/strict";
import { MAIN_TS } from "../support/cli.ts";
import { FIXTURES, hermeticVars, REPO_ROOT, tempDir } from "../support/env.ts";
import { writeFakeBin } from "../support/fake_bin.ts";
import { makeNode, testProfile, writeProfile } from "../support/node_states.ts";
import { startIndex, testDists } from "../support/pypi.ts";

const ONE_GPU_XML = `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`;

async function sh(script: string, args: string[], env: Record<string, string>) {
  const out = await new Deno.Command("sh", {
    args: [`${REPO_ROOT}/scripts/${script}`, ...args],
    env: hermeticVars(env),
    clearEnv: true,
    cwd: "/tmp",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function nodeWithMlagent(dir: string, smi: Parameters<typeof writeFakeBin>[2]) {
  const n = await makeNode(dir);
  await writeFakeBin(n.bin, "nvidia-smi", smi);
  await writeFakeBin(n.bin, "dmesg", { stdout: "" });
  const bin = `${dir}/mlagent`;
  await Deno.writeTextFile(bin, `#!/bin/sh\nexec '${Deno.execPath()}' run -A --quiet '${MAIN_TS}' "$@"\n`, {
    mode: 0o755,
  });
  return { n, vars: { ...n.vars, MLAGENT_BIN: bin } };
}

Deno.test("scripts/lsf/mlagent-pre-exec.sh: 0 runs, a job fault aborts with 99, a missing mlagent re-pends with 1", async () => {
  await using d = await tempDir();
  const { vars } = await nodeWithMlagent(d.path, { stdoutFile: ONE_GPU_XML });
  const job = { ...vars, LSB_JOBID: "101", CUDA_VISIBLE_DEVICES: "0" };
  assert.equal((await sh("lsf/mlagent-pre-exec.sh", [], job)).code, 0);
  assert.equal((await sh("lsf/mlagent-pre-exec.sh", [], { ...job, MLAGENT_PROFILE: "no-such" })).code, 99);
  assert.equal(
    (await sh("lsf/mlagent-pre-exec.sh", [], { ...job, MLAGENT_BIN: `${d.path}/absent` })).code,
    1,
  );
});

Deno.test("scripts/slurm/prolog.sh drains on a hung GPU and task_prolog.sh only prints the job's problems", async () => {
  await using d = await tempDir();
  const { n, vars } = await nodeWithMlagent(d.path, { sleepS: 30 });
  const job = { ...vars, SLURM_JOB_ID: "202", SLURM_JOB_GPUS: "0", MLAGENT_PROLOGUE_TIMEOUT: "1" };
  const prolog = await sh("slurm/prolog.sh", [], job);
  assert.equal(prolog.code, 1, prolog.stderr);
  const log = (await Deno.readTextFile(`${n.stateDir}/prologue.log`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.deepEqual(log.at(-1).timed_out, ["gpu.visible"]);

  await writeFakeBin(n.bin, "nvidia-smi", { stdoutFile: ONE_GPU_XML });
  const task = await sh("slurm/task_prolog.sh", [], { ...job, MLAGENT_PROFILE: "no-such" });
  assert.equal(task.code, 0);
  assert.match(task.stdout, /^print FAIL profile .*unknown profile "no-such"/m);
  for (const line of task.stdout.trim().split("\n")) {
    assert.match(line, /^print /, "TaskProlog lines Slurm understands");
  }
});

Deno.test("scripts/slurm/install_once_per_node.sh: two jobs on one node install once and both run", async () => {
  await using d = await tempDir();
  const { n, vars } = await nodeWithMlagent(d.path, { stdoutFile: ONE_GPU_XML });
  await writeProfile(n, testProfile("tiny", { stages: [{ name: "one", packages: ["mla-gamma==1.0"] }] }));
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  const job = { ...vars, MLAGENT_PROFILE: "tiny", MLAGENT_INDEX_URL: index.url, SLURM_JOB_ID: "303" };
  const code = "import mla_gamma, sys; print('ran', sys.prefix)";
  const [a, b] = await Promise.all([
    sh("slurm/install_once_per_node.sh", ["-c", code], job),
    sh("slurm/install_once_per_node.sh", ["-c", code], job),
  ]);
  for (const r of [a, b]) {
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`ran ${n.root}/tiny`));
  }
  const wheelFetches = index.requests.filter((q) => q.path.endsWith(".whl") && q.method === "GET");
  assert.equal(wheelFetches.length, 1, "one install for two jobs");
});

const HAS_SYSTEMD_ANALYZE =
  new Deno.Command("sh", { args: ["-c", "command -v systemd-analyze"] }).outputSync().code === 0;

// Needs systemd-analyze; a machine without systemd shows this test as ignored.
Deno.test(
  { name: "scripts/systemd units pass systemd-analyze verify", ignore: !HAS_SYSTEMD_ANALYZE },
  async () => {
    await using d = await tempDir();
    // The units name /opt/mlagent/bin/mlagent; point them at an executable that exists here.
    for (const unit of ["mlagent-cache-heal.service", "mlagent-cache-heal.timer"]) {
      const text = await Deno.readTextFile(`${REPO_ROOT}/scripts/systemd/${unit}`);
      await Deno.writeTextFile(`${d.path}/${unit}`, text.replaceAll("/opt/mlagent/bin/mlagent", "/bin/true"));
    }
    const out = await new Deno.Command("systemd-analyze", {
      args: ["verify", `${d.path}/mlagent-cache-heal.service`, `${d.path}/mlagent-cache-heal.timer`],
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    const problems = stderr.split("\n").filter((l) =>
      l.includes("mlagent-cache-heal") && !/User=|user/i.test(l)
    );
    assert.deepEqual(problems, [], stderr);
  },
);
