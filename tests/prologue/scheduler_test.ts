import assert from "node:assert/strict";
import {
  detectScheduler,
  gpuRequest,
  parseCudaVisibleDevices,
  parseIndexList,
  parseLsfGpuReq,
  parseSchedulerFlag,
} from "../../agent/prologue/scheduler.ts";
import { parseXidLines, xidSeverity } from "../../agent/prologue/kernel_log.ts";
import {
  exitCodeFor,
  matchRequestedDevices,
  type PrologueCheck,
  verdictOf,
} from "../../agent/prologue/mod.ts";
import { MlagentError } from "../../agent/core/errors.ts";
import { testGpu } from "../support/gpu.ts";

Deno.test("parseCudaVisibleDevices() reads indices, GPU UUIDs, both MIG id forms, and the three ways to say no GPU", () => {
  const rows: [string, string, unknown][] = [
    ["two indices", "0,1", {
      none: false,
      devices: [{ kind: "index", index: 0 }, { kind: "index", index: 1 }],
    }],
    ["spaces around entries", " 2 , 3 ", {
      none: false,
      devices: [{ kind: "index", index: 2 }, { kind: "index", index: 3 }],
    }],
    [
      "a GPU UUID",
      "GPU-71d1acc2-662d-2166-bf9f-65272d2fc437",
      { none: false, devices: [{ kind: "uuid", uuid: "GPU-71d1acc2-662d-2166-bf9f-65272d2fc437" }] },
    ],
    ["a UUID prefix", "GPU-71d1", { none: false, devices: [{ kind: "uuid", uuid: "GPU-71d1" }] }],
    [
      "R470+ MIG id",
      "MIG-5e9a0f2c-9d1b-5d3a-8a5e-1d2f3c4b5a69",
      { none: false, devices: [{ kind: "mig", id: "MIG-5e9a0f2c-9d1b-5d3a-8a5e-1d2f3c4b5a69" }] },
    ],
    [
      "R450 MIG id",
      "MIG-GPU-71d1acc2-662d-2166-bf9f-65272d2fc437/1/0",
      { none: false, devices: [{ kind: "mig", id: "MIG-GPU-71d1acc2-662d-2166-bf9f-65272d2fc437/1/0" }] },
    ],
    ["empty: no GPU", "", { none: true, devices: [] }],
    ["NoDevFiles: scheduler gave no device", "NoDevFiles", { none: true, devices: [] }],
    ["-1: a CPU job on a GPU node hides every GPU", "-1", { none: true, devices: [] }],
    ["-1 with spaces around it", " -1 ", { none: true, devices: [] }],
    [
      "two MIG slices of one H100 (R470+ ids)",
      "MIG-00000002-0000-0000-0000-000000000002,MIG-00000003-0000-0000-0000-000000000003",
      {
        none: false,
        devices: [
          { kind: "mig", id: "MIG-00000002-0000-0000-0000-000000000002" },
          { kind: "mig", id: "MIG-00000003-0000-0000-0000-000000000003" },
        ],
      },
    ],
  ];
  for (const [name, value, want] of rows) assert.deepEqual(parseCudaVisibleDevices(value), want, name);
});

Deno.test("parseCudaVisibleDevices() rejects what CUDA would silently truncate", () => {
  // "-1" alone hides every GPU on purpose; inside a list CUDA drops whatever follows it.
  for (const bad of ["0,,1", "0,x", "1.5", "0,-1", "-1,0", "-2", "gpu0", "0,0", "GPU-", "MIG-GPU-abc"]) {
    assert.throws(
      () => parseCudaVisibleDevices(bad),
      (e) => e instanceof MlagentError && e.code === "bad-input" && /CUDA_VISIBLE_DEVICES/.test(e.message),
      bad,
    );
  }
});

Deno.test("gpuRequest() prefers CUDA_VISIBLE_DEVICES, then Slurm's and LSF's own variables", () => {
  const rows: [string, Record<string, string>, "lsf" | "slurm" | null, unknown][] = [
    ["no variables: no request", {}, null, null],
    [
      "CUDA_VISIBLE_DEVICES wins over SLURM_JOB_GPUS",
      { CUDA_VISIBLE_DEVICES: "0", SLURM_JOB_GPUS: "2,3" },
      "slurm",
      {
        source: "CUDA_VISIBLE_DEVICES",
        value: "0",
        count: 1,
        devices: [{ kind: "index", index: 0 }],
      },
    ],
    [
      "Slurm Prolog sees SLURM_JOB_GPUS with a range",
      { SLURM_JOB_ID: "7", SLURM_JOB_GPUS: "0-2,5" },
      "slurm",
      {
        source: "SLURM_JOB_GPUS",
        value: "0-2,5",
        count: 4,
        devices: [0, 1, 2, 5].map((index) => ({ kind: "index", index })),
      },
    ],
    ["Slurm step GPUs beat the job's", { SLURM_STEP_GPUS: "1", SLURM_JOB_GPUS: "0,1" }, "slurm", {
      source: "SLURM_STEP_GPUS",
      value: "1",
      count: 1,
      devices: [{ kind: "index", index: 1 }],
    }],
    ["only a count on the node", { SLURM_GPUS_ON_NODE: "4" }, "slurm", {
      source: "SLURM_GPUS_ON_NODE",
      value: "4",
      count: 4,
      devices: null,
    }],
    ["LSF requirement string", { LSB_JOBID: "9", LSB_GPU_REQ: "num=2:mode=shared:j_exclusive=yes" }, "lsf", {
      source: "LSB_GPU_REQ",
      value: "num=2:mode=shared:j_exclusive=yes",
      count: 2,
      devices: null,
    }],
    ["LSF variables ignored for a Slurm job", { LSB_GPU_REQ: "num=2" }, "slurm", null],
    ["NoDevFiles counts as zero GPUs", { CUDA_VISIBLE_DEVICES: "NoDevFiles" }, "slurm", {
      source: "CUDA_VISIBLE_DEVICES",
      value: "NoDevFiles",
      count: 0,
      devices: [],
    }],
    ["CUDA_VISIBLE_DEVICES=-1 for a CPU job counts as zero GPUs", { CUDA_VISIBLE_DEVICES: "-1" }, "lsf", {
      source: "CUDA_VISIBLE_DEVICES",
      value: "-1",
      count: 0,
      devices: [],
    }],
    ["LSF's own quotes around the requirement", { LSB_GPU_REQ: '"num=4:mode=exclusive_process"' }, "lsf", {
      source: "LSB_GPU_REQ",
      value: '"num=4:mode=exclusive_process"',
      count: 4,
      devices: null,
    }],
    ["no num= means LSF's default of one GPU", { LSB_GPU_REQ: "mode=shared:j_exclusive=yes" }, "lsf", {
      source: "LSB_GPU_REQ",
      value: "mode=shared:j_exclusive=yes",
      count: 1,
      devices: null,
    }],
    ["quoted and without num=", { LSB_GPU_REQ: "'mode=exclusive_process:mps=yes,shared'" }, "lsf", {
      source: "LSB_GPU_REQ",
      value: "'mode=exclusive_process:mps=yes,shared'",
      count: 1,
      devices: null,
    }],
    ["an empty quoted requirement is no requirement", { LSB_GPU_REQ: '""' }, "lsf", null],
  ];
  for (const [name, vars, sched, want] of rows) assert.deepEqual(gpuRequest(vars, sched), want, name);
  assert.throws(() => gpuRequest({ SLURM_JOB_GPUS: "gpu:2" }, "slurm"), /malformed SLURM_JOB_GPUS/);
  assert.throws(() => gpuRequest({ SLURM_GPUS_ON_NODE: "two" }, "slurm"), /malformed SLURM_GPUS_ON_NODE/);
  assert.throws(() => gpuRequest({ LSB_GPU_REQ: "two gpus please" }, "lsf"), /malformed LSB_GPU_REQ/);
  assert.throws(() => gpuRequest({ LSB_GPU_REQ: "num=two" }, "lsf"), /malformed LSB_GPU_REQ/);
  assert.equal(parseIndexList("3-1"), null);
});

Deno.test("parseLsfGpuReq() reads LSF's -gpu syntax as LSF defines it", () => {
  const rows: [string, string, number | null][] = [
    ["num first", "num=8:mode=shared", 8],
    ["num last", "mode=shared:num=8", 8],
    ["per task", "num=2/task:mode=exclusive_process", 2],
    ["per host", "num=1/host", 1],
    ["lsf.conf style, double-quoted", '"num=4:mode=exclusive_process:mps=yes:j_exclusive=yes"', 4],
    ["single-quoted", "'num=2'", 2],
    ["no num: LSF's default of one", "mode=shared:mps=no:j_exclusive=no", 1],
    ["bsub -gpu -: the defaults, one GPU", "-", 1],
    ["gmodel with a memory size", "num=1:gmodel=NVIDIAA100_SXM4_80GB:gmem=40G", 1],
    ["not a requirement", "four", null],
    ["num without a number", "num=:mode=shared", null],
  ];
  for (const [name, value, want] of rows) assert.equal(parseLsfGpuReq(value), want, name);
});

Deno.test("detectScheduler() and --scheduler: LSB_JOBID is LSF, SLURM_JOB_ID Slurm, unknown names are bad input", () => {
  assert.equal(detectScheduler({ LSB_JOBID: "1" }), "lsf");
  assert.equal(detectScheduler({ SLURM_JOB_ID: "1" }), "slurm");
  assert.equal(detectScheduler({}), null);
  assert.equal(parseSchedulerFlag(undefined), "auto");
  assert.equal(parseSchedulerFlag("SLURM"), "slurm");
  assert.throws(() => parseSchedulerFlag("pbs"), (e) => e instanceof MlagentError && e.exitCode === 2);
});

Deno.test("exitCodeFor() maps node and job faults to each scheduler's meaning", () => {
  const rows: [
    string,
    "run" | "node-fault" | "job-fault",
    "lsf" | "slurm" | null,
    Record<string, string>,
    number,
  ][] = [
    ["LSF runs the job", "run", "lsf", {}, 0],
    ["LSF re-pends on a node fault", "node-fault", "lsf", {}, 1],
    ["LSF aborts on a job fault with 99", "job-fault", "lsf", {}, 99],
    ["LSF's own abort value wins", "job-fault", "lsf", { LSB_EXIT_PRE_ABORT: "42" }, 42],
    ["a nonsense abort value falls back to 99", "job-fault", "lsf", { LSB_EXIT_PRE_ABORT: "x" }, 99],
    ["Slurm drains only for node faults", "node-fault", "slurm", {}, 1],
    ["Slurm starts the job on a job fault", "job-fault", "slurm", {}, 0],
    ["by hand a job fault fails", "job-fault", null, {}, 1],
  ];
  for (const [name, verdict, sched, vars, want] of rows) {
    assert.equal(exitCodeFor(verdict, sched, vars), want, name);
  }
});

Deno.test("verdictOf() lets a node fault win over a job fault", () => {
  const c = (status: "pass" | "fail" | "warn", fault: "node" | "job" | null): PrologueCheck => ({
    id: "gpu.visible",
    status,
    fault,
    message: "",
    remedy: null,
    timed_out: false,
    duration_ms: 0,
  });
  assert.equal(verdictOf([c("pass", null), c("warn", null)]), "run");
  assert.equal(verdictOf([c("fail", "job")]), "job-fault");
  assert.equal(verdictOf([c("fail", "job"), c("fail", "node")]), "node-fault");
});

Deno.test("matchRequestedDevices() finds requested GPUs by index or UUID prefix and names the missing", () => {
  const dev = (index: number, uuid: string) => testGpu({ index, name: "A30", uuid, memory_total_mib: 24576 });

  const devices = [dev(0, "GPU-aaaa-1111"), dev(1, "GPU-bbbb-2222")];
  const req = (
    devices: unknown[],
  ) => ({ source: "CUDA_VISIBLE_DEVICES", count: devices.length, devices } as never);
  assert.deepEqual(
    matchRequestedDevices(req([{ kind: "uuid", uuid: "GPU-bbbb" }]), devices).matched.map((u) => u.gpu),
    [devices[1]],
  );
  assert.deepEqual(matchRequestedDevices(req([{ kind: "index", index: 2 }]), devices).missing, ["2"]);
  // A MIG id on a node without MIG: the job named another node's slice.
  assert.deepEqual(matchRequestedDevices(req([{ kind: "mig", id: "MIG-1234abcd" }]), devices).foreign, [
    "MIG-1234abcd",
  ]);
});

Deno.test("parseXidLines() reads dmesg, dmesg --time-format iso, journalctl and /dev/kmsg forms", () => {
  const boot = Date.parse("2026-01-01T00:00:00Z");
  const text = [
    "[ 3600.500000] NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.",
    "2026-01-01T02:00:00,123456+00:00 NVRM: Xid (PCI:0000:86:00): 48, pid=99, DBE (0x1,0x2)",
    "2026-01-01T03:00:00+0000 gpu17 kernel: NVRM: Xid (PCI:0000:af:00): 13, pid=5, name=python, Graphics Exception",
    "6,1234,14400000000,-;NVRM: Xid (PCI:0000:3b:00): 94, pid=1, Contained: SM (0x1)",
    "[ 10.0] nvidia: module loaded",
  ].join("\n");
  const xs = parseXidLines(text, boot);
  assert.deepEqual(
    xs.map((x) => [x.code, x.pci, x.time_ms === null ? null : new Date(x.time_ms).toISOString()]),
    [
      [79, "0000:3b:00", "2026-01-01T01:00:00.500Z"],
      [48, "0000:86:00", "2026-01-01T02:00:00.123Z"],
      [13, "0000:af:00", "2026-01-01T03:00:00.000Z"],
      [94, "0000:3b:00", "2026-01-01T04:00:00.000Z"],
    ],
  );
  assert.equal(parseXidLines("[ 5.0] NVRM: Xid (PCI:0000:01:00): 31, x")[0].time_ms, null);
  assert.equal(xidSeverity(79), "node");
  assert.equal(xidSeverity(13), "application");
  assert.equal(xidSeverity(999), "unknown");
});
