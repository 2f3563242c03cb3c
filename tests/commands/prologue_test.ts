/**
 * `mlagent prologue` as LSF and Slurm run it: real processes, fake nvidia-smi / dmesg / stat on PATH that
 * print captured outputs, fail, print bad fields or hang past the deadline, venvs in every state.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { FIXTURES, tempDir } from "../support/env.ts";
import { type FakeSpec, writeFakeBin } from "../support/fake_bin.ts";
import { type FakeNode, makeNode, testProfile, writeProfile, writeVenv } from "../support/node_states.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { groupAlive, waitForNumberIn } from "../support/procs.ts";

const SMI = `${FIXTURES}/nvidia-smi`;
const ONE_GPU_XML = `${SMI}/xml/q_x_535.86.05_1xRTX4090.xml`;
const A30_ERR_TABLE = `${SMI}/table/table_525.85.12_8xA30_one-GPU-ERR.txt`;

type Sched = "lsf" | "slurm" | "none";
const JOB_VARS: Record<Sched, Record<string, string>> = {
  lsf: { LSB_JOBID: "4242" },
  slurm: { SLURM_JOB_ID: "4242" },
  none: {},
};

/** nvidia-smi answering only in the table form (old drivers, site wrappers). */
const tableOnly = (file: string): FakeSpec[] => [
  { whenArgsContain: "-q", exitCode: 1 },
  { whenArgsContain: "--query", exitCode: 1 },
  { whenArgsContain: "-L", exitCode: 1 },
  { stdoutFile: file },
];

async function node(dir: string, smi: FakeSpec | FakeSpec[] | null, dmesg = ""): Promise<FakeNode> {
  const n = await makeNode(dir);
  if (smi) await writeFakeBin(n.bin, "nvidia-smi", smi);
  await writeFakeBin(n.bin, "dmesg", { stdout: dmesg });
  return n;
}

function prologue(n: FakeNode, sched: Sched, args: string[] = [], env: Record<string, string> = {}) {
  return runMlagent(["prologue", "--json", ...args], { env: { ...n.vars, ...JOB_VARS[sched], ...env } });
}

interface Report {
  duration_ms: number;
  verdict: string;
  exit_code: number;
  timed_out: string[];
  checks: { id: string; status: string; fault: string | null; message: string; timed_out: boolean }[];
}

const checkOf = (r: Report, id: string) => r.checks.find((c) => c.id === id);

Deno.test("prologue on a healthy one-GPU node runs the job under LSF, Slurm and by hand", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  for (const sched of ["lsf", "slurm", "none"] as const) {
    const r = await prologue(n, sched, [], { CUDA_VISIBLE_DEVICES: "0" });
    const rep = r.json<Report>();
    assert.equal(r.code, 0, `${sched}: ${r.stdout}`);
    assert.equal(rep.verdict, "run");
    assert.equal(checkOf(rep, "gpu.visible")?.status, "pass");
    assert.equal(checkOf(rep, "kernel.xid")?.status, "pass");
  }
});

Deno.test("prologue with a driver that does not answer is a node fault: LSF re-pends (1), Slurm drains (1)", async () => {
  await using d = await tempDir();
  const n = await node(d.path, {
    stdoutFile: `${SMI}/misc/smi_fail_couldnt_communicate.txt`,
    exitCode: 9,
  });
  for (const sched of ["lsf", "slurm"] as const) {
    const r = await prologue(n, sched, [], { CUDA_VISIBLE_DEVICES: "0" });
    assert.equal(r.code, 1, r.stdout);
    const rep = r.json<Report>();
    assert.equal(rep.verdict, "node-fault");
    assert.match(checkOf(rep, "gpu.visible")!.message, /cannot communicate with the NVIDIA driver/);
  }
});

Deno.test("prologue judges only the job's GPUs: a neighbour's ERR! GPU passes, the job's own fails the node", async () => {
  await using d = await tempDir();
  const n = await node(d.path, tableOnly(A30_ERR_TABLE));
  const fine = await prologue(n, "slurm", [], { CUDA_VISIBLE_DEVICES: "0,1" });
  assert.equal(fine.code, 0, fine.stdout);
  const bad = await prologue(n, "lsf", [], { SLURM_JOB_GPUS: "3", CUDA_VISIBLE_DEVICES: "3" });
  assert.equal(bad.code, 1, bad.stdout);
  const h = checkOf(bad.json<Report>(), "gpu.health")!;
  assert.equal(h.status, "fail");
  assert.match(h.message, /GPU 3 reports ERR!/);
});

Deno.test("prologue when the job was given more GPUs than the node shows is a node fault naming the missing one", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  const r = await prologue(n, "slurm", [], { SLURM_JOB_GPUS: "0,1" });
  assert.equal(r.code, 1, r.stdout);
  assert.match(checkOf(r.json<Report>(), "gpu.visible")!.message, /GPU 1 \(SLURM_JOB_GPUS\)/);
});

Deno.test("prologue with a hung nvidia-smi ends at the deadline and names what timed out", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { sleepS: 30, stdoutFile: ONE_GPU_XML });
  for (const sched of ["lsf", "slurm"] as const) {
    const t0 = performance.now();
    const r = await prologue(n, sched, ["--timeout", "1.5"], { CUDA_VISIBLE_DEVICES: "0" });
    const wall = performance.now() - t0;
    assert.equal(r.code, 1, r.stdout);
    const rep = r.json<Report>();
    assert.ok(rep.timed_out.includes("gpu.visible"), JSON.stringify(rep.timed_out));
    assert.ok(checkOf(rep, "gpu.visible")!.timed_out);
    // The deadline is mlagent's own time; the wall clock adds the runtime's start, slow on a loaded machine.
    assert.ok(rep.duration_ms < 2500, `prologue took ${rep.duration_ms} ms for a 1.5 s deadline`);
    assert.ok(wall < 20_000, `took ${wall} ms`);
  }
});

Deno.test("prologue --install past its deadline leaves no installer behind: the build's process group dies with mlagent", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  const vars = { MLAGENT_INDEX_URL: index.url, MLAGENT_CACHE_DIR: `${d.path}/cache` };
  // The venv exists beforehand, so the prologue's deadline goes to the slow stage alone.
  const first = { name: "first", packages: ["mla-gamma==1.0"] };
  await writeProfile(n, testProfile("slowbuild", { stages: [first] }));
  const pre = await runMlagent(["install", "slowbuild", "--no-models"], {
    env: { ...n.vars, ...vars },
    timeoutMs: 180_000,
  });
  assert.equal(pre.code, 0, pre.stderr);
  await writeProfile(
    n,
    testProfile("slowbuild", { stages: [first, { name: "slow", packages: ["mla-slow==1.0"] }] }),
  );
  const started = `${d.path}/build.pgid`;
  const run = prologue(n, "slurm", ["--profile", "slowbuild", "--install", "--timeout", "15"], {
    ...vars,
    MLA_SLOW_BUILD_S: "120",
    MLA_BUILD_STARTED: started,
  });
  const pgid = await waitForNumberIn(started);
  const r = await run;
  assert.equal(r.code, 1, r.stdout);
  assert.ok(r.json<Report>().timed_out.includes("venv.ready"));
  assert.equal(groupAlive(pgid), false, "the sdist build kept running after the prologue ended");
});

Deno.test("prologue with a filesystem whose stat hangs (dead NFS) is a node fault within the deadline", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  await writeProfile(n, testProfile("demo"));
  await writeFakeBin(n.bin, "stat", [{ whenArgsContain: n.root, sleepS: 30 }, { stdout: "directory\n" }]);
  const t0 = performance.now();
  const r = await prologue(n, "slurm", ["--profile", "demo", "--timeout", "1.5"]);
  const wall = performance.now() - t0;
  assert.equal(r.code, 1, r.stdout);
  const rep = r.json<Report>();
  const venv = checkOf(rep, "venv.ready")!;
  assert.equal(venv.fault, "node");
  assert.match(venv.message, /did not answer a stat/);
  assert.ok(rep.timed_out.includes("venv.ready"));
  assert.ok(rep.duration_ms < 2500, `prologue took ${rep.duration_ms} ms for a 1.5 s deadline`);
  assert.ok(wall < 20_000, `took ${wall} ms`);
});

Deno.test("prologue with an unknown profile is a job fault: LSF 99 or LSB_EXIT_PRE_ABORT, Slurm 0 with print lines, by hand 2", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  const lsf = await prologue(n, "lsf", ["--profile", "no-such"]);
  assert.equal(lsf.code, 99, lsf.stdout);
  assert.equal(lsf.json<Report>().verdict, "job-fault");
  const abort = await prologue(n, "lsf", ["--profile", "no-such"], { LSB_EXIT_PRE_ABORT: "42" });
  assert.equal(abort.code, 42);
  const slurm = await runMlagent(["prologue", "--profile", "no-such"], {
    env: { ...n.vars, ...JOB_VARS.slurm },
  });
  assert.equal(slurm.code, 0);
  assert.match(slurm.stdout, /^print FAIL profile .*unknown profile "no-such"/m);
  assert.match(slurm.stdout, /^print mlagent prologue: JOB FAULT/m);
  const user = await prologue(n, "none", ["--profile", "no-such"]);
  assert.equal(user.code, 2);
  assert.equal(user.json<{ error: { code: string } }>().error.code, "bad-input");
  const sched = await prologue(n, "none", ["--scheduler", "pbs"]);
  assert.equal(sched.code, 2);
});

Deno.test("prologue with a malformed CUDA_VISIBLE_DEVICES is a job fault for each scheduler", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  const lsf = await prologue(n, "lsf", [], { CUDA_VISIBLE_DEVICES: "0,,1" });
  assert.equal(lsf.code, 99, lsf.stdout);
  assert.match(checkOf(lsf.json<Report>(), "gpu.request")!.message, /malformed CUDA_VISIBLE_DEVICES/);
  const slurm = await prologue(n, "slurm", [], { CUDA_VISIBLE_DEVICES: "0,,1" });
  assert.equal(slurm.code, 0);
  assert.equal(slurm.json<Report>().verdict, "job-fault");
  const user = await prologue(n, "none", [], { CUDA_VISIBLE_DEVICES: "0,,1" });
  assert.equal(user.code, 2, "by hand: bad input");
});

Deno.test("prologue maps each venv state: ready runs, failed/outdated/missing are job faults, a gone interpreter a node fault", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  const p = testProfile("demo");
  await writeProfile(n, p);
  const old = testProfile("demo", { stages: [{ name: "one", packages: ["mla-alpha==0.9"] }] });
  const rows: [
    string,
    Parameters<typeof writeVenv>[2] | null,
    { lsf: number; slurm: number; fault: string | null },
  ][] = [
    ["ready", { status: "ready", profile: p }, { lsf: 0, slurm: 0, fault: null }],
    ["failed", { status: "failed", profile: p }, { lsf: 99, slurm: 0, fault: "job" }],
    ["outdated", { status: "ready", profile: old }, { lsf: 99, slurm: 0, fault: "job" }],
    ["missing", null, { lsf: 99, slurm: 0, fault: "job" }],
    ["interpreter gone", { status: "ready", profile: p, python: "gone" }, {
      lsf: 1,
      slurm: 1,
      fault: "node",
    }],
  ];
  for (const [name, spec, want] of rows) {
    await Deno.remove(`${n.root}/demo`, { recursive: true }).catch(() => {});
    if (spec) await writeVenv(n.root, "demo", spec);
    for (const sched of ["lsf", "slurm"] as const) {
      const r = await prologue(n, sched, ["--profile", "demo"]);
      assert.equal(r.code, want[sched], `${name} under ${sched}: ${r.stdout}`);
      assert.equal(checkOf(r.json<Report>(), "venv.ready")!.fault, want.fault, name);
    }
  }
});

Deno.test("prologue fails the node on a recent Xid 79 and only warns on an application Xid 13", async () => {
  await using d = await tempDir();
  const now = new Date().toISOString().replace("Z", "+00:00");
  const n79 = await node(
    `${d.path}`,
    { stdoutFile: ONE_GPU_XML },
    `${now} NVRM: Xid (PCI:0000:01:00): 79, pid=1, GPU has fallen off the bus.\n`,
  );
  const r = await prologue(n79, "slurm");
  assert.equal(r.code, 1, r.stdout);
  assert.match(checkOf(r.json<Report>(), "kernel.xid")!.message, /Xid 79 on 0000:01:00/);
  await writeFakeBin(n79.bin, "dmesg", {
    stdout: `${now} NVRM: Xid (PCI:0000:01:00): 13, pid=1, Graphics Exception\n`,
  });
  const w = await prologue(n79, "slurm");
  assert.equal(w.code, 0, w.stdout);
  assert.equal(checkOf(w.json<Report>(), "kernel.xid")!.status, "warn");
  const old = "2020-01-01T00:00:00,000000+00:00 NVRM: Xid (PCI:0000:01:00): 79, pid=1, old\n";
  await writeFakeBin(n79.bin, "dmesg", { stdout: old });
  assert.equal((await prologue(n79, "slurm")).code, 0, "an Xid outside the window is history");
});

Deno.test("prologue appends one JSON line per run to the prologue log and writes it to stderr", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  await prologue(n, "lsf", ["--profile", "no-such"]);
  const r = await prologue(n, "slurm");
  const lines = (await Deno.readTextFile(`${n.stateDir}/prologue.log`)).trim().split("\n");
  assert.equal(lines.length, 2);
  const [first, second] = lines.map((l) => JSON.parse(l));
  assert.equal(first.verdict, "job-fault");
  assert.equal(first.exit_code, 99);
  assert.equal(first.job_id, "4242");
  assert.equal(second.scheduler, "slurm");
  assert.ok(r.stderr.includes(lines[1]));
});

Deno.test("prologue fails as the job's fault when the job asked for fewer GPUs than the profile needs", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  await writeProfile(n, testProfile("big", { gpu: { required: true, min_count: 2 } }));
  await writeVenv(n.root, "big", {
    status: "ready",
    profile: testProfile("big", { gpu: { required: true, min_count: 2 } }),
  });
  const r = await prologue(n, "lsf", ["--profile", "big"], { CUDA_VISIBLE_DEVICES: "0" });
  assert.equal(r.code, 99, r.stdout);
  assert.equal(checkOf(r.json<Report>(), "gpu.request")!.fault, "job");
});

Deno.test("prologue --install builds a missing venv under its lock, then lets the job run", async () => {
  await using d = await tempDir();
  const n = await node(d.path, { stdoutFile: ONE_GPU_XML });
  await writeProfile(n, testProfile("tiny", { stages: [{ name: "one", packages: ["mla-gamma==1.0"] }] }));
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  const vars = { MLAGENT_INDEX_URL: index.url };
  const without = await prologue(n, "lsf", ["--profile", "tiny"], vars);
  assert.equal(without.code, 99, "no venv and no --install: the job's fault");
  const r = await prologue(n, "lsf", ["--profile", "tiny", "--install"], vars);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const rep = r.json<Report & { installed: { action: string } | null }>();
  assert.equal(rep.installed?.action, "created");
  assert.equal(checkOf(rep, "venv.ready")!.status, "pass");
  const again = await prologue(n, "lsf", ["--profile", "tiny"], vars);
  assert.equal(again.code, 0, again.stdout);
});
