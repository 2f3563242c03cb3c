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
  /** MIG slices: under MIG a job gets one slice, with that slice's memory, not the GPU's. */
  mig_devices?: MigDevice[];
}

/**
 * One MIG device (a GPU instance with a compute instance), merged from what each output form tells:
 * `-q -x` and the table's "MIG devices" section give the index, GI/CI ids and exact memory; `-L` gives the
 * UUID jobs name it by and the profile name.
 */
export interface MigDevice {
  /** The MIG device index on its GPU ("MIG Dev" in the table, "Device  N" in `-L`). */
  index: number;
  /** "MIG-<uuid>" (R470+) or "MIG-GPU-<gpu uuid>/<gi>/<ci>" (R450), as `nvidia-smi -L` prints it. */
  uuid?: string | null;
  /** The profile as `-L` names it: "3g.40gb", "1c.3g.20gb", "1g.10gb+me". */
  profile?: string | null;
  gpu_instance_id?: number | null;
  compute_instance_id?: number | null;
  /** Exact, from `-q -x` or the table; null when only `-L` answered (see migProfileBoundMib). */
  memory_total_mib: number | null;
}

export type SmiSource = "xml" | "csv" | "table";

export interface SmiReport {
  source: SmiSource;
  driver_version: string | null;
  /** The newest CUDA the driver supports, as nvidia-smi prints it ("CUDA Version", "CUDA UMD Version"). */
  cuda_version: string | null;
  devices: GpuDevice[];
  /** How many GPUs nvidia-smi says are attached (`<attached_gpus>`, or listed plus those it could not open). */
  attached_gpus: number | null;
  /** "Unable to determine the device handle for GPU1: ..." lines: GPUs the driver knows but cannot open. */
  device_errors: string[];
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
  /** See SmiReport (optional so records built by hand in other checks' tests stay valid; gatherGpu sets them). */
  attached_gpus?: number | null;
  device_errors?: string[];
  /** Why `nvidia-smi -L` gave no MIG UUIDs on a node with MIG on; null when it answered or was not needed. */
  mig_list_error?: string | null;
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
      const id = (path: string) => {
        const v = textAt(m, path);
        return v && /^\d+$/.test(v) ? Number(v) : null;
      };
      // Newer drivers label a slice's memory "Shared FB Memory Usage" in -q; accept either element.
      const total = textAt(m, "fb_memory_usage/total") ?? textAt(m, "shared_fb_memory_usage/total");
      const uuid = textAt(m, "uuid");
      (d.mig_devices ??= []).push({
        index: id("index") ?? d.mig_devices.length,
        uuid: uuid && /^MIG-/.test(uuid) ? uuid : null,
        gpu_instance_id: id("gpu_instance_id"),
        compute_instance_id: id("compute_instance_id"),
        memory_total_mib: total && !isUnknown(total) ? mib(total) : null,
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
  const attached = textAt(root, "attached_gpus");
  return {
    source: "xml",
    driver_version: driver && !isUnknown(driver) ? driver : null,
    cuda_version: cuda && !isUnknown(cuda) ? cuda : null,
    devices,
    attached_gpus: attached && /^\d+$/.test(attached) ? Number(attached) : null,
    device_errors: smiDeviceErrors(xml),
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
  const deviceErrors = smiDeviceErrors(csv);
  return {
    source: "csv",
    driver_version: driver,
    cuda_version: null,
    devices,
    attached_gpus: deviceErrors.length ? devices.length + deviceErrors.length : null,
    device_errors: deviceErrors,
  };
}

// ---------------------------------------------------------------------------------------------- table

/**
 * The driver and CUDA versions from the table's banner, found by what the labels mean rather than one exact
 * label: up to 580 it reads "Driver Version: 580.95.05   CUDA Version: 13.0", from 610 "KMD Version: 610.43.02
 * CUDA UMD Version: 13.3". A label naming CUDA is the CUDA version; one naming the driver or its kernel-mode
 * part (KMD) is the driver. The banner's own "NVIDIA-SMI <version>" is the driver's version too (nvidia-smi ships
 * with the driver), so it stands in when no driver label is left.
 */
export function parseSmiBanner(line: string): { driver: string | null; cuda: string | null } | null {
  const smi = /NVIDIA-SMI\s+(\d+\.\d+(?:\.\d+)*)/.exec(line)?.[1] ?? null;
  let driver: string | null = null;
  let cuda: string | null = null;
  let labelled = false;
  for (const m of line.matchAll(/([A-Za-z][A-Za-z-]*(?: [A-Za-z][A-Za-z-]*)*)\s*:\s*([^\s|]+)/g)) {
    const label = m[1].toLowerCase();
    if (!/\bversion\b/.test(label)) continue;
    labelled = true;
    const value = /^\d+(?:\.\d+)+$/.test(m[2]) ? m[2] : null;
    if (/\bcuda\b/.test(label)) cuda ??= value;
    else if (/\b(driver|kmd)\b/.test(label)) driver ??= value;
  }
  if (!smi && !labelled) return null;
  return { driver: driver ?? smi, cuda };
}

/** "Unable to determine the device handle for GPU1: 0000:34:00.0: Unknown Error" lines, once each. */
export function smiDeviceErrors(output: string): string[] {
  return [
    ...new Set(
      output.split(/\r?\n/).map((l) => l.trim()).filter((l) =>
        /^Unable to determine the device handle/i.test(l)
      ),
    ),
  ];
}

/**
 * The plain `nvidia-smi` table -> report. Reads the banner's driver/CUDA versions (parseSmiBanner), the GPU
 * blocks between the `|===` rule and the first blank line, and the "MIG devices" section below them (each
 * slice's memory); truncated names ("GeForce GTX 108...") are kept as printed. Null when there is no banner.
 */
export function parseSmiTable(table: string): SmiReport | null {
  const lines = table.split(/\r?\n/);
  let banner: { driver: string | null; cuda: string | null } | null = null;
  for (const l of lines) {
    if (/NVIDIA-SMI\s+\d/.test(l) || /(Driver|KMD) Version:/i.test(l)) banner = parseSmiBanner(l);
    if (banner) break;
  }
  if (!banner) return null;
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
  for (const m of parseTableMigSection(lines)) {
    const d = devices.find((x) => x.index === m.gpu);
    if (!d) continue;
    (d.mig_devices ??= []).push(m.device);
    d.mig_mode ??= "enabled";
  }
  const deviceErrors = smiDeviceErrors(table);
  return {
    source: "table",
    driver_version: banner.driver,
    cuda_version: banner.cuda,
    devices,
    attached_gpus: deviceErrors.length ? devices.length + deviceErrors.length : null,
    device_errors: deviceErrors,
  };
}

/**
 * The table's "MIG devices:" section: one row per slice, "| GPU GI CI MIG-Dev | used / total | ..."; the
 * line under each row (BAR1 usage) starts with an empty first cell and is skipped.
 */
function parseTableMigSection(lines: string[]): { gpu: number; device: MigDevice }[] {
  const at = lines.findIndex((l) => /^\|\s*MIG devices:/.test(l.trim()));
  if (at < 0) return [];
  const rule = lines.findIndex((l, i) => i > at && /^\|=+\+/.test(l.trim()));
  if (rule < 0) return [];
  const out: { gpu: number; device: MigDevice }[] = [];
  for (const raw of lines.slice(rule + 1)) {
    const l = raw.trim();
    if (!l) break;
    if (!l.startsWith("|")) continue;
    const [ids, memory] = cells(l);
    const m = /^(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/.exec(ids ?? "");
    if (!m) continue;
    const total = /\S+\s*\/\s*(\S+)/.exec(memory ?? "")?.[1];
    out.push({
      gpu: Number(m[1]),
      device: {
        index: Number(m[4]),
        gpu_instance_id: Number(m[2]),
        compute_instance_id: Number(m[3]),
        memory_total_mib: total && !isUnknown(total) && !isErr(total) ? mib(total) : null,
      },
    });
  }
  return out;
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

export interface SmiListEntry {
  index: number;
  name: string;
  uuid: string;
  /** The MIG devices listed under this GPU, in order. */
  mig_devices: { index: number; profile: string; uuid: string }[];
}

/**
 * `nvidia-smi -L` -> each GPU with its MIG devices. R470+ drivers print "  MIG 3g.40gb     Device  0: (UUID:
 * MIG-<uuid>)"; R450 printed the UUID as "MIG-GPU-<gpu uuid>/<gi>/<ci>" and, with several compute instances
 * per GPU instance, profiles like "1c.3g.20gb".
 */
export function parseSmiList(list: string): SmiListEntry[] {
  const out: SmiListEntry[] = [];
  for (const l of list.split(/\r?\n/)) {
    const g = /^GPU (\d+): (.*) \(UUID: (GPU-[^)]+)\)/.exec(l);
    if (g) {
      out.push({ index: Number(g[1]), name: g[2], uuid: g[3], mig_devices: [] });
      continue;
    }
    const m = /^\s*MIG\s+(\S+)\s+Device\s+(\d+):\s*\(UUID:\s*(MIG-[^)\s]+)\)/.exec(l);
    if (m && out.length) {
      out[out.length - 1].mig_devices.push({ index: Number(m[2]), profile: m[1], uuid: m[3] });
    }
  }
  return out;
}

/** The GPU instance and compute instance ids an R450 "MIG-GPU-<uuid>/<gi>/<ci>" id carries; null otherwise. */
export function r450MigIds(id: string): { gpu_uuid: string; gi: number; ci: number } | null {
  const m = /^MIG-(GPU-[0-9a-fA-F-]+)\/(\d+)\/(\d+)$/.exec(id);
  return m ? { gpu_uuid: m[1], gi: Number(m[2]), ci: Number(m[3]) } : null;
}

/** Adds what `-L` says (GPU UUIDs, MIG UUIDs and profiles) to the devices another form reported. */
export function mergeSmiList(devices: GpuDevice[], list: SmiListEntry[]): void {
  for (const l of list) {
    const d = devices.find((x) => x.index === l.index) ??
      devices.find((x) => x.uuid !== null && x.uuid.toLowerCase() === l.uuid.toLowerCase());
    if (!d) continue;
    if (d.uuid === null) d.uuid = l.uuid;
    if (l.mig_devices.length && d.mig_mode !== "enabled") d.mig_mode = "enabled";
    for (const lm of l.mig_devices) {
      const ids = r450MigIds(lm.uuid);
      const m = (d.mig_devices ??= []).find((x) => x.index === lm.index);
      if (m) {
        m.uuid = lm.uuid;
        m.profile = lm.profile;
        m.gpu_instance_id ??= ids?.gi ?? null;
        m.compute_instance_id ??= ids?.ci ?? null;
      } else {
        d.mig_devices.push({
          index: lm.index,
          uuid: lm.uuid,
          profile: lm.profile,
          gpu_instance_id: ids?.gi ?? null,
          compute_instance_id: ids?.ci ?? null,
          memory_total_mib: null,
        });
      }
    }
    d.mig_devices?.sort((a, b) => a.index - b.index);
  }
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
    attached_gpus: null,
    device_errors: [],
    mig_list_error: null,
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
    const parsed = parse(r.stdout);
    // A GPU the driver cannot open makes nvidia-smi fail while it still lists the others: keep those.
    if (!parsed || (r.code !== 0 && parsed.devices.length === 0)) continue;
    facts.warnings = smiWarnings(`${r.stdout}\n${r.stderr}`);
    facts.device_errors = smiDeviceErrors(`${r.stdout}\n${r.stderr}`);
    // A driver header with no GPU rows means no devices, unless a later form lists some.
    if (!report || parsed.devices.length > 0) report = parsed;
    if (parsed.devices.length > 0) break;
  }
  if (!report) {
    facts.failure = { kind: "unparsed", output: lastOutput.slice(0, 500) };
    return facts;
  }
  const migOn = report.devices.some((d) => d.mig_mode === "enabled");
  if (migOn || (report.source === "table" && report.devices.some((d) => d.uuid === null))) {
    // Jobs name MIG slices by the UUIDs only `-L` prints; old tables carry no GPU UUIDs either.
    facts.tried.push(SMI_LIST_ARGV.join(" "));
    const r = await env.run(SMI_LIST_ARGV, { timeoutMs });
    if (r.kind === "timed-out") {
      // The driver answered once and then hung: as much a hung driver as a first call that never returns.
      facts.failure = { kind: "hang", afterMs: r.afterMs };
    } else if (r.kind === "exited" && r.code === 0) {
      mergeSmiList(report.devices, parseSmiList(r.stdout));
    } else if (migOn) {
      facts.mig_list_error = r.kind === "exited"
        ? `nvidia-smi -L exited ${r.code}: ${`${r.stdout}${r.stderr}`.trim().split("\n")[0] || "no output"}`
        : "nvidia-smi -L is not on PATH";
    }
  }
  facts.source = report.source;
  facts.devices = report.devices;
  facts.device_errors = [...new Set([...report.device_errors, ...(facts.device_errors ?? [])])];
  facts.attached_gpus = report.attached_gpus ??
    (facts.device_errors.length ? report.devices.length + facts.device_errors.length : null);
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

// ---------------------------------------------------------------------------------------------- memory

/**
 * A profile's need is a nominal size: "80 GB" models are written as 81920 MiB, yet an H100 80GB reports 81559
 * MiB and an H200 143771 MiB for "141 GB" (HBM parts report a little under their nominal GiB). A need is met
 * by memory within this fraction of it. GDDR cards with ECC on lose a real 1/16 (an L40S reports 46068 MiB,
 * not 48 GiB); that memory is gone for the job too, so it is not forgiven.
 */
export const NOMINAL_SLACK = 0.01;

/** Below this fraction of what its model reports, a GPU "reports clearly less than it should": a node fault. */
export const SHORT_FRACTION = 0.9;

/**
 * What a healthy GPU of each model reports as total memory, MiB, as nvidia-smi printed it in the captured
 * outputs under tests/fixtures/nvidia-smi (names as printed, truncated table names included). A model missing
 * here is judged by what it reports alone.
 */
const MODEL_MEMORY_MIB: [RegExp, number][] = [
  [/\bH100 80GB HBM3\b/, 81559], // table_565.57.01_8xH100-SXM, table_590.48.01_1xH100-80GB-HBM3
  [/\bH200\b/, 143771], // table_590.48.01_1xH200_MIG-enabled_idle, querygpu_590.48.01_1xH200_load
  [/\bA100-SXM4-80GB\b/, 81920], // table_555.42.02_4xA100-SXM4-80GB
  [/\bB200\b/, 183359], // table_575.57.08_8xB200_noprocsection
  [/\bA30\b/, 24576], // table_525.85.12_8xA30_one-GPU-ERR
  [/\bA40\b/, 46068], // table_550.127.05_10xA40 (ECC on)
  [/\bL40S\b/, 46068], // table_595.80_1xL40S_load (ECC on)
  [/\bV100-SXM2-16GB\b/, 16384], // table_535.129.03_8xV100-SXM2-16GB_load
  [/\bRTX PRO 6000 Bla/, 97887], // q_x_590.44.01_1xRTXPRO6000-Blackwell, table_610.57.04_4xRTXPRO6000
  [/\bRTX 4090\b/, 24564], // q_x_535.86.05_1xRTX4090
  [/\bRTX 3090\b/, 24576], // q_x_525.147.05_1xRTX3090
];

/** The total memory a healthy GPU of this model reports, MiB; null for a model not in the table. */
export function modelMemoryMib(name: string | null): number | null {
  if (!name) return null;
  return MODEL_MEMORY_MIB.find(([re]) => re.test(name))?.[1] ?? null;
}

/** Whether `mib` meets a need of `needMib`, allowing for nominal sizes (NOMINAL_SLACK). */
export function fitsNeed(mib: number, needMib: number): boolean {
  return mib >= needMib * (1 - NOMINAL_SLACK);
}

/**
 * The most memory a MIG profile can have, MiB: the "40gb" of "3g.40gb" as GiB. Every slice seen reports less
 * than its name (3g.40gb 40448, 1g.10gb 9984, 3g.71gb 71424 MiB), so the name bounds a slice from above but
 * does not give its size.
 */
export function migProfileBoundMib(profile: string | null | undefined): number | null {
  const m = /(?:^|\.)(\d+)gb(?:\+|$)/i.exec(profile ?? "");
  return m ? Number(m[1]) * 1024 : null;
}

/** A GPU's memory far below its model's: the memory it reports and what the model reports; null when fine. */
export function memoryShortfall(d: GpuDevice): { mib: number; model_mib: number } | null {
  const model = modelMemoryMib(d.name);
  if (model === null || d.memory_total_mib === null) return null;
  return d.memory_total_mib < model * SHORT_FRACTION ? { mib: d.memory_total_mib, model_mib: model } : null;
}

/** What a scheduler can hand a job: a whole GPU, or one MIG slice of a GPU in MIG mode. */
export interface GpuUnit {
  gpu: GpuDevice;
  mig: MigDevice | null;
}

/**
 * The node's schedulable units in the order Slurm numbers its GPU gres and CUDA enumerates devices: each GPU
 * in index order, a GPU in MIG mode replaced by its slices. A GPU in MIG mode whose slices are unknown stays
 * one unit (we cannot tell how many it has).
 */
export function schedulableUnits(devices: GpuDevice[]): GpuUnit[] {
  const out: GpuUnit[] = [];
  for (const gpu of [...devices].sort((a, b) => a.index - b.index)) {
    if (gpu.mig_mode === "enabled" && gpu.mig_devices?.length) {
      for (const mig of gpu.mig_devices) out.push({ gpu, mig });
    } else out.push({ gpu, mig: null });
  }
  return out;
}

/** "GPU 0 (NVIDIA H100 80GB HBM3)" or "MIG 1g.10gb slice MIG-0000... (device 2 of GPU 0)". */
export function unitLabel(u: GpuUnit): string {
  if (!u.mig) return `GPU ${u.gpu.index}${u.gpu.name ? ` (${u.gpu.name})` : ""}`;
  return `MIG ${u.mig.profile ?? ""}${u.mig.profile ? " " : ""}slice ${
    u.mig.uuid ?? `${u.mig.index}`
  } (device ${u.mig.index} of GPU ${u.gpu.index})`;
}

export type UnitMemoryVerdict =
  /** Enough memory. */
  | { kind: "fits"; mib: number }
  /** Not enough, and never will be on this kind of device: the job asked for the wrong thing. */
  | { kind: "never"; mib: number; exact: boolean }
  /** Not enough because the GPU reports clearly less than its model: the node is at fault. */
  | { kind: "short"; mib: number; model_mib: number }
  /** nvidia-smi did not say; `bound_mib` is the most it can be, where known. */
  | { kind: "unknown"; bound_mib: number | null };

/** Judges one unit's memory against a need in MiB. Pure; never guesses a size nvidia-smi did not print. */
export function judgeUnitMemory(u: GpuUnit, needMib: number): UnitMemoryVerdict {
  if (u.mig) {
    const m = u.mig.memory_total_mib;
    if (m !== null) {
      return fitsNeed(m, needMib) ? { kind: "fits", mib: m } : { kind: "never", mib: m, exact: true };
    }
    const bound = migProfileBoundMib(u.mig.profile);
    if (bound !== null && !fitsNeed(bound, needMib)) return { kind: "never", mib: bound, exact: false };
    return { kind: "unknown", bound_mib: bound };
  }
  const g = u.gpu;
  if (g.mig_mode === "enabled" && g.mig_devices?.length) {
    // A GPU in MIG mode gives a job one slice at most: judge the best of them.
    const vs = g.mig_devices.map((mig) => judgeUnitMemory({ gpu: g, mig }, needMib));
    const best = (k: UnitMemoryVerdict["kind"]) =>
      vs.filter((v) => v.kind === k).sort((a, b) => ("mib" in b ? b.mib : 0) - ("mib" in a ? a.mib : 0))[0];
    return best("fits") ?? best("unknown") ?? best("never");
  }
  const model = modelMemoryMib(g.name);
  const mib = g.memory_total_mib;
  if (mib === null) {
    if (model !== null && !fitsNeed(model, needMib)) return { kind: "never", mib: model, exact: false };
    return { kind: "unknown", bound_mib: model };
  }
  if (fitsNeed(mib, needMib)) return { kind: "fits", mib };
  if (model !== null && mib < model * SHORT_FRACTION && fitsNeed(model, needMib)) {
    return { kind: "short", mib, model_mib: model };
  }
  return { kind: "never", mib: Math.max(mib, model ?? 0), exact: model === null || mib >= model };
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
  // A probe that hung is a fault even when an earlier one listed GPUs: the driver stopped answering.
  if (f && (facts.devices.length === 0 || f.kind === "hang")) {
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
              ? "run on a GPU node (e.g. `srun --gres=gpu:1` or `bsub -gpu num=1`), or install the NVIDIA driver"
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
            : "load the driver (`modprobe nvidia`) or install it matching this kernel; on a CPU node nothing to do",
        );
        break;
      case "no-devices":
        driver = result(
          "gpu.driver",
          missingStatus,
          `the NVIDIA driver is installed but reports no GPUs ("No devices were found")${need}`,
          "check the job's GPU allocation (CUDA_VISIBLE_DEVICES, cgroup device access) and `lspci | grep -i nvidia`; a GPU missing from lspci has fallen off the bus",
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
          "run `nvidia-smi -q -x` by hand; if a site wrapper replaces nvidia-smi, put the real one first on PATH",
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
    // Under MIG a job sees one slice: judge the best slice, not the whole GPU (judgeUnitMemory).
    const big = minMem
      ? facts.devices.filter((d) => judgeUnitMemory({ gpu: d, mig: null }, minMem).kind === "fits").length
      : n;
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
        "run on a node with larger GPUs (or a full GPU instead of a MIG slice)",
      );
    }
  }
  return [
    driverRes,
    devices,
    evaluateHealth(facts.devices, facts.warnings, {
      attached_gpus: facts.attached_gpus,
      device_errors: facts.device_errors,
    }),
  ];
}

const gpus = (ix: number[]) => `GPU${ix.length > 1 ? "s" : ""} ${ix.join(", ")}`;
const has = (ix: number[]) => `${gpus(ix)} ${ix.length > 1 ? "have" : "has"}`;

/** What nvidia-smi said about the node as a whole, beside the GPUs it listed. */
export interface NodeGpuSignals {
  attached_gpus?: number | null;
  device_errors?: string[];
  /** How many GPUs nvidia-smi listed on the node (default: the devices judged). */
  listed?: number;
  /** The job was given MIG slices: MIG mode is expected, not worth a warning. */
  mig_expected?: boolean;
}

/** Health signals per GPU: fails need the node drained; warns need attention but jobs can run. */
export function evaluateHealth(
  devices: GpuDevice[],
  warnings: string[] = [],
  node: NodeGpuSignals = {},
): CheckResult {
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
      remedy: "drain the node and check `dmesg` for Xid errors; reset the GPU (`nvidia-smi -r`) or reboot",
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
      remedy: "drain the node and reset the GPU; report it to the admins if the errors recur",
    },
    {
      level: "fail",
      hit: (d) => memoryShortfall(d) !== null,
      say: (ix) =>
        ix.map((i) => {
          const d = devices.find((x) => x.index === i)!;
          const s = memoryShortfall(d)!;
          return `GPU ${i} (${d.name}) reports ${s.mib} MiB total, a healthy one ${s.model_mib} MiB`;
        }).join("; "),
      remedy:
        "drain the node: a GPU showing far less memory than its model has lost memory to a fault or a setting; check `nvidia-smi -q -d MEMORY,ROW_REMAPPER,PAGE_RETIREMENT` and `dmesg`, then reset the GPU or have it replaced",
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
      hit: (d) => d.mig_mode === "enabled" && !node.mig_expected,
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
  const errors = node.device_errors ?? [];
  const attached = node.attached_gpus ?? null;
  const listed = node.listed ?? devices.length;
  if ((attached !== null && attached !== listed) || errors.length) {
    found.push({
      level: "warn",
      hit: () => false,
      ix: [],
      say: () =>
        `nvidia-smi reports ${attached ?? listed + errors.length} GPUs attached but lists ${listed}${
          errors.length ? ` (${errors.join("; ")})` : ""
        }`,
      remedy:
        "A GPU the driver knows but cannot open has usually fallen off the bus: check `nvidia-smi -L` and `dmesg | grep -i xid` (Xid 79), then drain the node to reset or reseat it",
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
    attached_gpus: f.attached_gpus ?? null,
    device_errors: f.device_errors ?? [],
    mig_list_error: f.mig_list_error ?? null,
    failure: f.failure?.kind ?? null,
    tried: f.tried,
  };
}
