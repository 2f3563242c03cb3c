/**
 * GPU and driver through nvidia-smi. Gather tries the richest output first (`-q -x`), then `--query-gpu` CSV
 * (columns read by header), then the plain table old drivers and site wrappers print; the failure forms
 * that no other output form can fix (absent, cannot talk to the driver, no devices, NVML mismatch, hang) end
 * the search at once. Parsers and the evaluation are pure.
 */
import { cudaForDriver } from "../agent/compat.ts";
import type { Env } from "../agent/core/env.ts";
import type { RunResult } from "../agent/core/run.ts";
import { type CheckContext, type CheckResult, result } from "./types.ts";
import { child, parseXml, textAt, walk, type XmlNode } from "./xml.ts";

export interface GpuDevice {
  index: number;
  name: string | null;
  uuid: string | null;
  memory_total_mib: number | null;
  memory_used_mib: number | null;
  bus_id: string | null;
  /** null where nvidia-smi shows N/A (Windows, some wrappers). */
  persistence_mode: "enabled" | "disabled" | null;
  mig_mode: "enabled" | "disabled" | null;
  /** Uncorrectable ECC errors since the driver loaded; null when not reported (ECC off, consumer GPUs). */
  ecc_uncorrected_volatile: number | null;
  ecc_uncorrected_aggregate: number | null;
  retired_pages_pending: boolean | null;
  remapped_rows_pending: boolean | null;
  remapped_rows_failure: boolean | null;
  /** Fields nvidia-smi printed as ERR! (a GPU that fell off the bus or is in a bad state). */
  errors: string[];
  /** Fields we asked for that nvidia-smi printed as N/A, [N/A] or [Not Supported]. */
  unknown_fields: string[];
  /** MIG slices (XML only): under MIG a job gets one slice's memory, not the GPU's. */
  mig_devices?: { index: number; memory_total_mib: number | null }[];
}

export type SmiSource = "xml" | "csv" | "table";

export interface SmiReport {
  source: SmiSource;
  driver_version: string | null;
  /** The newest CUDA the driver supports, as nvidia-smi prints it ("CUDA Version"). */
  cuda_version: string | null;
  devices: GpuDevice[];
}

/** Why nvidia-smi gave no usable answer: each has its own message and remedy. */
export type SmiFailure =
  | { kind: "absent" }
  | { kind: "no-communication"; output: string }
  | { kind: "no-devices"; output: string }
  | { kind: "nvml-mismatch"; output: string }
  | { kind: "hang"; afterMs: number }
  | { kind: "unparsed"; output: string };

export interface ProcDriverVersion {
  driver_version: string;
  /** The open kernel modules print "Open Kernel Module". */
  flavor: "open" | "proprietary";
}

export interface GpuFacts {
  driver_version: string | null;
  cuda_version: string | null;
  /** "nvidia-smi" when printed by the driver, "table" when inferred from NVIDIA's minimum-driver table. */
  cuda_version_source: "nvidia-smi" | "table" | null;
  source: SmiSource | null;
  devices: GpuDevice[];
  kernel_module: ProcDriverVersion | null;
  failure: SmiFailure | null;
  /** The nvidia-smi argvs tried, in order. */
  tried: string[];
  /** WARNING lines nvidia-smi printed beside its answer (a corrupted infoROM, for one). */
  warnings: string[];
}

/** Fields asked of `--query-gpu`; every driver since 450 knows them. */
export const QUERY_FIELDS = [
  "index",
  "name",
  "uuid",
  "pci.bus_id",
  "driver_version",
  "memory.total",
  "memory.used",
  "persistence_mode",
  "mig.mode.current",
  "ecc.errors.uncorrected.volatile.total",
  "ecc.errors.uncorrected.aggregate.total",
  "retired_pages.pending",
  "remapped_rows.pending",
  "remapped_rows.failure",
];

export const SMI_XML_ARGV = ["nvidia-smi", "-q", "-x"];
export const SMI_CSV_ARGV = ["nvidia-smi", `--query-gpu=${QUERY_FIELDS.join(",")}`, "--format=csv"];
export const SMI_TABLE_ARGV = ["nvidia-smi"];
export const SMI_LIST_ARGV = ["nvidia-smi", "-L"];

// ---------------------------------------------------------------------------------------------- values

const isUnknown = (v: string) =>
  /^\[?(N\/A|Not Supported|Unknown Error|Requested functionality has been deprecated|Insufficient Permissions)\]?$/i
    .test(v.trim()) || v.trim() === "";
const isErr = (v: string) => v.trim() === "ERR!" || v.trim() === "[ERR!]";

function emptyDevice(index: number): GpuDevice {
  return {
    index,
    name: null,
    uuid: null,
    memory_total_mib: null,
    memory_used_mib: null,
    bus_id: null,
    persistence_mode: null,
    mig_mode: null,
    ecc_uncorrected_volatile: null,
    ecc_uncorrected_aggregate: null,
    retired_pages_pending: null,
    remapped_rows_pending: null,
    remapped_rows_failure: null,
    errors: [],
    unknown_fields: [],
    mig_devices: [],
  };
}

/** Records one raw value into a device: ERR! and unknowns are noted, the rest converted by `conv`. */
function take<T>(d: GpuDevice, field: string, raw: string | null, conv: (s: string) => T | null): T | null {
  if (raw === null) return null;
  if (isErr(raw)) {
    d.errors.push(field);
    return null;
  }
  if (isUnknown(raw)) {
    d.unknown_fields.push(field);
    return null;
  }
  return conv(raw.trim());
}

const mib = (s: string) => {
  const m = /^(\d+(?:\.\d+)?)\s*(MiB|GiB)?$/i.exec(s);
  if (!m) return null;
  return m[2]?.toLowerCase() === "gib" ? Math.round(Number(m[1]) * 1024) : Math.round(Number(m[1]));
};
const int = (s: string) => (/^\d+$/.test(s) ? Number(s) : null);
const onOff = (s: string): "enabled" | "disabled" | null =>
  /^(enabled|on)$/i.test(s) ? "enabled" : /^(disabled|off)$/i.test(s) ? "disabled" : null;
const yesNo = (s: string): boolean | null => (/^yes$/i.test(s) ? true : /^no$/i.test(s) ? false : null);
const text = (s: string) => s;

// ---------------------------------------------------------------------------------------------- XML

/** Sums the uncorrectable counters of an ECC block, old (double_bit/total) or new (*_uncorrectable*) layout. */
function uncorrectable(d: GpuDevice, block: XmlNode | null, label: string): number | null {
  if (!block) return null;
  const db = textAt(block, "double_bit/total");
  if (db !== null) return take(d, `${label}.double_bit`, db, int);
  let sum: number | null = null;
  for (const c of block.children) {
    if (!/uncorrectable/.test(c.name)) continue;
    const n = take(d, `${label}.${c.name}`, c.text, int);
    if (n !== null) sum = (sum ?? 0) + n;
  }
  return sum;
}

/** nvidia-smi -q -x -> report; null when the text is not nvidia-smi's XML. */
export function parseSmiXml(xml: string): SmiReport | null {
  // Some drivers print "WARNING: infoROM is corrupted ..." on stdout around the document.
  const start = xml.search(/<\?xml|<nvidia_smi_log[\s>]/);
  const end = xml.lastIndexOf("</nvidia_smi_log>");
  const root = start >= 0 && end > start
    ? parseXml(xml.slice(start, end + "</nvidia_smi_log>".length))
    : null;
  if (!root || root.name !== "nvidia_smi_log") return null;
  const devices = root.children.filter((c) => c.name === "gpu").map((g, index) => {
    const d = emptyDevice(index);
    d.bus_id = g.attrs.id ?? textAt(g, "pci/pci_bus_id");
    d.name = take(d, "name", textAt(g, "product_name"), text);
    d.uuid = take(d, "uuid", textAt(g, "uuid"), text);
    d.memory_total_mib = take(d, "memory.total", textAt(g, "fb_memory_usage/total"), mib);
    d.memory_used_mib = take(d, "memory.used", textAt(g, "fb_memory_usage/used"), mib);
    d.persistence_mode = take(d, "persistence_mode", textAt(g, "persistence_mode"), onOff);
    d.mig_mode = take(d, "mig.mode.current", textAt(g, "mig_mode/current_mig"), onOff);
    d.ecc_uncorrected_volatile = uncorrectable(d, child(g, "ecc_errors/volatile"), "ecc.volatile");
    d.ecc_uncorrected_aggregate = uncorrectable(d, child(g, "ecc_errors/aggregate"), "ecc.aggregate");
    d.retired_pages_pending = take(
      d,
      "retired_pages.pending",
      textAt(g, "retired_pages/pending_retirement"),
      yesNo,
    );
    const rr = child(g, "remapped_rows");
    if (rr && rr.children.length) {
      d.remapped_rows_pending = take(d, "remapped_rows.pending", textAt(rr, "remapped_row_pending"), yesNo);
      d.remapped_rows_failure = take(d, "remapped_rows.failure", textAt(rr, "remapped_row_failure"), yesNo);
    } else if (rr) {
      take(d, "remapped_rows", rr.text, text);
    }
    for (const m of child(g, "mig_devices")?.children.filter((c) => c.name === "mig_device") ?? []) {
      const idx = textAt(m, "index");
      const total = textAt(m, "fb_memory_usage/total");
      (d.mig_devices ??= []).push({
        index: idx && /^\d+$/.test(idx) ? Number(idx) : d.mig_devices.length,
        memory_total_mib: total ? mib(total) : null,
      });
    }
    // ERR! anywhere else in the device's record still marks it unhealthy.
    for (const [path, node] of walk(g)) {
      if (node.children.length === 0 && isErr(node.text) && !d.errors.includes(path)) d.errors.push(path);
    }
    return d;
  });
  const driver = textAt(root, "driver_version");
  const cuda = textAt(root, "cuda_version");
  return {
    source: "xml",
    driver_version: driver && !isUnknown(driver) ? driver : null,
    cuda_version: cuda && !isUnknown(cuda) ? cuda : null,
    devices,
  };
}

// ---------------------------------------------------------------------------------------------- CSV

/** Splits one CSV line; nvidia-smi quotes nothing, but names may hold commas in other tools' captures. */
function splitCsv(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    else if (ch === "," && !quoted) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

/** "memory.total [MiB]" -> "memory.total"; clocks_throttle_reasons renamed clocks_event_reasons is irrelevant here. */
const headerKey = (h: string) => h.replace(/\s*\[[^\]]*\]\s*$/, "").trim().toLowerCase();

/**
 * `--query-gpu=... --format=csv` -> report, columns found by their header name (any order, any extra
 * columns, with or without units). Null when there is no header with at least `name` or `uuid`.
 */
export function parseSmiCsv(csv: string): SmiReport | null {
  const all = csv.split(/\r?\n/).filter((l) => l.trim());
  // The header is the first line naming a name or uuid column; warning lines may come before it.
  const at = all.findIndex((l) => splitCsv(l).map(headerKey).some((h) => h === "name" || h === "uuid"));
  if (at < 0) return null;
  const lines = all.slice(at);
  const headers = splitCsv(lines[0]).map(headerKey);
  const col = (row: string[], key: string): string | null => {
    const i = headers.indexOf(key);
    return i >= 0 && i < row.length ? row[i] : null;
  };
  let driver: string | null = null;
  const devices: GpuDevice[] = [];
  for (const [n, line] of lines.slice(1).entries()) {
    const row = splitCsv(line);
    if (row.length < headers.length) return null;
    const idx = col(row, "index");
    const d = emptyDevice(idx !== null && /^\d+$/.test(idx) ? Number(idx) : n);
    d.name = take(d, "name", col(row, "name"), text);
    d.uuid = take(d, "uuid", col(row, "uuid"), text);
    d.bus_id = take(d, "pci.bus_id", col(row, "pci.bus_id"), text);
    d.memory_total_mib = take(d, "memory.total", col(row, "memory.total"), mib);
    d.memory_used_mib = take(d, "memory.used", col(row, "memory.used"), mib);
    d.persistence_mode = take(d, "persistence_mode", col(row, "persistence_mode"), onOff);
    d.mig_mode = take(d, "mig.mode.current", col(row, "mig.mode.current"), onOff);
    d.ecc_uncorrected_volatile = take(
      d,
      "ecc.errors.uncorrected.volatile.total",
      col(row, "ecc.errors.uncorrected.volatile.total"),
      int,
    );
    d.ecc_uncorrected_aggregate = take(
      d,
      "ecc.errors.uncorrected.aggregate.total",
      col(row, "ecc.errors.uncorrected.aggregate.total"),
      int,
    );
    d.retired_pages_pending = take(d, "retired_pages.pending", col(row, "retired_pages.pending"), yesNo);
    d.remapped_rows_pending = take(d, "remapped_rows.pending", col(row, "remapped_rows.pending"), yesNo);
    d.remapped_rows_failure = take(d, "remapped_rows.failure", col(row, "remapped_rows.failure"), yesNo);
    for (const [i, v] of row.entries()) {
      if (isErr(v) && !d.errors.includes(headers[i])) d.errors.push(headers[i]);
    }
    const dv = col(row, "driver_version");
    if (dv && !isUnknown(dv)) driver ??= dv;
    devices.push(d);
  }
  return { source: "csv", driver_version: driver, cuda_version: null, devices };
}

// ---------------------------------------------------------------------------------------------- table

/**
 * The plain `nvidia-smi` table -> report. Reads the header's Driver/CUDA versions and the GPU blocks between
 * the `|===` rule and the first blank line; truncated names ("GeForce GTX 108...") are kept as printed.
 * Null when there is no driver header.
 */
export function parseSmiTable(table: string): SmiReport | null {
  const lines = table.split(/\r?\n/);
  const head = lines.find((l) => /Driver Version:/.test(l));
  if (!head) return null;
  const driver = /Driver Version:\s*([\d.]+)/.exec(head)?.[1] ?? null;
  const cuda = /CUDA Version:\s*([\d.]+)/.exec(head)?.[1] ?? null;
  const windows = lines.some((l) => /Driver-Model/.test(l) || /TCC\/WDDM/.test(l));
  const start = lines.findIndex((l) => /^\|=+\+/.test(l.trim()) || /^\|=+\|$/.test(l.trim()));
  const devices: GpuDevice[] = [];
  if (start >= 0) {
    let block: string[] = [];
    const flush = () => {
      if (block.length) {
        const d = parseTableBlock(block, windows);
        if (d) devices.push(d);
      }
      block = [];
    };
    for (const raw of lines.slice(start + 1)) {
      const l = raw.trimEnd();
      if (!l.trim()) break;
      if (l.startsWith("+") || /^\|-+\+/.test(l)) flush();
      else if (l.startsWith("|")) block.push(l);
      else break;
    }
    flush();
  }
  return { source: "table", driver_version: driver, cuda_version: cuda, devices };
}

function cells(line: string): string[] {
  return line.split("|").slice(1, -1).map((c) => c.trim());
}

function parseTableBlock(block: string[], windows: boolean): GpuDevice | null {
  const [c1, c2, c3] = cells(block[0]);
  const m = /^(\d+)\s+(.*?)\s+(On|Off|N\/A|WDDM|TCC|ERR!)$/.exec(c1 ?? "");
  if (!m) return null;
  const d = emptyDevice(Number(m[1]));
  d.name = take(d, "name", m[2], text);
  if (!windows) d.persistence_mode = take(d, "persistence_mode", m[3], onOff);
  d.bus_id = (c2 ?? "").split(/\s+/)[0] || null;
  // The table's ECC column is the volatile uncorrectable count; MIG mode prints "On" there.
  const ecc = (c3 ?? "").trim();
  if (/^\d+$/.test(ecc)) d.ecc_uncorrected_volatile = Number(ecc);
  else if (isErr(ecc)) d.errors.push("ecc.errors.uncorrected.volatile.total");
  else if (isUnknown(ecc)) d.unknown_fields.push("ecc.errors.uncorrected.volatile.total");
  if (block[1]) {
    const [s1, s2, s3] = cells(block[1]);
    for (const tok of `${s1} ${s3}`.split(/\s+/)) {
      if (isErr(tok) && !d.errors.includes("status")) d.errors.push("status");
    }
    const mem = /(\S+)\s*\/\s*(\S+)/.exec(s2 ?? "");
    if (mem) {
      d.memory_used_mib = take(d, "memory.used", mem[1], mib);
      d.memory_total_mib = take(d, "memory.total", mem[2], mib);
    }
  }
  if (block[2]) {
    const mig = cells(block[2])[2];
    if (mig !== undefined) d.mig_mode = take(d, "mig.mode.current", mig, onOff);
  }
  return d;
}

/** `nvidia-smi -L` -> index and uuid per GPU (MIG lines skipped). */
export function parseSmiList(list: string): { index: number; name: string; uuid: string }[] {
  const out: { index: number; name: string; uuid: string }[] = [];
  for (const l of list.split(/\r?\n/)) {
    const m = /^GPU (\d+): (.*) \(UUID: (GPU-[^)]+)\)/.exec(l);
    if (m) out.push({ index: Number(m[1]), name: m[2], uuid: m[3] });
  }
  return out;
}

/** /proc/driver/nvidia/version -> the loaded kernel module's version and flavour; null when it does not parse. */
export function parseProcDriverVersion(text: string): ProcDriverVersion | null {
  const line = text.split("\n").find((l) => l.startsWith("NVRM version:"));
  if (!line) return null;
  const m = /Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)\s/.exec(line + " ");
  if (!m) return null;
  return { driver_version: m[1], flavor: /Open Kernel Module/.test(line) ? "open" : "proprietary" };
}

// ---------------------------------------------------------------------------------------------- gather

/** "WARNING: infoROM is corrupted at gpu 0000:04:00.0" and the like, once each. */
export function smiWarnings(output: string): string[] {
  return [...new Set(output.split(/\r?\n/).map((l) => l.trim()).filter((l) => /^WARNING:/i.test(l)))];
}

/** Classifies a run that cannot be fixed by asking nvidia-smi in another form; null when another form may work. */
export function classifySmiRun(r: RunResult): SmiFailure | null {
  if (r.kind === "not-found") return { kind: "absent" };
  if (r.kind === "timed-out") return { kind: "hang", afterMs: r.afterMs };
  const out = `${r.stdout}\n${r.stderr}`.trim();
  if (/couldn't communicate with the NVIDIA driver/i.test(out) || r.code === 9) {
    return { kind: "no-communication", output: out };
  }
  if (/Driver\/library version mismatch/i.test(out)) return { kind: "nvml-mismatch", output: out };
  if (/No devices were found/i.test(out) || r.code === 6) return { kind: "no-devices", output: out };
  return null;
}

/** Runs nvidia-smi in each form until one parses; reads /proc/driver/nvidia/version beside it. */
export async function gatherGpu(env: Env, timeoutMs = 10_000): Promise<GpuFacts> {
  const facts: GpuFacts = {
    driver_version: null,
    cuda_version: null,
    cuda_version_source: null,
    source: null,
    devices: [],
    kernel_module: await readProcDriverVersion(env),
    failure: null,
    tried: [],
    warnings: [],
  };
  const forms: [string[], (s: string) => SmiReport | null][] = [
    [SMI_XML_ARGV, parseSmiXml],
    [SMI_CSV_ARGV, parseSmiCsv],
    [SMI_TABLE_ARGV, parseSmiTable],
  ];
  let report: SmiReport | null = null;
  let lastOutput = "";
  for (const [argv, parse] of forms) {
    facts.tried.push(argv.join(" "));
    const r = await env.run(argv, { timeoutMs });
    const fatal = classifySmiRun(r);
    if (fatal) {
      facts.failure = fatal;
      if (fatal.kind === "absent" && facts.kernel_module) {
        // The driver is loaded even though its tools are not on PATH: CUDA wheels can still be judged.
        facts.driver_version = facts.kernel_module.driver_version;
        facts.cuda_version = cudaForDriver(facts.driver_version);
        facts.cuda_version_source = facts.cuda_version ? "table" : null;
      }
      return facts;
    }
    if (r.kind !== "exited") continue;
    lastOutput = `${r.stdout}${r.stderr}`.trim();
    if (r.code !== 0) continue;
    const parsed = parse(r.stdout);
    if (!parsed) continue;
    facts.warnings = smiWarnings(`${r.stdout}\n${r.stderr}`);
    // A driver header with no GPU rows means no devices, unless a later form lists some.
    if (!report || parsed.devices.length > 0) report = parsed;
    if (parsed.devices.length > 0) break;
  }
  if (!report) {
    facts.failure = { kind: "unparsed", output: lastOutput.slice(0, 500) };
    return facts;
  }
  if (report.source === "table" && report.devices.some((d) => d.uuid === null)) {
    // Old tables carry no UUIDs; `-L` has them and is cheap.
    facts.tried.push(SMI_LIST_ARGV.join(" "));
    const r = await env.run(SMI_LIST_ARGV, { timeoutMs });
    if (r.kind === "exited" && r.code === 0) {
      for (const l of parseSmiList(r.stdout)) {
        const d = report.devices.find((x) => x.index === l.index);
        if (d && d.uuid === null) d.uuid = l.uuid;
      }
    }
  }
  facts.source = report.source;
  facts.devices = report.devices;
  facts.driver_version = report.driver_version ?? facts.kernel_module?.driver_version ?? null;
  if (report.cuda_version) {
    facts.cuda_version = report.cuda_version;
    facts.cuda_version_source = "nvidia-smi";
  } else if (facts.driver_version) {
    facts.cuda_version = cudaForDriver(facts.driver_version);
    facts.cuda_version_source = facts.cuda_version ? "table" : null;
  }
  if (report.devices.length === 0) {
    facts.failure = { kind: "no-devices", output: "no GPU rows in nvidia-smi output" };
  }
  return facts;
}

async function readProcDriverVersion(env: Env): Promise<ProcDriverVersion | null> {
  try {
    return parseProcDriverVersion(await env.fs.readTextFile(`${env.procRoot}/driver/nvidia/version`));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------- evaluate

/** gpu.driver, gpu.devices and gpu.health from the gathered facts, judged against the profile's GPU needs. */
export function evaluateGpu(facts: GpuFacts, ctx: Pick<CheckContext, "profile">): CheckResult[] {
  const profile = ctx.profile;
  const required = profile?.gpu.required ?? false;
  const gpuFacts = { gpu: publicGpuFacts(facts) };
  const km = facts.kernel_module;
  const missingStatus = required ? "fail" : profile ? "skip" : "warn";
  const skipRest = (why: string) => [
    result("gpu.devices", "skip", `not checked: ${why}`),
    result("gpu.health", "skip", `not checked: ${why}`),
  ];
  const f = facts.failure;
  if (f && facts.devices.length === 0) {
    let driver: CheckResult;
    const need = required ? ` (profile ${profile!.name} requires a GPU)` : "";
    switch (f.kind) {
      case "absent":
        driver = km
          ? result(
            "gpu.driver",
            required ? "fail" : "warn",
            `nvidia-smi is not on PATH, but the NVIDIA kernel module ${km.driver_version} is loaded${need}`,
            "Add the driver's utilities to PATH (usually /usr/bin; on clusters `module load cuda` or the nvidia-utils package)",
          )
          : result(
            "gpu.driver",
            missingStatus,
            `no NVIDIA driver: nvidia-smi is not on PATH and ${"/proc/driver/nvidia/version"} does not exist${need}`,
            required
              ? "Run on a GPU node (e.g. `srun --gres=gpu:1` or `bsub -gpu num=1`), or install the NVIDIA driver"
              : "Nothing to do on a CPU node; run on a GPU node to use GPUs",
          );
        break;
      case "no-communication":
        driver = result(
          "gpu.driver",
          km || required ? "fail" : "warn",
          `nvidia-smi cannot communicate with the NVIDIA driver${
            km ? ` (kernel module ${km.driver_version} is loaded)` : " (no kernel module loaded)"
          }${need}`,
          km
            ? "The driver is loaded but not answering: check `dmesg | grep -i -e nvrm -e xid`, then reload the nvidia modules or reboot the node"
            : "Load the driver (`modprobe nvidia`) or install it matching this kernel; on a CPU node nothing to do",
        );
        break;
      case "no-devices":
        driver = result(
          "gpu.driver",
          missingStatus,
          `the NVIDIA driver is installed but reports no GPUs ("No devices were found")${need}`,
          "Check the job's GPU allocation (CUDA_VISIBLE_DEVICES, cgroup device access) and `lspci | grep -i nvidia`; a GPU missing from lspci has fallen off the bus",
        );
        break;
      case "nvml-mismatch":
        driver = result(
          "gpu.driver",
          "fail",
          `NVML driver/library version mismatch: the user-space driver was upgraded but the loaded kernel module is ${
            km ? km.driver_version : "an older version"
          }`,
          "Reboot the node (or unload and reload the nvidia kernel modules) so the kernel module matches the installed driver",
        );
        break;
      case "hang":
        driver = result(
          "gpu.driver",
          "fail",
          `nvidia-smi did not answer within ${f.afterMs} ms and was killed`,
          "The driver is hung or a GPU is wedged: check `dmesg` for Xid errors, enable persistence mode (`nvidia-smi -pm 1`), drain the node and reset the GPU or reboot",
        );
        break;
      case "unparsed":
        driver = result(
          "gpu.driver",
          "fail",
          `nvidia-smi answered but no output form could be read (tried ${facts.tried.join("; ")}): ${
            f.output.split("\n")[0] || "no output"
          }`,
          "Run `nvidia-smi -q -x` by hand; if a site wrapper replaces nvidia-smi, put the real one first on PATH",
        );
        break;
    }
    driver.facts = gpuFacts;
    return [driver, ...skipRest("no usable nvidia-smi output")];
  }

  const n = facts.devices.length;
  const cuda = facts.cuda_version
    ? `, CUDA ${facts.cuda_version}${
      facts.cuda_version_source === "table" ? " (from NVIDIA's driver table)" : ""
    }`
    : "";
  const kmNote = km && facts.driver_version && km.driver_version !== facts.driver_version
    ? `; kernel module is ${km.driver_version}`
    : "";
  const driverRes = kmNote
    ? result(
      "gpu.driver",
      "fail",
      `driver ${facts.driver_version}${cuda}${kmNote}: the loaded module and the user-space driver differ`,
      "Reboot the node so the kernel module matches the installed driver",
      gpuFacts,
    )
    : result(
      "gpu.driver",
      "pass",
      `driver ${facts.driver_version ?? "unknown"}${cuda} (nvidia-smi ${facts.source})`,
      null,
      gpuFacts,
    );

  const list = facts.devices.map((d) =>
    `${d.index}: ${d.name ?? "?"} ${
      d.memory_total_mib !== null ? `${d.memory_total_mib} MiB` : "memory unknown"
    }`
  ).join(", ");
  let devices = result("gpu.devices", "pass", `${n} GPU${n === 1 ? "" : "s"}: ${list}`);
  if (profile) {
    const minCount = profile.gpu.min_count ?? (required ? 1 : 0);
    const minMem = profile.gpu.min_memory_mib;
    // Under MIG a job sees one slice: judge the largest slice, not the whole GPU.
    const usable = (d: GpuDevice) =>
      d.mig_mode === "enabled" && d.mig_devices?.length
        ? Math.max(...d.mig_devices.map((m) => m.memory_total_mib ?? 0))
        : d.memory_total_mib ?? 0;
    const big = minMem ? facts.devices.filter((d) => usable(d) >= minMem).length : n;
    if (n < minCount) {
      devices = result(
        "gpu.devices",
        required ? "fail" : "warn",
        `${n} GPU${n === 1 ? "" : "s"} visible, profile ${profile.name} needs ${minCount}`,
        "Ask the scheduler for more GPUs (e.g. `--gres=gpu:N`) or check CUDA_VISIBLE_DEVICES",
      );
    } else if (minMem && big < Math.max(1, minCount)) {
      devices = result(
        "gpu.devices",
        required ? "fail" : "warn",
        `${big} of ${n} GPUs have >= ${minMem} MiB; profile ${profile.name} needs ${
          Math.max(1, minCount)
        } (${list})`,
        "Run on a node with larger GPUs (or a full GPU instead of a MIG slice)",
      );
    }
  }
  return [driverRes, devices, evaluateHealth(facts.devices, facts.warnings)];
}

const gpus = (ix: number[]) => `GPU${ix.length > 1 ? "s" : ""} ${ix.join(", ")}`;
const has = (ix: number[]) => `${gpus(ix)} ${ix.length > 1 ? "have" : "has"}`;

/** Health signals per GPU: fails need the node drained; warns need attention but jobs can run. */
export function evaluateHealth(devices: GpuDevice[], warnings: string[] = []): CheckResult {
  // Each signal names the GPUs showing it once, so eight GPUs with persistence off make one phrase.
  const signals: {
    level: "fail" | "warn";
    hit: (d: GpuDevice) => boolean;
    say: (ix: number[]) => string;
    remedy: string;
  }[] = [
    {
      level: "fail",
      hit: (d) => d.errors.length > 0,
      say: (ix) =>
        ix.map((i) => {
          const e = devices.find((d) => d.index === i)!.errors;
          return `GPU ${i} reports ERR! in ${e.slice(0, 4).join(", ")}${e.length > 4 ? ", ..." : ""}`;
        }).join("; "),
      remedy: "Drain the node and check `dmesg` for Xid errors; reset the GPU (`nvidia-smi -r`) or reboot",
    },
    {
      level: "fail",
      hit: (d) => (d.ecc_uncorrected_volatile ?? 0) > 0,
      say: (ix) =>
        ix.map((i) =>
          `GPU ${i} has ${
            devices.find((d) => d.index === i)!.ecc_uncorrected_volatile
          } uncorrectable ECC errors since the driver loaded`
        ).join("; "),
      remedy: "Drain the node and reset the GPU; report it to the admins if the errors recur",
    },
    {
      level: "fail",
      hit: (d) => d.remapped_rows_failure === true,
      say: (ix) => `${gpus(ix)} failed a row remapping`,
      remedy: "The GPU needs replacement: drain the node and report it",
    },
    {
      level: "warn",
      hit: (d) => d.retired_pages_pending === true,
      say: (ix) => `${has(ix)} retired pages pending`,
      remedy: "Reset the GPU (or reboot) when idle so pending page retirements take effect",
    },
    {
      level: "warn",
      hit: (d) => d.remapped_rows_pending === true,
      say: (ix) => `${has(ix)} remapped rows pending`,
      remedy: "Reset the GPU (or reboot) when idle so pending row remappings take effect",
    },
    {
      level: "warn",
      hit: (d) => d.mig_mode === "enabled",
      say: (ix) =>
        `${gpus(ix)} ${ix.length > 1 ? "are" : "is"} in MIG mode (jobs see MIG slices, not the whole GPU)`,
      remedy: "Address MIG instances by their MIG- UUID in CUDA_VISIBLE_DEVICES, or ask for a non-MIG GPU",
    },
    {
      level: "warn",
      hit: (d) => d.persistence_mode === "disabled",
      say: (ix) => `persistence mode off on ${gpus(ix)} (slower CUDA start, state lost between jobs)`,
      remedy: "An admin can enable it: `nvidia-smi -pm 1` or the nvidia-persistenced service",
    },
  ];
  const found = signals.map((s) => ({ ...s, ix: devices.filter(s.hit).map((d) => d.index) })).filter((s) =>
    s.ix.length
  );
  if (warnings.length) {
    found.push({
      level: "warn",
      hit: () => false,
      ix: [],
      say: () => `nvidia-smi warns: ${warnings.join("; ")}`,
      remedy: /infoROM/i.test(warnings.join(" "))
        ? "A corrupted infoROM needs the GPU's firmware reflashed or the board replaced: report it to the admins"
        : "Read the warning; `nvidia-smi -q` shows the affected GPU",
    });
  }
  const fails = found.filter((s) => s.level === "fail");
  const unknown = devices.filter((d) => d.unknown_fields.length).map((d) =>
    `GPU ${d.index}: ${d.unknown_fields.length} fields N/A`
  );
  const tail = unknown.length ? ` (${unknown.join("; ")})` : "";
  const n = devices.length;
  if (found.length === 0) {
    return result(
      "gpu.health",
      "pass",
      `${n} GPU${n === 1 ? "" : "s"} healthy: no ERR!, no uncorrectable ECC errors, nothing pending${tail}`,
    );
  }
  return result(
    "gpu.health",
    fails.length ? "fail" : "warn",
    found.map((s) => s.say(s.ix)).join("; "),
    found.map((s) => s.remedy).join("; "),
  );
}

/** The JSON facts: the issue's names first, internals (the failure, what was tried) after. */
export function publicGpuFacts(f: GpuFacts): Record<string, unknown> {
  return {
    driver_version: f.driver_version,
    cuda_version: f.cuda_version,
    cuda_version_source: f.cuda_version_source,
    source: f.source,
    devices: f.devices,
    kernel_module: f.kernel_module,
    warnings: f.warnings,
    failure: f.failure?.kind ?? null,
    tried: f.tried,
  };
}
