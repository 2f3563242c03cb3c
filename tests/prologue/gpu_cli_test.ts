/**
 * `mlagent prologue` as a real process on fake GPU nodes (a #!/bin/sh nvidia-smi printing captured outputs):
 * MIG slices handed out by UUID and by Slurm index, the profile's memory need against the job's GPU or slice,
 * CUDA_VISIBLE_DEVICES=-1, and a hung nvidia-smi when the job asks for no GPU.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { FIXTURES, tempDir } from "../support/env.ts";
import { type FakeSpec, writeFakeBin } from "../support/fake_bin.ts";
import { type FakeNode, makeNode, testProfile, writeProfile, writeVenv } from "../support/node_states.ts";
import type { Profile } from "../../agent/profiles/types.ts";

const SMI = `${FIXTURES}/nvidia-smi`;
const H100_MIG_TABLE = `${SMI}/table/table_590.48.01_1xH100-80GB_MIG-4-slices_idle.txt`;
const H100_MIG_LIST = `${SMI}/misc/list_gpus_590.48.01_H100_MIG.txt`;
const H100_TABLE = `${SMI}/table/table_590.48.01_1xH100-80GB-HBM3_load.txt`;
const L40S_TABLE = `${SMI}/table/table_595.80_1xL40S_load.txt`;
const MIG = (n: number) => `MIG-0000000${n}-0000-0000-0000-00000000000${n}`;

type Sched = "lsf" | "slurm";
const JOB: Record<Sched, Record<string, string>> = {
  lsf: { LSB_JOBID: "4242" },
  slurm: { SLURM_JOB_ID: "4242" },
};

/** nvidia-smi as an old or wrapped driver answers: the plain table and -L only. */
const tableAndList = (table: string, list?: string): FakeSpec[] => [
  { whenArgsContain: "-q", exitCode: 1 },
  { whenArgsContain: "--query", exitCode: 1 },
  list ? { whenArgsContain: "-L", stdoutFile: list } : { whenArgsContain: "-L", exitCode: 1 },
  { stdoutFile: table },
];

async function gpuNode(dir: string, smi: FakeSpec | FakeSpec[] | null): Promise<FakeNode> {
  const n = await makeNode(dir);
  if (smi) await writeFakeBin(n.bin, "nvidia-smi", smi);
  await writeFakeBin(n.bin, "dmesg", { stdout: "" });
  return n;
}

/** A profile with a ready venv, so only the GPU checks decide. */
async function readyProfile(n: FakeNode, name: string, gpu: Profile["gpu"]): Promise<void> {
  const p = testProfile(name, { gpu });
  await writeProfile(n, p);
  await writeVenv(n.root, name, { status: "ready", profile: p });
}

interface Report {
  verdict: string;
  exit_code: number;
  timed_out: string[];
  checks: { id: string; status: string; fault: string | null; message: string; timed_out: boolean }[];
}

async function prologue(n: FakeNode, sched: Sched, args: string[], env: Record<string, string>) {
  const r = await runMlagent(["prologue", "--json", ...args], { env: { ...n.vars, ...JOB[sched], ...env } });
  return { code: r.code, rep: r.json<Report>(), out: r.stdout };
}

const checkOf = (r: Report, id: string) => r.checks.find((c) => c.id === id);

Deno.test("prologue runs a job given two MIG slices of one H100 and stops one naming a slice the node lacks", async () => {
  await using d = await tempDir();
  const n = await gpuNode(d.path, tableAndList(H100_MIG_TABLE, H100_MIG_LIST));
  for (const sched of ["slurm", "lsf"] as const) {
    const two = await prologue(n, sched, [], { CUDA_VISIBLE_DEVICES: `${MIG(2)},${MIG(3)}` });
    assert.equal(two.code, 0, `${sched}: ${two.out}`);
    assert.equal(two.rep.verdict, "run");
    assert.match(checkOf(two.rep, "gpu.visible")!.message, /2 device\(s\) visible \(2 MIG slices\)/);
  }
  const byIndex = await prologue(n, "slurm", [], { SLURM_JOB_GPUS: "2,3" });
  assert.equal(byIndex.code, 0, byIndex.out);

  const foreign = "MIG-5e9a0f2c-9d1b-5d3a-8a5e-1d2f3c4b5a69";
  const lsf = await prologue(n, "lsf", [], { CUDA_VISIBLE_DEVICES: foreign });
  assert.equal(lsf.code, 99, lsf.out);
  const v = checkOf(lsf.rep, "gpu.visible")!;
  assert.equal(v.fault, "job");
  assert.match(v.message, new RegExp(`${foreign}.*which this node does not have`));
  const slurm = await prologue(n, "slurm", [], { CUDA_VISIBLE_DEVICES: foreign });
  assert.equal(slurm.code, 0, "a job fault does not drain a Slurm node");
  assert.equal(slurm.rep.verdict, "job-fault");
});

Deno.test("prologue judges the profile's memory need against the job's MIG slice: 3g.40gb runs, 1g.10gb is the job's fault", async () => {
  await using d = await tempDir();
  const n = await gpuNode(d.path, tableAndList(H100_MIG_TABLE, H100_MIG_LIST));
  await readyProfile(n, "needs40g", { required: true, min_memory_mib: 40000 });
  const big = await prologue(n, "lsf", ["--profile", "needs40g"], { CUDA_VISIBLE_DEVICES: MIG(0) });
  assert.equal(big.code, 0, big.out);
  assert.match(checkOf(big.rep, "gpu.memory")!.message, /has 40448 MiB; the job needs 40000 MiB/);
  const small = await prologue(n, "lsf", ["--profile", "needs40g"], { CUDA_VISIBLE_DEVICES: MIG(2) });
  assert.equal(small.code, 99, small.out);
  const m = checkOf(small.rep, "gpu.memory")!;
  assert.equal(m.fault, "job");
  assert.match(m.message, /MIG 1g\.10gb slice MIG-00000002.* has 9984 MiB; the job needs 40000 MiB per GPU/);
});

Deno.test("prologue judges memory per GPU: an 80 GB H100 meets 80 GiB, an L40S never can, an H100 reporting 40 GB drains the node", async () => {
  await using d = await tempDir();
  const halved = `${d.path}/h100_reporting_40g.txt`;
  // The captured H100 table with its memory total cut in half, as a GPU that lost memory would report.
  await Deno.writeTextFile(
    halved,
    (await Deno.readTextFile(H100_TABLE)).replace("19818MiB /  81559MiB", "19818MiB /  40960MiB"),
  );
  const rows: [string, string, { lsf: number; slurm: number; status: string; fault: string | null }][] = [
    ["an 80 GB H100", H100_TABLE, { lsf: 0, slurm: 0, status: "pass", fault: null }],
    ["a 46 GB L40S", L40S_TABLE, { lsf: 99, slurm: 0, status: "fail", fault: "job" }],
    ["an 80 GB H100 reporting 40 GB", halved, { lsf: 1, slurm: 1, status: "fail", fault: "node" }],
  ];
  for (const [name, table, want] of rows) {
    await using nd = await tempDir();
    const n = await gpuNode(nd.path, tableAndList(table));
    await readyProfile(n, "needs80g", { required: true, min_memory_mib: 81920 });
    for (const sched of ["lsf", "slurm"] as const) {
      const r = await prologue(n, sched, ["--profile", "needs80g"], { CUDA_VISIBLE_DEVICES: "0" });
      assert.equal(r.code, want[sched], `${name} under ${sched}: ${r.out}`);
      const m = checkOf(r.rep, "gpu.memory")!;
      assert.equal(m.status, want.status, `${name}: ${m.message}`);
      assert.equal(m.fault, want.fault, name);
      assert.match(m.message, /81920 MiB per GPU/, name);
    }
  }
});

Deno.test("prologue with CUDA_VISIBLE_DEVICES=-1 runs a CPU profile and stops a GPU profile as the job's fault", async () => {
  await using d = await tempDir();
  const n = await gpuNode(d.path, tableAndList(H100_TABLE));
  await readyProfile(n, "cpu", { required: false });
  await readyProfile(n, "gpu", { required: true });
  const cpu = await prologue(n, "lsf", ["--profile", "cpu"], { CUDA_VISIBLE_DEVICES: "-1" });
  assert.equal(cpu.code, 0, cpu.out);
  assert.match(checkOf(cpu.rep, "gpu.visible")!.message, /CUDA_VISIBLE_DEVICES="-1" hides every GPU/);
  const gpu = await prologue(n, "lsf", ["--profile", "gpu"], { CUDA_VISIBLE_DEVICES: "-1" });
  assert.equal(gpu.code, 99, gpu.out);
  assert.match(checkOf(gpu.rep, "gpu.request")!.message, /hides every GPU, but profile gpu needs 1 GPU/);
});

Deno.test("prologue with a hung nvidia-smi drains the node even when the job asks for no GPU; no nvidia-smi at all is fine", async () => {
  await using d = await tempDir();
  const hung = await gpuNode(`${d.path}/hung`, { sleepS: 30, stdoutFile: H100_TABLE });
  for (const env of [{}, { CUDA_VISIBLE_DEVICES: "-1" }] as Record<string, string>[]) {
    const t0 = performance.now();
    const r = await prologue(hung, "slurm", ["--timeout", "1.5"], env);
    assert.ok(performance.now() - t0 < 6000, "answers within the deadline");
    assert.equal(r.code, 1, r.out);
    assert.equal(r.rep.verdict, "node-fault");
    const v = checkOf(r.rep, "gpu.visible")!;
    assert.equal(v.fault, "node");
    assert.ok(v.timed_out);
  }
  const cpuNode = await gpuNode(`${d.path}/cpu`, null);
  for (const env of [{}, { CUDA_VISIBLE_DEVICES: "-1" }] as Record<string, string>[]) {
    const r = await prologue(cpuNode, "slurm", [], env);
    assert.equal(r.code, 0, r.out);
    assert.equal(checkOf(r.rep, "gpu.visible")!.status, "skip");
  }
});
