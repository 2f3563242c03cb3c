import assert from "node:assert/strict";
import {
  classifySmiRun,
  evaluateGpu,
  evaluateHealth,
  fitsNeed,
  gatherGpu,
  type GpuDevice,
  type GpuUnit,
  judgeUnitMemory,
  mergeSmiList,
  migProfileBoundMib,
  modelMemoryMib,
  parseProcDriverVersion,
  parseSmiBanner,
  parseSmiCsv,
  parseSmiList,
  parseSmiTable,
  parseSmiXml,
  r450MigIds,
  schedulableUnits,
  SMI_CSV_ARGV,
  type SmiReport,
} from "../../checks/gpu.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import { FIXTURES, hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";
import { testGpu } from "../support/gpu.ts";

const SMI = `${FIXTURES}/nvidia-smi`;
const read = (p: string) => Deno.readTextFileSync(`${SMI}/${p}`);

interface Row {
  file: string;
  driver: string | null;
  cuda: string | null;
  count: number;
  name: string | null;
  memMib: number | null;
  health: "pass" | "warn" | "fail";
  check?: (r: SmiReport) => void;
}

const XML_ROWS: Row[] = [
  {
    file: "q_x_418.43_1xGTX1660Ti.xml",
    driver: "418.43",
    cuda: "10.1",
    count: 1,
    name: "Graphics Device",
    memMib: 5912,
    health: "warn",
  },
  {
    file: "q_x_510.47.03_1xTeslaP100.xml",
    driver: "510.47.03",
    cuda: "11.6",
    count: 1,
    name: "Tesla P100-PCIE-16GB",
    memMib: 16384,
    health: "warn",
    // Old ECC layout (volatile/double_bit/total) still yields the uncorrectable count.
    check: (r) => {
      assert.equal(r.devices[0].ecc_uncorrected_volatile, 0);
      assert.equal(r.devices[0].ecc_uncorrected_aggregate, 0);
      assert.equal(r.devices[0].retired_pages_pending, false);
      assert.equal(r.devices[0].uuid, "GPU-d3da8716-eaab-75db-efc1-60e88e1cd55e");
    },
  },
  {
    file: "q_x_516.59_windows_1xRTX2080.xml",
    driver: "516.59",
    cuda: "11.7",
    count: 1,
    name: "NVIDIA GeForce RTX 2080",
    memMib: 8192,
    health: "pass",
    check: (r) => assert.equal(r.devices[0].persistence_mode, null),
  },
  {
    file: "q_x_525.147.05_1xRTX3090.xml",
    driver: "525.147.05",
    cuda: "12.0",
    count: 1,
    name: "NVIDIA GeForce RTX 3090",
    memMib: 24576,
    health: "pass",
  },
  {
    file: "q_x_535.86.05_1xRTX4090.xml",
    driver: "535.86.05",
    cuda: "12.2",
    count: 1,
    name: "NVIDIA GeForce RTX 4090",
    memMib: 24564,
    health: "pass",
    check: (r) => {
      assert.equal(r.devices[0].uuid, "GPU-71d1acc2-662d-2166-bf9f-65272d2fc437");
      assert.equal(r.devices[0].remapped_rows_pending, false);
      assert.equal(r.devices[0].bus_id, "00000000:84:00.0");
    },
  },
  {
    file: "q_x_575.57.08_1xMIG-3g.40gb_excerpt.xml",
    driver: "575.57.08",
    cuda: "12.9",
    count: 1,
    name: null,
    memMib: 81920,
    health: "warn",
    // One MIG device with its GPU/compute instance ids and exact memory.
    check: (r) => {
      assert.equal(r.attached_gpus, 1);
      assert.equal(r.devices[0].mig_mode, "enabled");
      assert.deepEqual(r.devices[0].mig_devices, [{
        index: 0,
        uuid: null,
        gpu_instance_id: 1,
        compute_instance_id: 0,
        memory_total_mib: 40448,
      }]);
    },
  },
  {
    file: "q_x_590.44.01_1xRTXPRO6000-Blackwell.xml",
    driver: "590.44.01",
    cuda: "13.1",
    count: 1,
    name: "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",
    memMib: 97887,
    health: "pass",
  },
  {
    file: "q_x_595.58.03_1xRTX3080.xml",
    driver: "595.58.03",
    cuda: "13.2",
    count: 1,
    name: "NVIDIA GeForce RTX 3080",
    memMib: 10240,
    health: "warn",
  },
];

const CSV_ROWS: Row[] = [
  {
    file: "querygpu_471.11_windows_1xRTX2080S.csv",
    driver: "471.11",
    cuda: null,
    count: 1,
    name: "NVIDIA GeForce RTX 2080 SUPER",
    memMib: 8192,
    health: "pass",
    check: (r) => assert.ok(r.devices[0].unknown_fields.includes("ecc.errors.uncorrected.volatile.total")),
  },
  {
    file: "querygpu_590.48.01_1xH200_load.csv",
    driver: "590.48.01",
    cuda: null,
    count: 1,
    name: "NVIDIA H200",
    memMib: 143771,
    health: "pass",
    check: (r) => {
      assert.equal(r.devices[0].mig_mode, "disabled");
      assert.equal(r.devices[0].ecc_uncorrected_volatile, 0);
      assert.equal(r.devices[0].remapped_rows_pending, false);
    },
  },
  {
    file: "querygpu_595.80_1xL40S_idle.csv",
    driver: "595.80",
    cuda: null,
    count: 1,
    name: "NVIDIA L40S",
    memMib: 46068,
    health: "warn",
  },
];

const TABLE_ROWS: Row[] = [
  {
    file: "table_346.46_1xGRIDK520_noprocs.txt",
    driver: "346.46",
    cuda: null,
    count: 1,
    name: "GRID K520",
    memMib: 4095,
    health: "warn",
  },
  {
    file: "table_440.82_2xGTX1080Ti_docker_emptyprocs.txt",
    driver: "440.82",
    cuda: "10.2",
    count: 2,
    name: "GeForce GTX 108...",
    memMib: 11175,
    health: "warn",
  },
  {
    file: "table_450.57_2GPU_RTX2070_GTX750Ti.txt",
    driver: "450.57",
    cuda: "11.0",
    count: 2,
    name: "GeForce RTX 2070",
    memMib: 7981,
    health: "warn",
  },
  {
    file: "table_525.85.12_8xA30_one-GPU-ERR.txt",
    driver: "525.85.12",
    cuda: "12.0",
    count: 8,
    name: "NVIDIA A30",
    memMib: 24576,
    health: "fail",
    check: (r) => {
      const bad = r.devices[3];
      assert.equal(bad.index, 3);
      assert.equal(bad.name, null);
      assert.ok(bad.errors.length > 0);
      assert.equal(bad.memory_total_mib, 24576);
      assert.deepEqual(r.devices.filter((d) => d.errors.length).map((d) => d.index), [3]);
    },
  },
  {
    file: "table_535.129.03_8xV100-SXM2-16GB_load.txt",
    driver: "535.129.03",
    cuda: "12.2",
    count: 8,
    name: "Tesla V100-SXM2-16GB",
    memMib: 16384,
    health: "pass",
  },
  {
    file: "table_550.127.05_10xA40.txt",
    driver: "550.127.05",
    cuda: "12.4",
    count: 10,
    name: "NVIDIA A40",
    memMib: 46068,
    health: "pass",
  },
  {
    file: "table_550.127.05_8xV100.txt",
    driver: "550.127.05",
    cuda: "12.4",
    count: 8,
    name: "Tesla V100-SXM2-16GB",
    memMib: 16384,
    health: "pass",
  },
  {
    file: "table_555.42.02_4xA100-SXM4-80GB.txt",
    driver: "555.42.02",
    cuda: "12.5",
    count: 4,
    name: "NVIDIA A100-SXM4-80GB",
    memMib: 81920,
    health: "pass",
  },
  {
    file: "table_565.57.01_8xH100-SXM.txt",
    driver: "565.57.01",
    cuda: "12.7",
    count: 8,
    name: "NVIDIA H100 80GB HBM3",
    memMib: 81559,
    health: "pass",
  },
  {
    file: "table_575.57.08_8xB200_noprocsection.txt",
    driver: "575.57.08",
    cuda: "12.9",
    count: 8,
    name: "NVIDIA B200",
    memMib: 183359,
    health: "pass",
  },
  {
    file: "table_590.48.01_1xH100-80GB-HBM3_load.txt",
    driver: "590.48.01",
    cuda: "13.1",
    count: 1,
    name: "NVIDIA H100 80GB HBM3",
    memMib: 81559,
    health: "pass",
    check: (r) => assert.equal(r.devices[0].memory_used_mib, 19818),
  },
  {
    file: "table_590.48.01_1xH200_MIG-enabled_idle.txt",
    driver: "590.48.01",
    cuda: "13.1",
    count: 1,
    name: "NVIDIA H200",
    memMib: 143771,
    health: "warn",
    // The MIG devices section below the GPU table is not read as more GPUs, but as the GPU's slices.
    check: (r) => {
      assert.equal(r.devices[0].mig_mode, "enabled");
      assert.deepEqual(r.devices[0].mig_devices?.map((m) => m.memory_total_mib), [
        71424,
        71424,
        33280,
        16384,
        16384,
      ]);
    },
  },
  {
    file: "table_590.48.01_1xH100-80GB_MIG-4-slices_idle.txt",
    driver: "590.48.01",
    cuda: "13.1",
    count: 1,
    name: "NVIDIA H100 80GB HBM3",
    memMib: 81559,
    health: "warn",
    // The "MIG devices" section gives each slice's GPU instance, compute instance and memory.
    check: (r) => {
      assert.deepEqual(
        r.devices[0].mig_devices?.map((m) => [
          m.index,
          m.gpu_instance_id,
          m.compute_instance_id,
          m.memory_total_mib,
        ]),
        [[0, 2, 0, 40448], [1, 3, 0, 20096], [2, 9, 0, 9984], [3, 10, 0, 9984]],
      );
    },
  },
  {
    file: "table_591.86_windows_1xRTX2080S_load.txt",
    driver: "591.86",
    cuda: "13.1",
    count: 1,
    name: "NVIDIA GeForce RTX 2080 ...",
    memMib: 8192,
    health: "pass",
    // WDDM sits where Linux prints persistence mode: not read as persistence.
    check: (r) => assert.equal(r.devices[0].persistence_mode, null),
  },
  {
    file: "table_595.80_1xL40S_load.txt",
    driver: "595.80",
    cuda: "13.2",
    count: 1,
    name: "NVIDIA L40S",
    memMib: 46068,
    health: "warn",
  },
  {
    // 610 renamed the banner's labels: "KMD Version" and "CUDA UMD Version".
    file: "table_610.43.02_1xH200_MIG-enabled_idle.txt",
    driver: "610.43.02",
    cuda: "13.3",
    count: 1,
    name: "NVIDIA H200",
    memMib: 143771,
    health: "warn",
    check: (r) => {
      assert.deepEqual(r.devices[0].mig_devices, [{
        index: 0,
        gpu_instance_id: 2,
        compute_instance_id: 0,
        memory_total_mib: 71424,
      }]);
      assert.equal(r.attached_gpus, null, "nothing says more GPUs are attached");
    },
  },
  {
    // GPU 1 fell off: nvidia-smi says so first and lists GPUs 0, 2 and 3.
    file: "table_610.57.04_4xRTXPRO6000_one-GPU-lost.txt",
    driver: "610.57.04",
    cuda: "13.3",
    count: 3,
    name: "NVIDIA RTX PRO 6000 Blac...",
    memMib: 97887,
    health: "warn",
    check: (r) => {
      assert.deepEqual(r.devices.map((d) => d.index), [0, 2, 3]);
      assert.equal(r.attached_gpus, 4);
      assert.deepEqual(r.device_errors, [
        "Unable to determine the device handle for GPU1: 0000:34:00.0: Unknown Error",
      ]);
    },
  },
  {
    file: "table_617.14_windows_1xRTX3050.txt",
    driver: "617.14",
    cuda: "13.4",
    count: 1,
    name: "NVIDIA GeForce RTX 3050 ...",
    memMib: 4094,
    health: "pass",
    check: (r) => assert.equal(r.devices[0].persistence_mode, null),
  },
];

function runRows(kind: string, rows: Row[], parse: (s: string) => SmiReport | null) {
  for (const row of rows) {
    Deno.test(`${parse.name}() reads ${row.file}`, () => {
      const r = parse(read(`${kind}/${row.file}`));
      assert.ok(r, "parsed");
      assert.equal(r.driver_version, row.driver);
      assert.equal(r.cuda_version, row.cuda);
      assert.equal(r.devices.length, row.count);
      assert.equal(r.devices[0].name, row.name);
      assert.equal(r.devices[0].memory_total_mib, row.memMib);
      if (!r.device_errors.length) {
        assert.deepEqual(
          r.devices.map((d) => d.index),
          r.devices.map((_, i) => i),
        );
      }
      const health = evaluateHealth(r.devices, [], {
        attached_gpus: r.attached_gpus,
        device_errors: r.device_errors,
      });
      assert.equal(health.status, row.health, health.message);
      row.check?.(r);
    });
  }
}

runRows("xml", XML_ROWS, parseSmiXml);
runRows("csv", CSV_ROWS, parseSmiCsv);
runRows("table", TABLE_ROWS, parseSmiTable);

Deno.test("every shared nvidia-smi fixture has a row in the table tests", () => {
  for (const [kind, rows] of [["xml", XML_ROWS], ["csv", CSV_ROWS], ["table", TABLE_ROWS]] as const) {
    const files = [...Deno.readDirSync(`${SMI}/${kind}`)].map((e) => e.name).filter((n) =>
      !n.startsWith("querycomputeapps")
    );
    assert.deepEqual(files.sort(), rows.map((r) => r.file).sort(), kind);
  }
});

Deno.test("parsers return null for text that is not their form", () => {
  const fail = read("misc/smi_fail_couldnt_communicate.txt");
  assert.equal(parseSmiXml(fail), null);
  assert.equal(parseSmiXml(read("xml/q_x_535.86.05_1xRTX4090.xml").slice(0, 4000)), null, "truncated XML");
  assert.equal(parseSmiCsv(fail), null);
  assert.equal(
    parseSmiCsv(read("csv/querycomputeapps_590.48.01_1xH100_MIG_load.csv")),
    null,
    "per-process query has no name column",
  );
  assert.equal(parseSmiTable(fail), null);
});

Deno.test("parseSmiCsv() reads columns by header, in any order, with or without units", () => {
  const csv = "memory.total [MiB], uuid, index, name, ecc.errors.uncorrected.volatile.total\n" +
    "81559 MiB, GPU-aaaa, 0, NVIDIA H100 80GB HBM3, 2\n" +
    "[N/A], GPU-bbbb, 1, NVIDIA H100 80GB HBM3, [Not Supported]\n";
  const r = parseSmiCsv(csv)!;
  assert.deepEqual(r.devices.map((d) => [d.index, d.uuid, d.memory_total_mib]), [[0, "GPU-aaaa", 81559], [
    1,
    "GPU-bbbb",
    null,
  ]]);
  assert.equal(r.devices[0].ecc_uncorrected_volatile, 2);
  assert.deepEqual(r.devices[1].unknown_fields, ["memory.total", "ecc.errors.uncorrected.volatile.total"]);
  const noUnits = parseSmiCsv("index, name, memory.total\n0, NVIDIA A40, 46068\n")!;
  assert.equal(noUnits.devices[0].memory_total_mib, 46068);
  assert.equal(evaluateHealth(r.devices).status, "fail");
});

Deno.test("parseSmiTable() reads [N/A] memory as unknown", () => {
  const t = read("table/table_590.48.01_1xH100-80GB-HBM3_load.txt").replace(
    "19818MiB /  81559MiB",
    "     N/A /       N/A",
  );
  const r = parseSmiTable(t)!;
  assert.equal(r.devices[0].memory_total_mib, null);
  assert.ok(r.devices[0].unknown_fields.includes("memory.total"));
});

Deno.test("parseSmiList() reads GPUs and the MIG devices under each, in R450 and R470+ forms", () => {
  const h100 = parseSmiList(read("misc/list_gpus_590.48.01_H100_MIG.txt"));
  assert.deepEqual(h100.map((g) => g.index), [0]);
  assert.deepEqual(h100[0].mig_devices.map((m) => [m.index, m.profile, m.uuid]), [
    [0, "3g.40gb", "MIG-00000000-0000-0000-0000-000000000000"],
    [1, "2g.20gb", "MIG-00000001-0000-0000-0000-000000000001"],
    [2, "1g.10gb", "MIG-00000002-0000-0000-0000-000000000002"],
    [3, "1g.10gb", "MIG-00000003-0000-0000-0000-000000000003"],
  ]);
  const two = parseSmiList(read("misc/list_gpus_2xQuadroRTX4000.txt"));
  assert.deepEqual(two.map((g) => g.uuid), [
    "GPU-c7b57be0-94ff-d352-a59b-d0ee00aeed43",
    "GPU-d6de6afc-bdfe-75c4-5273-0544439153fc",
  ]);
  assert.deepEqual(two.map((g) => g.mig_devices.length), [0, 0]);
  const r450 = parseSmiList(read("misc/list_gpus_R450_A100-SXM4-40GB_MIG_two-1c.3g.20gb.txt"));
  assert.deepEqual(r450[0].mig_devices.map((m) => [m.profile, m.uuid]), [
    ["1c.3g.20gb", "MIG-GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c/1/0"],
    ["1c.3g.20gb", "MIG-GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c/2/0"],
  ]);
  const mixed = parseSmiList(read("misc/list_gpus_R450_6xA100-PCIE-40GB_two-in-MIG.txt"));
  assert.deepEqual(mixed.map((g) => g.mig_devices.length), [0, 0, 0, 0, 2, 2]);
  assert.deepEqual(r450MigIds("MIG-GPU-82864c44-d125-bf84-645f-e800925bf730/2/0"), {
    gpu_uuid: "GPU-82864c44-d125-bf84-645f-e800925bf730",
    gi: 2,
    ci: 0,
  });
  assert.equal(r450MigIds("MIG-f165f0ad-bde2-5b72-acdf-73bbf48eeb2c"), null);
});

Deno.test("parseSmiBanner() finds the driver and CUDA versions by meaning across driver generations", () => {
  const rows: [string, string, { driver: string | null; cuda: string | null }][] = [
    [
      "346: no CUDA label yet",
      "| NVIDIA-SMI 346.46     Driver Version: 346.46         |",
      { driver: "346.46", cuda: null },
    ],
    [
      "470 in a container without CUDA: N/A",
      "| NVIDIA-SMI 470.82.01    Driver Version: 470.82.01    CUDA Version: N/A      |",
      { driver: "470.82.01", cuda: null },
    ],
    [
      "575: Driver Version / CUDA Version",
      "| NVIDIA-SMI 575.57.08              Driver Version: 575.57.08      CUDA Version: 12.9     |",
      { driver: "575.57.08", cuda: "12.9" },
    ],
    [
      "580: still the old labels",
      "| NVIDIA-SMI 580.173.02             Driver Version: 580.173.02     CUDA Version: 13.0     |",
      { driver: "580.173.02", cuda: "13.0" },
    ],
    [
      "610: KMD Version / CUDA UMD Version",
      "| NVIDIA-SMI 610.43.02              KMD Version: 610.43.02     CUDA UMD Version: 13.3     |",
      { driver: "610.43.02", cuda: "13.3" },
    ],
    [
      "617 on Windows",
      "| NVIDIA-SMI 617.14                 KMD Version: 617.14        CUDA UMD Version: 13.4     |",
      { driver: "617.14", cuda: "13.4" },
    ],
    [
      "an unknown driver label: NVIDIA-SMI's own version is the driver's",
      "| NVIDIA-SMI 700.1.2                Kernel Mode Version: 700.1.2   CUDA Version: 14.0    |",
      { driver: "700.1.2", cuda: "14.0" },
    ],
  ];
  for (const [name, line, want] of rows) assert.deepEqual(parseSmiBanner(line), want, name);
  assert.equal(parseSmiBanner("+-------------------------+"), null);
});

Deno.test("every table fixture's banner gives a driver version", () => {
  for (const f of Deno.readDirSync(`${SMI}/table`)) {
    assert.match(parseSmiTable(read(`table/${f.name}`))?.driver_version ?? "", /^\d+\.\d+/, f.name);
  }
});

Deno.test("attached GPUs that nvidia-smi does not list warn, never fail", () => {
  const xml = read("xml/q_x_535.86.05_1xRTX4090.xml").replace("<attached_gpus>1<", "<attached_gpus>2<");
  const r = parseSmiXml(xml)!;
  assert.equal(r.attached_gpus, 2);
  const h = evaluateHealth(r.devices, [], { attached_gpus: r.attached_gpus });
  assert.equal(h.status, "warn");
  assert.match(h.message, /nvidia-smi reports 2 GPUs attached but lists 1/);
  assert.match(h.remedy ?? "", /fallen off the bus/);
  const lost = parseSmiTable(read("table/table_610.57.04_4xRTXPRO6000_one-GPU-lost.txt"))!;
  const l = evaluateHealth(lost.devices, [], {
    attached_gpus: lost.attached_gpus,
    device_errors: lost.device_errors,
  });
  assert.equal(l.status, "warn");
  assert.match(l.message, /4 GPUs attached but lists 3 \(Unable to determine the device handle for GPU1/);
});

Deno.test("parseProcDriverVersion() reads every /proc/driver/nvidia/version fixture", () => {
  const cases: [string, string, string][] = [
    ["proc_version_384.98_x86_64.txt", "384.98", "proprietary"],
    ["proc_version_525.60.11_open_x86_64_archlinux.txt", "525.60.11", "open"],
    ["proc_version_565.57.01_open_x86_64.txt", "565.57.01", "open"],
    ["proc_version_580.95.05_open_x86_64.txt", "580.95.05", "open"],
  ];
  for (const [file, version, flavor] of cases) {
    assert.deepEqual(parseProcDriverVersion(Deno.readTextFileSync(`${FIXTURES}/proc/${file}`)), {
      driver_version: version,
      flavor,
    }, file);
  }
  assert.equal(parseProcDriverVersion("garbage"), null);
});

Deno.test("classifySmiRun() tells the failure forms apart from their real messages", () => {
  const exited = (code: number, stdout: string) => ({
    kind: "exited" as const,
    argv: ["nvidia-smi"],
    code,
    signal: null,
    stdout,
    stderr: "",
    durationMs: 1,
  });
  assert.equal(
    classifySmiRun({ kind: "not-found", argv: ["nvidia-smi"], program: "nvidia-smi" })?.kind,
    "absent",
  );
  assert.equal(
    classifySmiRun(exited(9, read("misc/smi_fail_couldnt_communicate.txt")))?.kind,
    "no-communication",
  );
  assert.equal(
    classifySmiRun(exited(6, read("misc/smi_fail_no_devices_were_found.txt")))?.kind,
    "no-devices",
  );
  assert.equal(
    classifySmiRun(exited(18, read("misc/smi_fail_nvml_driver_library_mismatch.txt")))?.kind,
    "nvml-mismatch",
  );
  assert.equal(
    classifySmiRun({ kind: "timed-out", argv: ["nvidia-smi"], afterMs: 50, stdout: "", stderr: "" })?.kind,
    "hang",
  );
  assert.equal(
    classifySmiRun(exited(2, 'Field "x" is not a valid field to query.')),
    null,
    "another form may work",
  );
});

// ------------------------------------------------------------------------------ gather with fake nvidia-smi

async function gpuEnv(dir: string, procRoot?: string) {
  const proc = procRoot ?? `${dir}/proc`;
  await Deno.mkdir(proc, { recursive: true });
  return testEnv({ vars: hermeticVars({ PATH: `${dir}/bin:/usr/bin:/bin` }), procRoot: proc });
}

async function withProcVersion(dir: string, fixture: string): Promise<string> {
  const proc = `${dir}/proc`;
  await Deno.mkdir(`${proc}/driver/nvidia`, { recursive: true });
  await Deno.copyFile(`${FIXTURES}/proc/${fixture}`, `${proc}/driver/nvidia/version`);
  return proc;
}

Deno.test("gatherGpu() uses -q -x first and asks nothing else when it parses", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", {
    stdoutFile: `${SMI}/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  const f = await gatherGpu(await gpuEnv(dir.path), 5000);
  assert.equal(f.source, "xml");
  assert.equal(f.driver_version, "535.86.05");
  assert.equal(f.cuda_version, "12.2");
  assert.equal(f.cuda_version_source, "nvidia-smi");
  assert.deepEqual(await fakeCalls(`${dir.path}/bin`, "nvidia-smi"), ["-q -x"]);
});

Deno.test("gatherGpu() falls back from failing XML to CSV and infers CUDA from the driver table", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", [
    { whenArgsContain: "-q -x", stderr: "Invalid combination of input arguments.", exitCode: 2 },
    { whenArgsContain: "--query-gpu=", stdoutFile: `${SMI}/csv/querygpu_590.48.01_1xH200_load.csv` },
  ]);
  const f = await gatherGpu(await gpuEnv(dir.path), 5000);
  assert.equal(f.source, "csv");
  assert.equal(f.driver_version, "590.48.01");
  assert.equal(f.cuda_version, "13.1");
  assert.equal(f.cuda_version_source, "table");
  const calls = await fakeCalls(`${dir.path}/bin`, "nvidia-smi");
  assert.deepEqual(calls, ["-q -x", SMI_CSV_ARGV.slice(1).join(" ")]);
});

Deno.test("gatherGpu() falls back to the plain table when XML and CSV fail, and fills UUIDs from -L", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", [
    { whenArgsContain: "-q -x", stdout: "<nvidia_smi_log><driver_version>450", exitCode: 0 },
    {
      whenArgsContain: "--query-gpu=",
      stderr: 'Field "remapped_rows.pending" is not a valid field to query.',
      exitCode: 2,
    },
    { whenArgsContain: "-L", stdoutFile: `${SMI}/misc/list_gpus_2xQuadroRTX4000.txt` },
    { stdoutFile: `${SMI}/table/table_450.57_2GPU_RTX2070_GTX750Ti.txt` },
  ]);
  const f = await gatherGpu(await gpuEnv(dir.path), 5000);
  assert.equal(f.source, "table");
  assert.equal(f.devices.length, 2);
  assert.equal(f.devices[1].uuid, "GPU-d6de6afc-bdfe-75c4-5273-0544439153fc");
  // Read the log raw: the bare `nvidia-smi` call logs an empty line, which fakeCalls() drops.
  const calls = (await Deno.readTextFile(`${dir.path}/bin/nvidia-smi.calls`)).split("\n").slice(0, -1);
  assert.deepEqual(calls, ["-q -x", SMI_CSV_ARGV.slice(1).join(" "), "", "-L"]);
  const [driver] = evaluateGpu(f, { profile: null });
  assert.equal(driver.status, "pass");
  assert.match(driver.message, /driver 450\.57, CUDA 11\.0 \(nvidia-smi table\)/);
});

const FAILURE_CASES: {
  name: string;
  fixture?: string;
  code?: number;
  proc?: string;
  status: string;
  message: RegExp;
  remedy: RegExp;
}[] = [
  {
    name: "couldn't communicate (exit 9) with no kernel module warns on a plain node",
    fixture: "smi_fail_couldnt_communicate.txt",
    code: 9,
    status: "warn",
    message: /cannot communicate with the NVIDIA driver \(no kernel module loaded\)/,
    remedy: /modprobe nvidia/,
  },
  {
    name: "couldn't communicate (exit 9) with the module loaded fails",
    fixture: "smi_fail_couldnt_communicate.txt",
    code: 9,
    proc: "proc_version_565.57.01_open_x86_64.txt",
    status: "fail",
    message: /kernel module 565\.57\.01 is loaded/,
    remedy: /dmesg/,
  },
  {
    name: "no devices (exit 6)",
    fixture: "smi_fail_no_devices_were_found.txt",
    code: 6,
    status: "warn",
    message: /No devices were found/,
    remedy: /CUDA_VISIBLE_DEVICES/,
  },
  {
    name: "NVML driver/library mismatch",
    fixture: "smi_fail_nvml_driver_library_mismatch.txt",
    code: 18,
    proc: "proc_version_580.95.05_open_x86_64.txt",
    status: "fail",
    message: /mismatch.*kernel module is 580\.95\.05/,
    remedy: /Reboot/,
  },
];

for (const c of FAILURE_CASES) {
  Deno.test(`gatherGpu() stops at the first call for ${c.name}`, async () => {
    await using dir = await tempDir();
    await Deno.mkdir(`${dir.path}/bin`);
    await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", {
      stdoutFile: `${SMI}/misc/${c.fixture}`,
      exitCode: c.code,
    });
    const proc = c.proc ? await withProcVersion(dir.path, c.proc) : undefined;
    const f = await gatherGpu(await gpuEnv(dir.path, proc), 5000);
    assert.equal((await fakeCalls(`${dir.path}/bin`, "nvidia-smi")).length, 1, "no fallback can fix this");
    const [driver, devices, health] = evaluateGpu(f, { profile: null });
    assert.equal(driver.id, "gpu.driver");
    assert.equal(driver.status, c.status);
    assert.match(driver.message, c.message);
    assert.match(driver.remedy ?? "", c.remedy);
    assert.equal(devices.status, "skip");
    assert.equal(health.status, "skip");
  });
}

Deno.test("gatherGpu() kills a hanging nvidia-smi after the timeout and reports it", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", { sleepS: 30, stdout: "never" });
  const t = performance.now();
  const f = await gatherGpu(await gpuEnv(dir.path), 300);
  assert.ok(performance.now() - t < 10_000, "killed, not waited for");
  assert.deepEqual(f.failure, { kind: "hang", afterMs: 300 });
  assert.equal((await fakeCalls(`${dir.path}/bin`, "nvidia-smi")).length, 1);
  const [driver] = evaluateGpu(f, { profile: null });
  assert.equal(driver.status, "fail");
  assert.match(driver.message, /did not answer within 300 ms/);
  assert.match(driver.remedy ?? "", /Xid/);
});

const profile = (over: Partial<Profile> = {}): Profile => ({
  name: "test-model",
  description: "",
  python: ">=3.10",
  gpu: { required: true },
  cuda_variants: [],
  builds_extensions: false,
  disk_gib: 1,
  stages: [],
  verify: [],
  models: [],
  ...over,
});

Deno.test("a missing nvidia-smi warns on a plain node, fails for a GPU profile, skips for a CPU profile", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  const f = await gatherGpu(await gpuEnv(dir.path), 5000);
  assert.deepEqual(f.failure, { kind: "absent" });
  assert.equal(evaluateGpu(f, { profile: null })[0].status, "warn");
  assert.equal(evaluateGpu(f, { profile: profile() })[0].status, "fail");
  assert.equal(evaluateGpu(f, { profile: profile({ gpu: { required: false } }) })[0].status, "skip");
});

Deno.test("nvidia-smi missing but the kernel module loaded says to fix PATH", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  const proc = await withProcVersion(dir.path, "proc_version_384.98_x86_64.txt");
  const f = await gatherGpu(await gpuEnv(dir.path, proc), 5000);
  assert.equal(f.kernel_module?.driver_version, "384.98");
  assert.equal(f.driver_version, "384.98", "known from the module for CUDA judgements");
  assert.equal(f.cuda_version, null, "384 predates the table's 10.0 floor");
  const [driver] = evaluateGpu(f, { profile: null });
  assert.match(driver.message, /kernel module 384\.98 is loaded/);
  assert.match(driver.remedy ?? "", /PATH/);
});

Deno.test("a kernel module that differs from nvidia-smi's driver fails gpu.driver", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", {
    stdoutFile: `${SMI}/xml/q_x_595.58.03_1xRTX3080.xml`,
  });
  const proc = await withProcVersion(dir.path, "proc_version_580.95.05_open_x86_64.txt");
  const [driver] = evaluateGpu(await gatherGpu(await gpuEnv(dir.path, proc), 5000), { profile: null });
  assert.equal(driver.status, "fail");
  assert.match(driver.message, /kernel module is 580\.95\.05/);
});

const dev = testGpu;

Deno.test("evaluateHealth() fails on uncorrectable ECC and row-remap failure, warns on pending retirement and remaps", () => {
  const cases: [string, Partial<GpuDevice>, string, RegExp][] = [
    ["healthy A100", {}, "pass", /healthy/],
    ["uncorrectable ECC since boot", { ecc_uncorrected_volatile: 3 }, "fail", /3 uncorrectable ECC errors/],
    ["row remapping failed", { remapped_rows_failure: true }, "fail", /failed a row remapping/],
    ["retired pages pending", { retired_pages_pending: true }, "warn", /GPU 0 has retired pages pending/],
    ["remapped rows pending", { remapped_rows_pending: true }, "warn", /remapped rows pending/],
    ["MIG enabled", { mig_mode: "enabled" }, "warn", /MIG mode/],
    ["persistence off", { persistence_mode: "disabled" }, "warn", /persistence mode off/],
    ["ERR! fields", { errors: ["fan.speed"] }, "fail", /ERR!/],
  ];
  for (const [name, over, status, msg] of cases) {
    const r = evaluateHealth([dev(over)]);
    assert.equal(r.status, status, name);
    assert.match(r.message, msg, name);
    if (status !== "pass") assert.ok(r.remedy, name);
  }
});

Deno.test("gpu.devices judges count and memory against the profile", () => {
  const facts = {
    driver_version: "550.54.14",
    cuda_version: "12.4",
    cuda_version_source: "nvidia-smi" as const,
    source: "xml" as const,
    devices: [dev({ memory_total_mib: 24576, name: "NVIDIA A30" })],
    kernel_module: null,
    failure: null,
    tried: [],
    warnings: [],
  };
  assert.equal(
    evaluateGpu(facts, { profile: profile({ gpu: { required: true, min_count: 2 } }) })[1].status,
    "fail",
  );
  const mem = evaluateGpu(facts, { profile: profile({ gpu: { required: true, min_memory_mib: 40000 } }) })[1];
  assert.equal(mem.status, "fail");
  assert.match(mem.message, /0 of 1 GPUs have >= 40000 MiB/);
  assert.equal(
    evaluateGpu(facts, { profile: profile({ gpu: { required: true, min_memory_mib: 20000 } }) })[1].status,
    "pass",
  );
});

Deno.test("a WARNING line before the XML or CSV still parses, and gpu.health carries it", async () => {
  const warn = "WARNING: infoROM is corrupted at gpu 0000:84:00.0\n";
  assert.equal(parseSmiXml(warn + read("xml/q_x_535.86.05_1xRTX4090.xml"))?.devices.length, 1);
  assert.equal(parseSmiXml(read("xml/q_x_535.86.05_1xRTX4090.xml") + warn)?.devices.length, 1);
  assert.equal(
    parseSmiCsv(warn + read("csv/querygpu_595.80_1xL40S_idle.csv"))?.devices[0].name,
    "NVIDIA L40S",
  );
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", {
    stdoutFile: `${SMI}/xml/q_x_535.86.05_1xRTX4090.xml`,
    stdout: warn,
  });
  const f = await gatherGpu(await gpuEnv(dir.path), 5000);
  assert.deepEqual(f.warnings, [warn.trim()]);
  const health = evaluateGpu(f, { profile: null })[2];
  assert.equal(health.status, "warn");
  assert.match(health.message, /infoROM is corrupted/);
  assert.match(health.remedy ?? "", /firmware/);
});

Deno.test("under MIG, gpu.devices judges the profile's memory against the largest slice", () => {
  const xml = read("xml/q_x_535.86.05_1xRTX4090.xml")
    .replace("<current_mig>N/A</current_mig>", "<current_mig>Enabled</current_mig>")
    .replace(
      /<mig_devices>[\s\S]*?<\/mig_devices>/,
      "<mig_devices><mig_device><index>0</index><fb_memory_usage><total>9984 MiB</total></fb_memory_usage></mig_device>" +
        "<mig_device><index>1</index><fb_memory_usage><total>4864 MiB</total></fb_memory_usage></mig_device></mig_devices>",
    );
  const r = parseSmiXml(xml)!;
  assert.deepEqual(r.devices[0].mig_devices?.map((m) => [m.index, m.memory_total_mib]), [[0, 9984], [
    1,
    4864,
  ]]);
  const facts = {
    driver_version: "535.86.05",
    cuda_version: "12.2",
    cuda_version_source: "nvidia-smi" as const,
    source: "xml" as const,
    devices: r.devices,
    kernel_module: null,
    failure: null,
    tried: [],
    warnings: [],
  };
  const p = profile({ gpu: { required: true, min_memory_mib: 16000 } });
  assert.equal(evaluateGpu(facts, { profile: p })[1].status, "fail", "24 GiB GPU, but 10 GiB slices");
  assert.equal(
    evaluateGpu(facts, { profile: profile({ gpu: { required: true, min_memory_mib: 8000 } }) })[1].status,
    "pass",
  );
});

// ------------------------------------------------------------------------------ memory against a need

Deno.test("fitsNeed() allows for nominal sizes: an 80 GB H100 meets 80 GiB, an L40S does not meet 48 GiB", () => {
  const rows: [string, number, number, boolean][] = [
    ["H100 80GB (81559 MiB) for a profile written as 80 GiB", 81559, 81920, true],
    ["A100 80GB (81920 MiB) for 80 GiB", 81920, 81920, true],
    ["H200 (143771 MiB) for 141 GiB", 143771, 141 * 1024, true],
    ["B200 (183359 MiB) for 180 GiB", 183359, 180 * 1024, true],
    ["L40S with ECC (46068 MiB) for 48 GiB", 46068, 48 * 1024, false],
    ["RTX 4090 (24564 MiB) for 24 GiB", 24564, 24576, true],
    ["A30 (24576 MiB) for 60 GiB", 24576, 61440, false],
  ];
  for (const [name, mib, need, want] of rows) assert.equal(fitsNeed(mib, need), want, name);
});

Deno.test("judgeUnitMemory() tells fits, never, short and unknown apart for GPUs and MIG slices", () => {
  const h100 = parseSmiTable(read("table/table_590.48.01_1xH100-80GB_MIG-4-slices_idle.txt"))!;
  mergeSmiList(h100.devices, parseSmiList(read("misc/list_gpus_590.48.01_H100_MIG.txt")));
  const [big, , small] = schedulableUnits(h100.devices);
  const l40s = parseSmiTable(read("table/table_595.80_1xL40S_load.txt"))!.devices[0];
  const h100full = parseSmiTable(read("table/table_590.48.01_1xH100-80GB-HBM3_load.txt"))!.devices[0];
  const h200List = parseSmiList(read("misc/list_gpus_610.43.02_H200_MIG.txt"));
  const h200 = testGpu({ index: 0, name: "NVIDIA H200", memory_total_mib: 143771, mig_mode: "enabled" });
  mergeSmiList([h200], h200List);
  const [h200slice] = schedulableUnits([h200]);
  const rows: [string, GpuUnit, number, unknown][] = [
    ["3g.40gb slice (40448 MiB) for 40000 MiB", big, 40000, { kind: "fits", mib: 40448 }],
    ["1g.10gb slice (9984 MiB) for 40000 MiB", small, 40000, { kind: "never", mib: 9984, exact: true }],
    ["whole H100 (81559 MiB) for 80 GiB", { gpu: h100full, mig: null }, 81920, { kind: "fits", mib: 81559 }],
    ["L40S (46068 MiB) for 80 GiB", { gpu: l40s, mig: null }, 81920, {
      kind: "never",
      mib: 46068,
      exact: true,
    }],
    [
      "an 80 GB H100 reporting 40 GB for 60 GiB",
      { gpu: { ...h100full, memory_total_mib: 40960 }, mig: null },
      61440,
      { kind: "short", mib: 40960, model_mib: 81559 },
    ],
    [
      "an 80 GB H100 reporting 40 GB for 100 GiB: not even a healthy one would do",
      { gpu: { ...h100full, memory_total_mib: 40960 }, mig: null },
      102400,
      { kind: "never", mib: 81559, exact: false },
    ],
    [
      "H100 whose memory is [N/A], need within its model's",
      { gpu: { ...h100full, memory_total_mib: null }, mig: null },
      61440,
      { kind: "unknown", bound_mib: 81559 },
    ],
    [
      "a GPU unknown to the model table with [N/A] memory",
      { gpu: testGpu({ name: "NVIDIA Future GPU", memory_total_mib: null }), mig: null },
      61440,
      { kind: "unknown", bound_mib: null },
    ],
    [
      "3g.71gb slice known only from -L, need above its name's size",
      h200slice,
      80000,
      { kind: "never", mib: 72704, exact: false },
    ],
    ["3g.71gb slice known only from -L, need below its name's size", h200slice, 60000, {
      kind: "unknown",
      bound_mib: 72704,
    }],
    [
      "the whole H100 in MIG mode: judged as its best slice",
      { gpu: h100.devices[0], mig: null },
      30000,
      { kind: "fits", mib: 40448 },
    ],
  ];
  for (const [name, unit, need, want] of rows) assert.deepEqual(judgeUnitMemory(unit, need), want, name);
  assert.equal(migProfileBoundMib("1c.3g.20gb"), 20480);
  assert.equal(migProfileBoundMib("1g.10gb+me"), 10240);
  assert.equal(migProfileBoundMib(null), null);
});

Deno.test("gpu.health fails a GPU that reports clearly less memory than its model, naming both sizes", () => {
  const h100 = parseSmiTable(read("table/table_565.57.01_8xH100-SXM.txt"))!.devices;
  const bad = h100.map((d) => d.index === 5 ? { ...d, memory_total_mib: 40960 } : d);
  const h = evaluateHealth(bad);
  assert.equal(h.status, "fail");
  assert.match(h.message, /GPU 5 \(NVIDIA H100 80GB HBM3\) reports 40960 MiB total, a healthy one 81559 MiB/);
  assert.match(h.remedy ?? "", /drain the node/);
  assert.equal(evaluateHealth(h100).status, "pass", "81559 MiB is what a healthy H100 80GB reports");
  assert.equal(modelMemoryMib("NVIDIA GH200 480GB"), null, "GH200 is not an H200");
});

Deno.test("gpu.devices (doctor) lets an 80 GB H100 meet a profile that needs 80 GiB", () => {
  const devices = parseSmiTable(read("table/table_590.48.01_1xH100-80GB-HBM3_load.txt"))!.devices;
  const facts = {
    driver_version: "590.48.01",
    cuda_version: "13.1",
    cuda_version_source: "nvidia-smi" as const,
    source: "table" as const,
    devices,
    kernel_module: null,
    failure: null,
    tried: [],
    warnings: [],
  };
  const p = profile({ gpu: { required: true, min_memory_mib: 81920 } });
  assert.equal(evaluateGpu(facts, { profile: p })[1].status, "pass");
});

Deno.test("gatherGpu() on a MIG node asks -L for the slices' UUIDs and merges them with the table's memory", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", [
    { whenArgsContain: "-q", exitCode: 1 },
    { whenArgsContain: "--query", exitCode: 1 },
    { whenArgsContain: "-L", stdoutFile: `${SMI}/misc/list_gpus_590.48.01_H100_MIG.txt` },
    { stdoutFile: `${SMI}/table/table_590.48.01_1xH100-80GB_MIG-4-slices_idle.txt` },
  ]);
  const f = await gatherGpu(await gpuEnv(dir.path), 5000);
  assert.equal(f.source, "table");
  assert.deepEqual(f.devices[0].mig_devices?.map((m) => [m.uuid, m.profile, m.memory_total_mib]), [
    ["MIG-00000000-0000-0000-0000-000000000000", "3g.40gb", 40448],
    ["MIG-00000001-0000-0000-0000-000000000001", "2g.20gb", 20096],
    ["MIG-00000002-0000-0000-0000-000000000002", "1g.10gb", 9984],
    ["MIG-00000003-0000-0000-0000-000000000003", "1g.10gb", 9984],
  ]);
  assert.equal(f.devices[0].uuid, "GPU-00000000-0000-0000-0000-000000000000");
  assert.equal(f.mig_list_error, null);
});

Deno.test("gatherGpu() on a 610 driver reads the KMD / CUDA UMD banner when only the table answers", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", [
    { whenArgsContain: "-q", exitCode: 1 },
    { whenArgsContain: "--query", exitCode: 1 },
    { whenArgsContain: "-L", stdoutFile: `${SMI}/misc/list_gpus_610.43.02_H200_MIG.txt` },
    { stdoutFile: `${SMI}/table/table_610.43.02_1xH200_MIG-enabled_idle.txt` },
  ]);
  const f = await gatherGpu(await gpuEnv(dir.path), 5000);
  assert.equal(f.driver_version, "610.43.02");
  assert.equal(f.cuda_version, "13.3");
  assert.equal(f.cuda_version_source, "nvidia-smi");
  assert.deepEqual(f.devices[0].mig_devices?.map((m) => [m.uuid, m.memory_total_mib]), [
    ["MIG-f165f0ad-bde2-5b72-acdf-73bbf48eeb2c", 71424],
  ]);
});

Deno.test("gatherGpu() keeps the GPUs listed beside one it cannot open, and gpu.health warns", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  const table = read("table/table_610.57.04_4xRTXPRO6000_one-GPU-lost.txt");
  const [lost, ...rest] = table.split("\n");
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", [
    { whenArgsContain: "-q", exitCode: 1 },
    { whenArgsContain: "--query", exitCode: 1 },
    { whenArgsContain: "-L", exitCode: 1 },
    // As the driver does: the lost GPU on stderr, the others on stdout, and a failing exit status.
    { stdout: rest.join("\n"), stderr: lost + "\n", exitCode: 15 },
  ]);
  const f = await gatherGpu(await gpuEnv(dir.path), 5000);
  assert.equal(f.failure, null);
  assert.deepEqual(f.devices.map((d) => d.index), [0, 2, 3]);
  assert.equal(f.attached_gpus, 4);
  const [driver, , health] = evaluateGpu(f, { profile: null });
  assert.equal(driver.status, "pass");
  assert.match(driver.message, /driver 610\.57\.04, CUDA 13\.3/);
  assert.equal(health.status, "warn");
  assert.match(health.message, /4 GPUs attached but lists 3/);
});

Deno.test("gatherGpu() treats an -L that hangs after the table answered as a hung driver", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", [
    { whenArgsContain: "-q", exitCode: 1 },
    { whenArgsContain: "--query", exitCode: 1 },
    { whenArgsContain: "-L", sleepS: 30 },
    { stdoutFile: `${SMI}/table/table_590.48.01_1xH100-80GB_MIG-4-slices_idle.txt` },
  ]);
  const f = await gatherGpu(await gpuEnv(dir.path), 300);
  assert.deepEqual(f.failure, { kind: "hang", afterMs: 300 });
  assert.equal(f.devices.length, 1, "what was listed is kept");
  const [driver, devices] = evaluateGpu(f, { profile: null });
  assert.equal(driver.status, "fail");
  assert.match(driver.message, /did not answer within 300 ms/);
  assert.equal(devices.status, "skip");
});
