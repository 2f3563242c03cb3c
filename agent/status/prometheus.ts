/**
 * Status as Prometheus text exposition (format 0.0.4) for node_exporter's textfile collector. The file is
 * replaced atomically by the caller: node_exporter reads `*.prom` at every scrape and must never see half.
 * GPU numbers come from the last doctor's facts: status itself never runs nvidia-smi.
 *
 * A value mlagent cannot know (no doctor run yet, nvidia-smi printed [N/A]) is written, never dropped: a
 * series that vanishes silences the alert watching it. Unknown gauges read -1 (so `!= 1` and `> 0` alerts
 * see them), unknown timestamps 0 (so "older than an hour" alerts fire). Each venv is its own series by its
 * directory: two venv dirs whose states name one profile (a copied venv) are two series, never a duplicate.
 */
import type { StatusReport } from "./mod.ts";

type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: "gauge" | "counter";
  /** What an unknown value is written as: -1 for gauges, 0 for timestamps. */
  unknown: number;
  samples: { labels: Labels; value: number }[];
}

export const UNKNOWN_GAUGE = -1;

/** Label values escape backslash, double quote and newline, as the text format requires. */
export function escapeLabelValue(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

export function renderFamilies(families: Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    out.push(`# HELP ${f.name} ${f.help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}`);
    out.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",");
      out.push(`${f.name}${labels ? `{${labels}}` : ""} ${formatValue(s.value)}`);
    }
  }
  return out.join("\n") + "\n";
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const bool = (v: unknown): number | null => (typeof v === "boolean" ? (v ? 1 : 0) : null);
const seconds = (iso: string | null): number | null => {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t / 1000 : null;
};

/** The metric families for one status report. */
export function statusMetrics(r: StatusReport): string {
  const fam = (name: string, help: string, type: Family["type"] = "gauge"): Family => ({
    name,
    help: name.endsWith("_timestamp_seconds") ? `${help} (0: unknown)` : `${help} (-1: unknown)`,
    type,
    unknown: name.endsWith("_timestamp_seconds") ? 0 : UNKNOWN_GAUGE,
    samples: [],
  });
  const add = (f: Family, value: number | null, labels: Labels = {}) => {
    f.samples.push({ labels, value: value ?? f.unknown });
  };

  const venvReady = fam(
    "mlagent_venv_ready",
    "1 when the profile's venv is ready for its current profile and its interpreter resolves",
  );
  const venvState = fam("mlagent_venv_state", "The venv's condition (one series per venv, value 1)");
  const seen = new Set<string>();
  for (const v of [...r.profiles.map((p) => ({ ...p.venv, profile: p.name })), ...r.venvs]) {
    if (seen.has(v.path)) continue;
    seen.add(v.path);
    const labels = { profile: v.profile ?? v.name, venv: v.name };
    add(venvReady, v.ready ? 1 : 0, labels);
    add(venvState, 1, { ...labels, state: v.condition });
  }
  const modelComplete = fam(
    "mlagent_model_complete",
    "1 when every file of the profile's model is on disk and whole",
  );
  for (const p of r.profiles) {
    for (const m of p.models) add(modelComplete, m.complete ? 1 : 0, { profile: p.name, repo: m.repo });
  }

  const facts = r.doctor.facts ?? {};
  const gpu = (facts.gpu ?? null) as { devices?: Record<string, unknown>[]; driver_version?: string } | null;
  const devices = Array.isArray(gpu?.devices) ? gpu!.devices! : [];
  const gpuCount = fam("mlagent_gpu_count", "GPUs the last doctor run saw");
  const gpuHealthy = fam("mlagent_gpu_healthy", "1 when the last doctor run's gpu.health check did not fail");
  const ecc = fam("mlagent_gpu_ecc_uncorrected_volatile", "Uncorrectable ECC errors since the driver loaded");
  const eccAgg = fam("mlagent_gpu_ecc_uncorrected_aggregate", "Uncorrectable ECC errors over the GPU's life");
  const rowsPending = fam("mlagent_gpu_remapped_rows_pending", "1 when row remappings wait for a GPU reset");
  const rowsFailure = fam(
    "mlagent_gpu_remapped_rows_failure",
    "1 when a row remapping failed (replace the GPU)",
  );
  const pagesPending = fam(
    "mlagent_gpu_retired_pages_pending",
    "1 when page retirements wait for a GPU reset",
  );
  const gpuErrors = fam("mlagent_gpu_err_fields", "Fields nvidia-smi printed as ERR! for this GPU");
  const judged = (r.doctor.state === "ok" || r.doctor.state === "failed") && !!gpu;
  add(gpuCount, judged ? devices.length : null);
  add(gpuHealthy, judged ? (r.doctor.failed.includes("gpu.health") ? 0 : 1) : null);
  for (const d of devices) {
    const labels = { gpu: String(d.index ?? ""), uuid: String(d.uuid ?? "") };
    add(ecc, num(d.ecc_uncorrected_volatile), labels);
    add(eccAgg, num(d.ecc_uncorrected_aggregate), labels);
    add(rowsPending, bool(d.remapped_rows_pending), labels);
    add(rowsFailure, bool(d.remapped_rows_failure), labels);
    add(pagesPending, bool(d.retired_pages_pending), labels);
    add(gpuErrors, Array.isArray(d.errors) ? d.errors.length : null, labels);
  }

  const doctorOk = fam("mlagent_doctor_ok", "1 when the last doctor run had no failed check");
  const doctorTime = fam("mlagent_doctor_last_run_timestamp_seconds", "When the last doctor run finished");
  const doctorFailed = fam("mlagent_doctor_check_failed", "1 for each check the last doctor run failed");
  add(doctorOk, r.doctor.ok === null ? null : r.doctor.ok ? 1 : 0);
  add(doctorTime, seconds(r.doctor.checked_at));
  for (const id of r.doctor.failed) add(doctorFailed, 1, { check: id });

  const cacheBytes = fam("mlagent_cache_bytes", "Bytes in the installer cache");
  const cacheEntries = fam("mlagent_cache_entries", "Entries in the installer cache");
  const cacheCorrupt = fam("mlagent_cache_corrupt_entries", "Cache entries found corrupt at the last heal");
  const cacheHeal = fam("mlagent_cache_last_heal_timestamp_seconds", "When the cache was last healed");
  const cacheLabels = { path: r.cache.path };
  add(cacheBytes, r.cache.bytes ?? (r.cache.exists ? null : 0), cacheLabels);
  add(cacheEntries, r.cache.entries, cacheLabels);
  add(cacheCorrupt, r.cache.corrupt_entries, cacheLabels);
  add(cacheHeal, seconds(r.cache.last_heal_at), cacheLabels);

  const locks = fam("mlagent_locks", "Locks by status (held, held-remote, stale-*)");
  const stale = fam("mlagent_locks_stale", "Locks left behind by dead or expired holders");
  const byStatus = new Map<string, number>();
  for (const l of r.locks) byStatus.set(l.status, (byStatus.get(l.status) ?? 0) + 1);
  for (const s of ["held", "held-remote", "stale-dead", "stale-expired", "stale-no-owner"]) {
    add(locks, byStatus.get(s) ?? 0, { status: s });
  }
  add(stale, r.locks.filter((l) => l.status.startsWith("stale")).length);

  const generated = fam("mlagent_status_timestamp_seconds", "When this file was written");
  add(generated, Date.parse(r.generated_at) / 1000);

  return renderFamilies([
    venvReady,
    venvState,
    modelComplete,
    gpuCount,
    gpuHealthy,
    ecc,
    eccAgg,
    rowsPending,
    rowsFailure,
    pagesPending,
    gpuErrors,
    doctorOk,
    doctorTime,
    doctorFailed,
    cacheBytes,
    cacheEntries,
    cacheCorrupt,
    cacheHeal,
    locks,
    stale,
    generated,
  ]);
}
