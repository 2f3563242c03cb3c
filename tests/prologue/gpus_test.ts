/**
 * The prologue's GPU judgement from gathered facts, as tables named after the situations seen on clusters:
 * MIG slices handed out by UUID or by Slurm index, the job's memory need per GPU or slice, the ways jobs
 * say "no GPU", and nvidia-smi failing or hanging. Facts come from captured nvidia-smi outputs.
 */
import assert from "node:assert/strict";
import {
  type GpuDevice,
  type GpuFacts,
  mergeSmiList,
  parseSmiList,
  parseSmiTable,
  type SmiFailure,
} from "../../checks/gpu.ts";
import { evaluateJobGpus, matchRequestedDevices } from "../../agent/prologue/gpus.ts";
import { gpuRequest } from "../../agent/prologue/scheduler.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import { FIXTURES } from "../support/env.ts";
import { testGpu } from "../support/gpu.ts";

const SMI = `${FIXTURES}/nvidia-smi`;
const read = (p: string) => Deno.readTextFileSync(`${SMI}/${p}`);

/** The devices a node shows: a table (with its MIG section) merged with `nvidia-smi -L`, as gatherGpu does. */
function node(table: string, list?: string): GpuDevice[] {
  const devices = parseSmiTable(read(`table/${table}`))!.devices;
  if (list) mergeSmiList(devices, parseSmiList(read(`misc/${list}`)));
  return devices;
}

/** A node known only from `-L` (R450 listings): GPUs named, memory unknown. */
function listedNode(list: string, name: string): GpuDevice[] {
  return parseSmiList(read(`misc/${list}`)).map((l) => {
    const d = testGpu({ index: l.index, name, uuid: l.uuid, memory_total_mib: null, mig_mode: null });
    mergeSmiList([d], [l]);
    return d;
  });
}

const facts = (devices: GpuDevice[], over: Partial<GpuFacts> = {}): GpuFacts => ({
  driver_version: "590.48.01",
  cuda_version: "13.1",
  cuda_version_source: "nvidia-smi",
  source: "table",
  devices,
  kernel_module: null,
  failure: null,
  tried: [],
  warnings: [],
  attached_gpus: null,
  device_errors: [],
  mig_list_error: null,
  ...over,
});

const profile = (gpu: Profile["gpu"], name = "demo"): Profile => ({
  name,
  description: "",
  python: ">=3.10",
  gpu,
  cuda_variants: [],
  builds_extensions: false,
  disk_gib: 0,
  stages: [],
  verify: [],
  models: [],
});

const H100_MIG = () =>
  node("table_590.48.01_1xH100-80GB_MIG-4-slices_idle.txt", "list_gpus_590.48.01_H100_MIG.txt");
const MIG = (n: number) => `MIG-0000000${n}-0000-0000-0000-00000000000${n}`;

type Want = Record<string, [status: string, fault: string | null, message?: RegExp]>;

function expect(name: string, got: ReturnType<typeof evaluateJobGpus>, want: Want) {
  for (const [id, [status, fault, message]] of Object.entries(want)) {
    const c = got.find((x) => x.id === id);
    assert.ok(c, `${name}: no ${id} in ${JSON.stringify(got.map((x) => x.id))}`);
    assert.equal(c.status, status, `${name}: ${id} is ${c.status}: ${c.message}`);
    assert.equal(c.fault, fault, `${name}: ${id} fault`);
    if (message) assert.match(c.message, message, `${name}: ${id}`);
    if (c.status === "fail") assert.ok(c.remedy, `${name}: ${id} has a remedy`);
  }
}

Deno.test("MIG slices are counted and checked against nvidia-smi -L, not as physical GPUs", () => {
  const rows: [string, () => GpuDevice[], Record<string, string>, Want][] = [
    ["two MIG slices of one H100", H100_MIG, { CUDA_VISIBLE_DEVICES: `${MIG(2)},${MIG(3)}` }, {
      "gpu.visible": ["pass", null, /2 device\(s\) visible \(2 MIG slices\), 2 asked for/],
      "gpu.health": ["pass", null],
    }],
    ["a MIG UUID the node does not have", H100_MIG, {
      CUDA_VISIBLE_DEVICES: "MIG-5e9a0f2c-9d1b-5d3a-8a5e-1d2f3c4b5a69",
    }, {
      "gpu.visible": [
        "fail",
        "job",
        /MIG-5e9a0f2c-9d1b-5d3a-8a5e-1d2f3c4b5a69.*which this node does not have/,
      ],
    }],
    ["one slice named by a unique UUID prefix", H100_MIG, { CUDA_VISIBLE_DEVICES: "MIG-00000001" }, {
      "gpu.visible": ["pass", null, /1 device\(s\) visible \(1 MIG slice\)/],
    }],
    [
      "the older MIG-GPU-<gpu uuid>/<gi>/<ci> form on a 590 driver (GI 2, CI 0 is the 3g.40gb)",
      H100_MIG,
      { CUDA_VISIBLE_DEVICES: "MIG-GPU-00000000-0000-0000-0000-000000000000/2/0" },
      { "gpu.visible": ["pass", null] },
    ],
    [
      "an R450 id whose GPU instance does not exist",
      H100_MIG,
      { CUDA_VISIBLE_DEVICES: "MIG-GPU-00000000-0000-0000-0000-000000000000/5/0" },
      { "gpu.visible": ["fail", "job", /MIG-GPU-00000000-0000-0000-0000-000000000000\/5\/0/] },
    ],
    ["SLURM_JOB_GPUS indices count slices", H100_MIG, { SLURM_JOB_ID: "7", SLURM_JOB_GPUS: "2,3" }, {
      "gpu.visible": ["pass", null, /2 device\(s\) visible \(2 MIG slices\)/],
    }],
    ["a Slurm slice index beyond the node's four slices", H100_MIG, {
      SLURM_JOB_ID: "7",
      SLURM_JOB_GPUS: "4",
    }, {
      "gpu.visible": [
        "fail",
        "node",
        /given GPU 4 \(SLURM_JOB_GPUS\) but this node shows only 0=MIG-0000.*3=MIG-0000/,
      ],
    }],
    [
      "R450 A100 with two 1c.3g.20gb compute instances, both named",
      () => listedNode("list_gpus_R450_A100-SXM4-40GB_MIG_two-1c.3g.20gb.txt", "A100-SXM4-40GB"),
      {
        CUDA_VISIBLE_DEVICES:
          "MIG-GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c/1/0,MIG-GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c/2/0",
      },
      { "gpu.visible": ["pass", null, /2 device\(s\) visible/] },
    ],
    [
      "a count of slices only (SLURM_GPUS_ON_NODE) on the H100",
      H100_MIG,
      { SLURM_JOB_ID: "7", SLURM_GPUS_ON_NODE: "4" },
      { "gpu.visible": ["pass", null] },
    ],
  ];
  for (const [name, devices, vars, want] of rows) {
    const req = gpuRequest(vars, vars.SLURM_JOB_ID ? "slurm" : null);
    expect(name, evaluateJobGpus(facts(devices()), req, null), want);
  }
});

Deno.test("matchRequestedDevices() numbers a mixed node's units as Slurm does: whole GPUs, then each slice", () => {
  const devices = listedNode("list_gpus_R450_6xA100-PCIE-40GB_two-in-MIG.txt", "A100-PCIE-40GB");
  const m = matchRequestedDevices(gpuRequest({ SLURM_JOB_GPUS: "3,4,7" }, "slurm"), devices);
  assert.deepEqual(m.matched.map((u) => [u.gpu.index, u.mig?.uuid ?? null]), [
    [3, null],
    [4, "MIG-GPU-fb8bbc70-d551-45f9-43d4-9734f9cddb2c/1/0"],
    [5, "MIG-GPU-82864c44-d125-bf84-645f-e800925bf730/2/0"],
  ]);
  assert.deepEqual(m.missing, []);
  // Two ids for the same slice count once.
  const twice = matchRequestedDevices(
    gpuRequest({
      CUDA_VISIBLE_DEVICES:
        "MIG-GPU-fb8bbc70-d551-45f9-43d4-9734f9cddb2c/1/0,MIG-GPU-fb8bbc70-d551-45f9-43d4-9734f9cddb2c/2/0",
    }, null),
    devices,
  );
  assert.equal(twice.matched.length, 2);
});

Deno.test("MIG ids cannot be checked when -L gave no MIG UUIDs: a warning, not a drained node", () => {
  const devices = node("table_590.48.01_1xH100-80GB_MIG-4-slices_idle.txt");
  const got = evaluateJobGpus(
    facts(devices, { mig_list_error: "nvidia-smi -L exited 1: no output" }),
    gpuRequest({ CUDA_VISIBLE_DEVICES: MIG(2) }, null),
    null,
  );
  expect("MIG UUID on a node whose -L failed", got, {
    "gpu.visible": ["warn", null, /cannot check MIG device MIG-00000002.*nvidia-smi -L exited 1/],
  });
});

Deno.test("gpu.memory judges the profile's need per GPU or slice the job was given", () => {
  const h100 = () => node("table_590.48.01_1xH100-80GB-HBM3_load.txt");
  const l40s = () => node("table_595.80_1xL40S_load.txt");
  const a100x4 = () => node("table_555.42.02_4xA100-SXM4-80GB.txt");
  const halfH100 = () => h100().map((d) => ({ ...d, memory_total_mib: 40960 }));
  const h200ListOnly = () => listedNode("list_gpus_610.43.02_H200_MIG.txt", "NVIDIA H200");
  const rows: [string, () => GpuDevice[], Record<string, string>, Profile["gpu"], Want][] = [
    ["an 80 GB H100 for a profile needing 80 GiB", h100, { CUDA_VISIBLE_DEVICES: "0" }, {
      required: true,
      min_memory_mib: 81920,
    }, {
      "gpu.memory": ["pass", null, /GPU 0 \(NVIDIA H100 80GB HBM3\) has 81559 MiB; the job needs 81920 MiB/],
    }],
    ["a 46 GB L40S for a profile needing 80 GiB", l40s, { CUDA_VISIBLE_DEVICES: "0" }, {
      required: true,
      min_memory_mib: 81920,
    }, {
      "gpu.memory": [
        "fail",
        "job",
        /GPU 0 \(NVIDIA L40S\) has 46068 MiB; the job needs 81920 MiB per GPU for profile demo, which it can never get/,
      ],
    }],
    ["an 80 GB H100 reporting 40 GB", halfH100, { CUDA_VISIBLE_DEVICES: "0" }, {
      required: true,
      min_memory_mib: 61440,
    }, {
      "gpu.memory": ["fail", "node", /reports 40960 MiB, a healthy one 81559 MiB; the job needs 61440 MiB/],
      "gpu.health": ["fail", "node", /GPU 0 \(NVIDIA H100 80GB HBM3\) reports 40960 MiB total/],
    }],
    ["a 3g.40gb slice for a profile needing 40000 MiB", H100_MIG, { CUDA_VISIBLE_DEVICES: MIG(0) }, {
      required: true,
      min_memory_mib: 40000,
    }, { "gpu.memory": ["pass", null, /MIG 3g\.40gb slice MIG-00000000.* has 40448 MiB/] }],
    ["a 1g.10gb slice for a profile needing 40000 MiB", H100_MIG, { CUDA_VISIBLE_DEVICES: MIG(2) }, {
      required: true,
      min_memory_mib: 40000,
    }, {
      "gpu.memory": [
        "fail",
        "job",
        /MIG 1g\.10gb slice MIG-00000002.* has 9984 MiB; the job needs 40000 MiB/,
      ],
    }],
    [
      "one big and one small slice: the small one's rank runs out",
      H100_MIG,
      {
        CUDA_VISIBLE_DEVICES: `${MIG(0)},${MIG(3)}`,
      },
      { required: true, min_count: 2, min_memory_mib: 20000 },
      {
        "gpu.memory": ["fail", "job", /MIG-00000003.* has 9984 MiB/],
      },
    ],
    [
      "a slice known only by its -L profile name, need above that name",
      h200ListOnly,
      {
        CUDA_VISIBLE_DEVICES: "MIG-f165f0ad-bde2-5b72-acdf-73bbf48eeb2c",
      },
      { required: true, min_memory_mib: 81920 },
      {
        "gpu.memory": ["fail", "job", /MIG 3g\.71gb slice .* has at most 72704 MiB/],
      },
    ],
    [
      "a slice known only by its -L profile name, need below that name: unknown",
      h200ListOnly,
      {
        CUDA_VISIBLE_DEVICES: "MIG-f165f0ad-bde2-5b72-acdf-73bbf48eeb2c",
      },
      { required: true, min_memory_mib: 61440 },
      {
        "gpu.memory": ["warn", null, /memory unknown \(at most 72704 MiB\)/],
      },
    ],
    ["two of four A100 80GB by count only", a100x4, { LSB_JOBID: "3", LSB_GPU_REQ: "num=2" }, {
      required: true,
      min_memory_mib: 81920,
    }, { "gpu.memory": ["pass", null, /GPU 0 .* has 81920 MiB; GPU 1 .* has 81920 MiB; the job needs/] }],
  ];
  for (const [name, devices, vars, gpu, want] of rows) {
    const sched = vars.LSB_JOBID ? "lsf" : null;
    expect(name, evaluateJobGpus(facts(devices()), gpuRequest(vars, sched), profile(gpu)), want);
  }
  // No need in the profile, no gpu.memory check.
  const none = evaluateJobGpus(
    facts(h100()),
    gpuRequest({ CUDA_VISIBLE_DEVICES: "0" }, null),
    profile({
      required: true,
    }),
  );
  assert.equal(none.find((c) => c.id === "gpu.memory"), undefined);
});

Deno.test("CUDA_VISIBLE_DEVICES=-1, empty or NoDevFiles mean no GPU: fine for a CPU profile, a job fault for a GPU one", () => {
  const h100 = node("table_590.48.01_1xH100-80GB-HBM3_load.txt");
  const rows: [string, string, Profile["gpu"] | null, Want][] = [
    ["CUDA_VISIBLE_DEVICES=-1 for a CPU profile", "-1", { required: false }, {
      "gpu.visible": ["pass", null, /no GPU asked for: CUDA_VISIBLE_DEVICES="-1" hides every GPU/],
    }],
    ["CUDA_VISIBLE_DEVICES=-1 with no profile", "-1", null, { "gpu.visible": ["pass", null] }],
    ["CUDA_VISIBLE_DEVICES=-1 for a profile that needs a GPU", "-1", { required: true }, {
      "gpu.request": [
        "fail",
        "job",
        /CUDA_VISIBLE_DEVICES="-1" hides every GPU, but profile demo needs 1 GPU/,
      ],
    }],
    ["NoDevFiles (Slurm gave no GPU) for a profile that needs two", "NoDevFiles", {
      required: true,
      min_count: 2,
    }, { "gpu.request": ["fail", "job", /CUDA_VISIBLE_DEVICES="NoDevFiles" .* needs 2 GPUs/] }],
    ["empty CUDA_VISIBLE_DEVICES for a CPU profile", "", { required: false }, {
      "gpu.visible": ["pass", null],
    }],
  ];
  for (const [name, value, gpu, want] of rows) {
    const got = evaluateJobGpus(
      facts(h100),
      gpuRequest({ CUDA_VISIBLE_DEVICES: value }, "slurm"),
      gpu ? profile(gpu) : null,
    );
    expect(name, got, want);
    if (!gpu?.required) assert.ok(got.every((c) => c.status !== "fail"), `${name}: ${JSON.stringify(got)}`);
  }
});

Deno.test("a hung or broken nvidia-smi drains a GPU node whatever the job asked for; a node without NVIDIA tools stays usable", () => {
  const failed = (failure: SmiFailure, over: Partial<GpuFacts> = {}) =>
    facts([], { failure, driver_version: null, cuda_version: null, source: null, ...over });
  const km = { driver_version: "565.57.01", flavor: "open" as const };
  const rows: [string, GpuFacts, Record<string, string>, [string, string | null, RegExp, boolean]][] = [
    ["hung nvidia-smi, no GPU asked for", failed({ kind: "hang", afterMs: 2950 }), {}, [
      "fail",
      "node",
      /no GPU asked for, but the node's GPU driver is broken: nvidia-smi did not answer within 2950 ms/,
      true,
    ]],
    ["hung nvidia-smi, CUDA_VISIBLE_DEVICES=-1", failed({ kind: "hang", afterMs: 2950 }), {
      CUDA_VISIBLE_DEVICES: "-1",
    }, ["fail", "node", /did not answer within 2950 ms/, true]],
    [
      "hung -L after the table listed a GPU",
      facts(node("table_590.48.01_1xH100-80GB_MIG-4-slices_idle.txt"), {
        failure: { kind: "hang", afterMs: 900 },
      }),
      { CUDA_VISIBLE_DEVICES: MIG(0) },
      ["fail", "node", /1 GPU\(s\) asked for .* did not answer within 900 ms/, true],
    ],
    [
      "driver/library mismatch, no GPU asked for",
      failed({ kind: "nvml-mismatch", output: "" }, {
        kernel_module: km,
      }),
      {},
      ["fail", "node", /mismatch/, false],
    ],
    [
      "loaded driver that does not answer, no GPU asked for",
      failed({ kind: "no-communication", output: "" }, { kernel_module: km }),
      {},
      ["fail", "node", /cannot communicate/, false],
    ],
    ["no nvidia-smi at all, no GPU asked for", failed({ kind: "absent" }), {}, [
      "skip",
      null,
      /no GPU asked for/,
      false,
    ]],
    ["no nvidia-smi, CUDA_VISIBLE_DEVICES=-1", failed({ kind: "absent" }), { CUDA_VISIBLE_DEVICES: "-1" }, [
      "skip",
      null,
      /CUDA_VISIBLE_DEVICES="-1" asks for none/,
      false,
    ]],
    [
      "a CPU job's view of a GPU node (NoDevFiles, no devices)",
      failed({ kind: "no-devices", output: "No devices were found" }),
      { CUDA_VISIBLE_DEVICES: "NoDevFiles" },
      ["skip", null, /asks for none/, false],
    ],
    [
      "nvidia-smi tools without a driver module, no GPU asked for",
      failed({
        kind: "no-communication",
        output: "",
      }),
      {},
      ["skip", null, /no GPU asked for/, false],
    ],
    [
      "a wrapper whose output cannot be read, no GPU asked for",
      failed({ kind: "unparsed", output: "?" }),
      {},
      [
        "warn",
        null,
        /no GPU asked for/,
        false,
      ],
    ],
    ["no nvidia-smi, one GPU asked for", failed({ kind: "absent" }), { CUDA_VISIBLE_DEVICES: "0" }, [
      "fail",
      "node",
      /1 GPU\(s\) asked for \(CUDA_VISIBLE_DEVICES\), but no NVIDIA driver/,
      false,
    ]],
  ];
  for (const [name, f, vars, [status, fault, message, timedOut]] of rows) {
    const got = evaluateJobGpus(f, gpuRequest(vars, "slurm"), null);
    const v = got.find((c) => c.id === "gpu.visible")!;
    assert.equal(v.status, status, `${name}: ${v.message}`);
    assert.equal(v.fault, fault, name);
    assert.match(v.message, message, name);
    assert.equal(v.timed_out, timedOut, name);
  }
});
