/**
 * health's judges, pure, on facts parsed from captured nvidia-smi outputs and kernel-log lines: what is a
 * node fault (drains), what only warns, and what cannot be judged (never drains, never resumes).
 */
import assert from "node:assert/strict";
import {
  type GpuFacts,
  parseProcDriverVersion,
  parseSmiTable,
  parseSmiXml,
  type SmiFailure,
} from "../../checks/gpu.ts";
import { judgeCache, judgeCuda, judgeGpu, judgeXids, variantCuda } from "../../agent/health/checks.ts";
import { judgedIds, reasonFor, verdictOf } from "../../agent/health/mod.ts";
import type { HealthCheck } from "../../agent/health/types.ts";
import { parseXidLines } from "../../agent/prologue/kernel_log.ts";
import type { CacheReport, VenvReport } from "../../agent/status/types.ts";
import { FIXTURES } from "../support/env.ts";
import { testProfile } from "../support/node_states.ts";

const SMI = `${FIXTURES}/nvidia-smi`;
const read = (p: string) => Deno.readTextFileSync(`${SMI}/${p}`);
const KM = parseProcDriverVersion(
  Deno.readTextFileSync(`${FIXTURES}/proc/proc_version_565.57.01_open_x86_64.txt`),
);

function facts(report: ReturnType<typeof parseSmiXml>, extra: Partial<GpuFacts> = {}): GpuFacts {
  return {
    driver_version: report?.driver_version ?? null,
    cuda_version: report?.cuda_version ?? null,
    cuda_version_source: "nvidia-smi",
    source: report?.source ?? null,
    devices: report?.devices ?? [],
    kernel_module: null,
    failure: null,
    tried: [],
    warnings: [],
    ...extra,
  };
}
const failed = (failure: SmiFailure, kernel_module = KM): GpuFacts => facts(null, { failure, kernel_module });
const byId = (cs: HealthCheck[]) => Object.fromEntries(cs.map((c) => [c.id, c]));

Deno.test("judgeGpu() fails a GPU with ERR! and names it in the drain reason", () => {
  const c = byId(judgeGpu(facts(parseSmiTable(read("table/table_525.85.12_8xA30_one-GPU-ERR.txt"))), 8));
  assert.equal(c["gpu.driver"].status, "pass");
  assert.equal(c["gpu.count"].status, "pass");
  assert.equal(c["gpu.health"].status, "fail");
  assert.equal(c["gpu.health"].reason, "GPU 3 ERR!");
});

Deno.test("judgeGpu() on healthy GPUs passes, and counts them against the scheduler's gres", () => {
  const f = facts(parseSmiTable(read("table/table_555.42.02_4xA100-SXM4-80GB.txt")));
  const ok = byId(judgeGpu(f, 4));
  assert.deepEqual(Object.values(ok).map((c) => c.status), ["pass", "pass", "pass"]);
  const lost = byId(judgeGpu(f, 8));
  assert.equal(lost["gpu.count"].status, "fail");
  assert.equal(lost["gpu.count"].reason, "4 of 8 GPUs visible");
  assert.equal(byId(judgeGpu(f, null))["gpu.count"].status, "skip", "no gres: nothing to count against");
});

Deno.test("judgeGpu() by nvidia-smi failure: faults, CPU nodes and what cannot be judged", () => {
  const rows: [string, GpuFacts, number | null, string, string | null][] = [
    [
      "hung nvidia-smi",
      failed({ kind: "hang", afterMs: 9000 }),
      null,
      "fail",
      "nvidia-smi hung (no answer within 9000 ms)",
    ],
    [
      "driver loaded, not answering",
      failed({ kind: "no-communication", output: read("misc/smi_fail_couldnt_communicate.txt") }),
      null,
      "fail",
      "nvidia-smi cannot talk to the driver",
    ],
    [
      "NVML mismatch after an upgrade",
      failed({ kind: "nvml-mismatch", output: read("misc/smi_fail_nvml_driver_library_mismatch.txt") }),
      null,
      "fail",
      "NVML driver/library version mismatch",
    ],
    [
      "driver loaded, no GPUs",
      failed({ kind: "no-devices", output: read("misc/smi_fail_no_devices_were_found.txt") }),
      null,
      "fail",
      "the driver shows no GPUs",
    ],
    [
      "no driver, but Slurm configures 4 GPUs",
      failed({ kind: "absent" }, null),
      4,
      "fail",
      "no NVIDIA driver, 4 GPUs configured",
    ],
    ["a CPU node: no driver, no gres", failed({ kind: "absent" }, null), null, "skip", null],
    [
      "a CPU node with nvidia-utils but no driver",
      failed({ kind: "no-communication", output: "" }, null),
      null,
      "skip",
      null,
    ],
    ["driver loaded, nvidia-smi not on PATH", failed({ kind: "absent" }), 2, "unknown", null],
    [
      "an answer nobody can read",
      failed({ kind: "unparsed", output: "Segmentation fault" }),
      null,
      "unknown",
      null,
    ],
  ];
  for (const [name, f, gres, status, reason] of rows) {
    const c = byId(judgeGpu(f, gres));
    assert.equal(c["gpu.driver"].status, status, `${name}: ${c["gpu.driver"].message}`);
    assert.equal(c["gpu.driver"].reason, reason, name);
    assert.equal(c["gpu.health"].status, status === "unknown" ? "unknown" : "skip", name);
  }
  assert.equal(byId(judgeGpu(failed({ kind: "hang", afterMs: 9000 }), null))["gpu.driver"].timed_out, true);
});

Deno.test("judgeXids() fails GPU-fault Xids, warns on a job's own, skips an unreadable log", () => {
  const now = Date.parse("2026-01-01T03:30:00Z");
  const lines = (s: string) => ({
    source: "dmesg",
    recent: parseXidLines(s).filter((x) => x.time_ms === null || x.time_ms >= now - 3600_000),
    window_s: 3600,
    problem: null,
    timed_out: false,
  });
  const bus = judgeXids(
    lines(
      "2026-01-01T03:00:00,000000+00:00 NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus.",
    ),
    3600,
  );
  assert.equal(bus.status, "fail");
  assert.equal(bus.reason, "Xid 79 on 0000:3b:00");
  const app = judgeXids(
    lines("2026-01-01T03:00:00+0000 gpu17 kernel: NVRM: Xid (PCI:0000:af:00): 13, pid=5, Graphics Exception"),
    3600,
  );
  assert.equal(app.status, "warn", "a job's own Xid never drains");
  assert.equal(judgeXids(lines(""), 3600).status, "pass");
  const shut = judgeXids({
    source: null,
    recent: [],
    window_s: 3600,
    problem: "dmesg: read kernel buffer failed: Operation not permitted",
    timed_out: false,
  }, 3600);
  assert.equal(shut.status, "skip");
});

function venv(name: string, condition: VenvReport["condition"], cuda_variant: string | null): VenvReport {
  return {
    name,
    path: `/v/${name}`,
    condition,
    ready: condition === "ready",
    message: condition,
    profile: name,
    fingerprint: null,
    profile_sha256: null,
    current_profile_sha256: null,
    python_version: "3.11.7",
    cuda_variant,
    installer: "pip",
    updated_at: null,
    finished_at: null,
    owner: null,
    error: null,
    integrity: null,
  };
}

Deno.test("judgeCuda() warns (never fails) when the driver is too old for a venv's CUDA wheels", () => {
  const gpu = facts(parseSmiXml(read("xml/q_x_510.47.03_1xTeslaP100.xml")));
  const cu121 = { name: "cu121", cuda: "12.1", index_url: "https://download.pytorch.org/whl/cu121" };
  const cu118 = { name: "cu118", cuda: "11.8", index_url: "https://download.pytorch.org/whl/cu118" };
  const p = testProfile("torchy", { cuda_variants: [cu121, cu118] });
  const r = judgeCuda(gpu, [{ report: venv("torchy", "ready", "cu121"), profile: p }]);
  assert.equal(r.check.status, "warn", r.check.message);
  assert.match(r.check.message, /driver 510\.47\.03 is too old for torchy \(cu121, CUDA 12\.1\)/);
  assert.equal(r.venvs[0].driver_support, "no");
  const fine = judgeCuda(gpu, [{ report: venv("torchy", "ready", "cu118"), profile: p }]);
  assert.notEqual(fine.check.status, "fail");
  assert.equal(judgeCuda(gpu, [{ report: venv("cpu", "ready", null), profile: null }]).check.status, "skip");
  assert.equal(variantCuda("cu124", null), "12.4");
  assert.equal(variantCuda("cu92", null), "9.2");
});

Deno.test("judgeCache() reads the cache's record: corrupt entries warn, no record skips", () => {
  const base: CacheReport = {
    path: "/tmp/c",
    exists: true,
    filesystem: "ext4",
    network: false,
    bytes: 1,
    entries: 3,
    corrupt_entries: 0,
    last_heal_at: "2026-01-01T00:00:00.000Z",
    problem: null,
  };
  assert.equal(judgeCache(base).status, "pass");
  assert.equal(judgeCache({ ...base, corrupt_entries: 2 }).status, "warn");
  assert.equal(judgeCache({ ...base, corrupt_entries: null }).status, "skip");
  assert.equal(judgeCache({ ...base, exists: false }).status, "skip");
  assert.equal(judgeCache({ ...base, problem: "record is corrupt" }).status, "warn");
});

Deno.test("verdictOf(), reasonFor() and judgedIds(): a fault wins, unknown blocks resume", () => {
  const c = (
    id: HealthCheck["id"],
    status: HealthCheck["status"],
    reason: string | null = null,
  ): HealthCheck => ({
    id,
    status,
    message: "m",
    remedy: null,
    reason,
    timed_out: false,
    duration_ms: 0,
  });
  assert.equal(verdictOf([c("gpu.health", "fail", "GPU 3 ERR!"), c("kernel.xid", "unknown")]), "unhealthy");
  assert.equal(verdictOf([c("gpu.health", "pass"), c("kernel.xid", "unknown")]), "unknown");
  assert.equal(verdictOf([c("gpu.health", "pass"), c("cuda.wheels", "warn")]), "healthy");
  assert.equal(
    reasonFor([
      c("gpu.health", "fail", "GPU 3 ERR!"),
      c("disk.space", "fail", "10 MiB free on /tmp (TMPDIR)"),
    ]),
    "mlagent: gpu.health GPU 3 ERR!; disk.space 10 MiB free on /tmp (TMPDIR)",
  );
  const judged = judgedIds([c("gpu.driver", "pass"), c("gpu.count", "pass"), c("kernel.xid", "skip")]);
  assert.ok(judged.has("gpu.visible"), "the prologue's gpu.visible is judged by the driver and the count");
  assert.ok(!judged.has("kernel.xid"), "an unreadable kernel log did not judge kernel.xid");
  assert.ok(judged.has("mlagent.binary"));
});
