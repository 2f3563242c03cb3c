/**
 * The scheduler and cron recipes in scripts/ run as LSF, Slurm and cron would run them (sh, the job's
 * variables, a fake nvidia-smi, fake scontrol/sinfo/bhosts/badmin/logger logging their argv), with MLAGENT_BIN
 * pointing at this checkout or at nothing; the systemd units pass `systemd-analyze verify`. The recipes
 * against a real Slurm are in tests/scheduler/slurm_test.ts.
 */
import assert from "node:assert/strict";
import { MAIN_TS } from "../support/cli.ts";
import { FIXTURES, hermeticVars, REPO_ROOT, tempDir } from "../support/env.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";
import { makeNode, testProfile, writeProfile, writeVenv } from "../support/node_states.ts";
import { waitForNumberIn } from "../support/procs.ts";
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

const IDLE_NODE = Deno.readTextFileSync(`${FIXTURES}/slurm/scontrol_show_node_22.05.8_idle.txt`);

/** Fake Slurm commands for a node named vm: scontrol shows it idle and logs updates; sinfo prints `reason`. */
async function fakeSlurm(bin: string, reason = "none") {
  await writeFakeBin(bin, "scontrol", [{ whenArgsContain: "show", stdout: IDLE_NODE }, {
    whenArgsContain: "update",
  }]);
  await writeFakeBin(bin, "sinfo", { stdout: `${reason}\n` });
  await writeFakeBin(bin, "logger", {});
}

/** Every recipe says the same about a missing binary, in its comment and on stderr. */
const MISSING_RULE = "mlagent missing (the same rule in every recipe";

Deno.test("scripts/lsf/mlagent-pre-exec.sh: 0 runs, a job fault aborts with 99, a missing mlagent re-pends with 1 and says so", async () => {
  await using d = await tempDir();
  const { n, vars } = await nodeWithMlagent(d.path, { stdoutFile: ONE_GPU_XML });
  await writeFakeBin(n.bin, "logger", {});
  const job = { ...vars, LSB_JOBID: "101", CUDA_VISIBLE_DEVICES: "0" };
  const ok = await sh("lsf/mlagent-pre-exec.sh", [], job);
  assert.equal(ok.code, 0);
  assert.match(ok.stderr, /"verdict":"run"/, "the one-line verdict goes to stderr");
  assert.equal((await sh("lsf/mlagent-pre-exec.sh", [], { ...job, MLAGENT_PROFILE: "no-such" })).code, 99);
  const missing = await sh("lsf/mlagent-pre-exec.sh", [], { ...job, MLAGENT_BIN: `${d.path}/absent` });
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /mlagent\.binary .*absent is missing or not executable on .* \(lsf pre-exec, job 101\)/,
  );
  assert.match((await fakeCalls(n.bin, "logger")).join("\n"), /-t mlagent .*mlagent\.binary/);
});

Deno.test("scripts/slurm/prolog.sh drains a hung GPU with mlagent's own reason; its verdict line reaches stderr", async () => {
  await using d = await tempDir();
  const { n, vars } = await nodeWithMlagent(d.path, { sleepS: 30 });
  await fakeSlurm(n.bin);
  const job = {
    ...vars,
    SLURM_JOB_ID: "202",
    SLURM_JOB_GPUS: "0",
    SLURMD_NODENAME: "vm",
    MLAGENT_PROLOGUE_TIMEOUT: "1",
  };
  const prolog = await sh("slurm/prolog.sh", [], job);
  assert.equal(prolog.code, 1, prolog.stderr);
  assert.match(prolog.stderr, /"verdict":"node-fault"/, "no --quiet: the line slurmd logs on failure");
  const log = (await Deno.readTextFile(`${n.stateDir}/prologue.log`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.deepEqual(log.at(-1).timed_out, ["gpu.visible"]);
  const update = (await fakeCalls(n.bin, "scontrol")).find((c) => c.startsWith("update"));
  assert.match(
    update ?? "",
    /^update nodename=vm state=drain reason=mlagent: gpu\.visible .*\(prologue, job 202\)$/,
  );
});

Deno.test("scripts/slurm/prolog.sh and health.sh with mlagent missing: say so, drain naming it, exit 1; an admin's drain is kept", async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  const vars = { ...n.vars, MLAGENT_BIN: `${d.path}/absent`, SLURMD_NODENAME: "vm", SLURM_JOB_ID: "7" };
  await fakeSlurm(n.bin);
  for (const [script, where] of [["slurm/prolog.sh", "prologue"], ["slurm/health.sh", "health"]]) {
    const r = await sh(script, [], vars);
    assert.equal(r.code, 1, script);
    assert.match(r.stderr, /mlagent\.binary .*absent is missing or not executable on vm/);
    const updates = (await fakeCalls(n.bin, "scontrol")).filter((c) => c.startsWith("update"));
    assert.equal(
      updates.at(-1),
      `update nodename=vm state=drain reason=mlagent: mlagent.binary ${d.path}/absent missing (${where})`,
    );
  }
  assert.equal((await fakeCalls(n.bin, "logger")).length, 2);
  await Deno.remove(`${n.bin}/scontrol.calls`);
  await fakeSlurm(n.bin, "maintenance: PSU swap");
  assert.equal((await sh("slurm/prolog.sh", [], vars)).code, 1);
  assert.deepEqual((await fakeCalls(n.bin, "scontrol")).filter((c) => c.startsWith("update")), []);
});

Deno.test("scripts/slurm/task_prolog.sh prints a job's problems with or without a profile, once per node, and always exits 0", async () => {
  await using d = await tempDir();
  const { n, vars } = await nodeWithMlagent(d.path, { stdoutFile: ONE_GPU_XML });
  await writeFakeBin(n.bin, "logger", {});
  const job = { ...vars, SLURM_JOB_ID: "303", SLURM_LOCALID: "0" };
  const bad = await sh("slurm/task_prolog.sh", [], { ...job, CUDA_VISIBLE_DEVICES: "0,x" });
  assert.equal(bad.code, 0);
  assert.match(bad.stdout, /^print FAIL gpu\.request +\[job fault\] malformed CUDA_VISIBLE_DEVICES="0,x"/m);
  assert.match(bad.stdout, /^print +fix: /m);
  assert.doesNotMatch(bad.stdout, /^print (ok|skip) /m, "without a profile only the problems");
  const fine = await sh("slurm/task_prolog.sh", [], { ...job, CUDA_VISIBLE_DEVICES: "0" });
  assert.equal(fine.stdout, "", "nothing to say about a healthy job without a profile");
  const profile = await sh("slurm/task_prolog.sh", [], { ...job, MLAGENT_PROFILE: "no-such" });
  assert.match(profile.stdout, /^print FAIL profile .*unknown profile "no-such"/m);
  for (const line of profile.stdout.trim().split("\n")) {
    assert.match(line, /^print /, "TaskProlog lines Slurm understands");
  }
  const otherTask = await sh("slurm/task_prolog.sh", [], {
    ...job,
    SLURM_LOCALID: "1",
    CUDA_VISIBLE_DEVICES: "0,x",
  });
  assert.equal(otherTask.stdout, "", "one task per node speaks");
  const missing = await sh("slurm/task_prolog.sh", [], { ...job, MLAGENT_BIN: `${d.path}/absent` });
  assert.equal(missing.code, 0);
  assert.match(missing.stdout, /^print mlagent: mlagent\.binary .*absent is missing or not executable/m);
});

Deno.test("scripts/lsf/health.sh closes the host when mlagent is missing, unless an admin closed it", async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  await writeFakeBin(n.bin, "logger", {});
  await writeFakeBin(n.bin, "badmin", {});
  const vars = { ...n.vars, MLAGENT_BIN: `${d.path}/absent`, LSF_PROFILE: `${d.path}/no-profile.lsf` };
  await writeFakeBin(n.bin, "bhosts", { stdoutFile: `${FIXTURES}/lsf/bhosts_l_ok.txt` });
  const r = await sh("lsf/health.sh", [], vars);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /mlagent\.binary .*absent is missing or not executable .*\(lsf health check\)/);
  assert.match(
    (await fakeCalls(n.bin, "badmin"))[0],
    /^hclose -C mlagent: mlagent\.binary .*absent missing \(health\) /,
  );
  await writeFakeBin(n.bin, "bhosts", { stdoutFile: `${FIXTURES}/lsf/bhosts_l_closed_Adm_admin.txt` });
  await sh("lsf/health.sh", [], vars);
  assert.equal((await fakeCalls(n.bin, "badmin")).length, 1, "an admin's close is kept");
});

Deno.test("scripts/cron/mlagent-cron.sh writes this node's status for the fleet; a missing mlagent says so and exits 1", async () => {
  await using d = await tempDir();
  const { n, vars } = await nodeWithMlagent(d.path, { stdoutFile: ONE_GPU_XML });
  await writeFakeBin(n.bin, "logger", {});
  await Deno.mkdir(`${d.path}/fleet`);
  const job = { ...vars, MLAGENT_FLEET_DIR: `${d.path}/fleet`, MLAGENT_HOSTNAME: "gpu-17" };
  const r = await sh("cron/mlagent-cron.sh", ["fleet"], job);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(await Deno.readTextFile(`${d.path}/fleet/gpu-17.json`)).node.host, "gpu-17");
  const heal = await sh("cron/mlagent-cron.sh", ["heal"], {
    ...job,
    MLAGENT_TEXTFILE: `${d.path}/mlagent.prom`,
  });
  assert.equal(heal.code, 0, heal.stderr);
  assert.match(await Deno.readTextFile(`${d.path}/mlagent.prom`), /^mlagent_status_timestamp_seconds /m);
  const missing = await sh("cron/mlagent-cron.sh", ["fleet"], { ...job, MLAGENT_BIN: `${d.path}/absent` });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /mlagent\.binary .*absent is missing or not executable .*\(cron fleet\)/);
  assert.equal((await fakeCalls(n.bin, "logger")).length, 1);
  assert.equal((await sh("cron/mlagent-cron.sh", ["bogus"], job)).code, 2);
});

Deno.test("every scheduler and cron recipe states the same rule for a missing mlagent", async () => {
  for (
    const script of [
      "slurm/prolog.sh",
      "slurm/task_prolog.sh",
      "slurm/health.sh",
      "lsf/mlagent-pre-exec.sh",
      "lsf/health.sh",
      "cron/mlagent-cron.sh",
    ]
  ) {
    assert.ok((await Deno.readTextFile(`${REPO_ROOT}/scripts/${script}`)).includes(MISSING_RULE), script);
  }
  assert.match(
    await Deno.readTextFile(`${REPO_ROOT}/scripts/cron/mlagent.crontab`),
    /same rule as the Slurm and LSF\s+recipes/,
  );
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

Deno.test("scripts/slurm/job_run.sh and scripts/lsf/job_run.sh run the command in the venv and pass its exit code and signals", async () => {
  await using d = await tempDir();
  const { n, vars } = await nodeWithMlagent(d.path, { stdoutFile: ONE_GPU_XML });
  const tiny = testProfile("tiny");
  await writeProfile(n, tiny);
  await writeVenv(n.root, "tiny", { status: "ready", profile: tiny });
  const code =
    "import os, sys; print(sys.prefix, os.environ['CUDA_VISIBLE_DEVICES'], os.environ['HF_HUB_OFFLINE']); sys.exit(3)";
  const slurm = {
    ...vars,
    MLAGENT_PROFILE: "tiny",
    SLURM_JOB_ID: "404",
    SLURM_SUBMIT_DIR: d.path,
    CUDA_VISIBLE_DEVICES: "2",
  };
  const s = await sh("slurm/job_run.sh", ["python", "-c", code], slurm);
  assert.equal(s.code, 3, s.stderr);
  assert.equal(s.stdout.trim(), `${n.root}/tiny 2 1`);
  const record = JSON.parse(await Deno.readTextFile(`${d.path}/mlagent-run-404.json`));
  assert.equal(record.exit_code, 3);
  assert.equal(record.job_id, "404");
  const lsf = {
    ...vars,
    MLAGENT_PROFILE: "tiny",
    LSB_JOBID: "505",
    LS_SUBCWD: d.path,
    CUDA_VISIBLE_DEVICES: "0",
  };
  // As `bsub < job_run.sh` runs it: no arguments, the command in MLAGENT_COMMAND.
  const l = await sh("lsf/job_run.sh", [], { ...lsf, MLAGENT_COMMAND: "python -c exit(4)" });
  assert.equal(l.code, 4, l.stderr);
  assert.equal(JSON.parse(await Deno.readTextFile(`${d.path}/mlagent-run-505.json`)).exit_code, 4);
  await writeProfile(n, testProfile("absent"));
  const notReady = await sh("lsf/job_run.sh", ["true"], { ...lsf, MLAGENT_PROFILE: "absent" });
  assert.equal(notReady.code, 1);
  assert.match(notReady.stderr, /hint: mlagent install absent/);
  // Slurm's --signal=B:USR1 goes to the batch shell, which is mlagent after exec; the command gets it.
  const pidFile = `${d.path}/py.pid`;
  const waiting = `import os, signal, sys, time
signal.signal(signal.SIGUSR1, lambda *a: sys.exit(10))
open("${pidFile}", "w").write(str(os.getpid()))
time.sleep(60)`;
  const child = new Deno.Command("sh", {
    args: [`${REPO_ROOT}/scripts/slurm/job_run.sh`, "python", "-c", waiting],
    env: hermeticVars({ ...slurm, SLURM_JOB_ID: "406" }),
    clearEnv: true,
    cwd: "/tmp",
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitForNumberIn(pidFile, 30_000);
  child.kill("SIGUSR1");
  assert.equal((await child.status).code, 10);
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
