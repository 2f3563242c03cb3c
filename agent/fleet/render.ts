/** The fleet report for people (a compact table) and for Prometheus (one series per node, never twice). */
import { formatDuration } from "../core/output.ts";
import { renderFamilies, UNKNOWN_GAUGE } from "../status/prometheus.ts";
import type { FleetReport, NodeRow } from "./types.ts";

const FAULT_WORDS: Record<string, string> = {
  err: "ERR!",
  ecc: "uncorrectable ECC",
  "row-remap-failure": "row remapping failed",
};

/** What to say about a node in the problems table, most urgent first. */
export function nodeProblems(n: NodeRow): string[] {
  const out: string[] = [];
  if (n.verdict === "unhealthy") out.push(`unhealthy: ${n.faults.join("; ") || "?"}`);
  if (n.verdict === "unknown") out.push("health could not judge");
  if (n.drained) out.push(`drained${n.drain_reason ? ` "${n.drain_reason}"` : ""}`);
  // A failing gpu.health already names the GPUs.
  const gpuNamed = n.verdict === "unhealthy" && n.failed_checks.includes("gpu.health");
  for (const g of gpuNamed ? [] : n.gpu_faults) {
    out.push(`GPU ${g.gpu} ${g.faults.map((f) => FAULT_WORDS[f] ?? f).join(", ")}`);
  }
  for (const t of n.driver_too_old) {
    out.push(
      `driver ${n.driver_version ?? "?"} too old for ${t.profile ?? t.venv} (${t.cuda_variant ?? "?"})`,
    );
  }
  if ((n.cache_corrupt_entries ?? 0) > 0) out.push(`cache: ${n.cache_corrupt_entries} corrupt entries`);
  for (const p of n.problems) out.push(`${p.kind}: ${p.file}: ${p.detail}`);
  if (!n.status_file && !n.problems.length) out.push("no status report");
  else if (!n.health_file && !n.problems.length && n.attention) out.push("no health report");
  return out;
}

const LIST = 6;
const names = (xs: string[]) =>
  xs.slice(0, LIST).join(" ") + (xs.length > LIST ? ` +${xs.length - LIST}` : "");

export function renderFleetText(r: FleetReport): string {
  const c = r.counts;
  const problemWords = Object.entries(c.problems).map(([k, v]) => `${v} ${k}`);
  const out = [
    `fleet ${r.source}: ${c.nodes} nodes from ${c.files} files, ${c.current} current (max age ${
      formatDuration(r.max_age_s * 1000)
    }); health: ${c.healthy} healthy, ${c.unhealthy} unhealthy, ${c.cannot_judge} cannot judge, ${c.drained} drained${
      problemWords.length ? `; files: ${problemWords.join(", ")}` : ""
    }`,
  ];
  if (r.profiles.length) {
    const w = Math.max(7, ...r.profiles.map((p) => p.profile.length));
    const cols = ["READY", "DAMAGED", "OUTDATED", "MISSING", "OTHER", "UNKNOWN", "OLD-DRIVER"];
    out.push("", `${"PROFILE".padEnd(w)}  ${cols.map((h) => h.padStart(8)).join(" ")}`);
    for (const p of r.profiles) {
      const n = [p.ready, p.damaged, p.outdated, p.missing, p.other, p.unknown, p.driver_too_old].map((x) =>
        x.length
      );
      out.push(`${p.profile.padEnd(w)}  ${n.map((x) => String(x).padStart(8)).join(" ")}`);
      const detail = [
        p.damaged.length ? `damaged: ${names(p.damaged)}` : "",
        p.outdated.length ? `outdated: ${names(p.outdated)}` : "",
        p.missing.length && p.missing.length < c.nodes ? `missing: ${names(p.missing)}` : "",
        p.other.length ? `other: ${names(p.other.map((o) => `${o.node}(${o.condition})`))}` : "",
        p.driver_too_old.length ? `old driver: ${names(p.driver_too_old)}` : "",
      ].filter(Boolean);
      for (const d of detail) out.push(`${"".padEnd(w)}    ${d}`);
    }
  }
  const flagged = r.nodes.filter((n) => n.attention);
  if (flagged.length) {
    const w = Math.max(4, ...flagged.map((n) => n.node.length));
    out.push("", `${"NODE".padEnd(w)}  PROBLEMS`);
    for (const n of flagged) out.push(`${n.node.padEnd(w)}  ${nodeProblems(n).join("; ")}`);
  } else {
    out.push("", "every node current and healthy");
  }
  return out.join("\n");
}

interface Family {
  name: string;
  help: string;
  type: "gauge" | "counter";
  unknown: number;
  samples: { labels: Record<string, string>; value: number }[];
}

/**
 * Prometheus text exposition with a `node` label. Each family keeps one sample per label set (a second one
 * for the same labels adds up, as a count would), so no series is ever written twice.
 */
export function renderFleetPrometheus(r: FleetReport): string {
  const families: Family[] = [];
  const fam = (name: string, help: string) => {
    // Series for what a node's files do not say are left out: the node-level file-problem series say why.
    const f: Family = { name, help, type: "gauge", unknown: UNKNOWN_GAUGE, samples: [] };
    const index = new Map<string, number>();
    families.push(f);
    return (value: number | null, labels: Record<string, string> = {}, add = false) => {
      if (value === null || !Number.isFinite(value)) return;
      const key = JSON.stringify(labels);
      const at = index.get(key);
      if (at === undefined) {
        index.set(key, f.samples.length);
        f.samples.push({ labels, value });
      } else if (add) f.samples[at].value += value;
    };
  };
  const nodes = fam("mlagent_fleet_nodes", "Nodes with at least one file in the fleet directory");
  const attention = fam("mlagent_fleet_nodes_attention", "Nodes with something an admin should look at");
  const profileNodes = fam(
    "mlagent_fleet_profile_nodes",
    "Nodes per profile and venv state (missing: no venv; unknown: no usable status file)",
  );
  const fileProblem = fam(
    "mlagent_fleet_node_file_problems",
    "Node files with a problem, by kind (truncated, newer-schema, clock-skew, stale, ...)",
  );
  const age = fam("mlagent_fleet_node_report_age_seconds", "Age of the node's last status or health report");
  const verdict = fam(
    "mlagent_fleet_node_health",
    "The node's last health verdict (one series per node, value 1)",
  );
  const drained = fam("mlagent_fleet_node_drained", "1 when the node was drained at its last health run");
  const gpuFaults = fam(
    "mlagent_fleet_node_gpu_faults",
    "GPUs with a fault (ERR!, uncorrectable ECC, failed row remap) at the last health run",
  );
  const cache = fam(
    "mlagent_fleet_node_cache_corrupt_entries",
    "Corrupt installer cache entries at the node's last scan",
  );
  const ready = fam("mlagent_fleet_venv_ready", "1 when the node's venv for the profile is ready");
  const oldDriver = fam(
    "mlagent_fleet_driver_too_old",
    "1 when the node's driver cannot run the CUDA wheels of the profile's venv",
  );
  const generated = fam("mlagent_fleet_report_timestamp_seconds", "When this report was made");

  nodes(r.counts.nodes);
  attention(r.counts.attention);
  for (const p of r.profiles) {
    for (
      const [state, list] of [
        ["ready", p.ready],
        ["damaged", p.damaged],
        ["outdated", p.outdated],
        ["missing", p.missing],
        ["other", p.other],
        ["unknown", p.unknown],
      ] as const
    ) {
      profileNodes(list.length, { profile: p.profile, state });
    }
  }
  for (const n of r.nodes) {
    const node = n.node;
    for (const p of n.problems) fileProblem(1, { node, kind: p.kind }, true);
    age(n.status_age_ms === null ? null : n.status_age_ms / 1000, { node, report: "status" });
    age(n.health_age_ms === null ? null : n.health_age_ms / 1000, { node, report: "health" });
    if (n.verdict) verdict(1, { node, verdict: n.verdict });
    if (n.drained !== null) drained(n.drained ? 1 : 0, { node });
    if (n.health_file) gpuFaults(n.gpu_faults.length, { node });
    cache(n.cache_corrupt_entries, { node });
    for (const [profile, condition] of Object.entries(n.venvs)) {
      ready(condition === "ready" ? 1 : 0, { node, profile });
    }
    for (const t of n.driver_too_old) oldDriver(1, { node, profile: t.profile ?? t.venv });
  }
  generated(Date.parse(r.generated_at) / 1000);
  return renderFamilies(families);
}
