/**
 * Node files -> one cluster report. Pure: the clock and the limits come in as options. Every file is judged
 * on its own (unreadable, cut short, from a newer mlagent, from a clock far off, stale, a second file for the
 * same node) and a bad one is reported on its node's row; nothing here throws for what a file holds.
 */
import { SCHEMA_VERSION } from "../core/output.ts";
import { formatDuration, isoTime } from "../core/output.ts";
import type {
  FileProblem,
  FileProblemKind,
  FleetReport,
  MergeOptions,
  NodeRow,
  ProfileRow,
  RawNodeFile,
} from "./types.ts";

type Json = Record<string, unknown>;

export type ParsedNodeFile =
  | {
    kind: "status" | "health";
    file: string;
    node: string;
    at_ms: number;
    end_ms: number;
    mtime_ms: number | null;
    doc: Json;
  }
  | { kind: "bad"; file: string; node: string; problem: FileProblem };

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** The node a file names by its name: `gpu-17.json`, `gpu-17.health.json`, `gpu-17.prom.json` -> gpu-17. */
export function nodeFromFileName(name: string): string {
  return name.replace(/(\.health)?\.json$/, "").replace(/^stdin#/, "stdin-");
}

/** Cut short, or not JSON at all: V8 names the end of the input, or a position at its end. */
function parseProblem(file: string, text: string, error: string): FileProblem {
  const end = text.trimEnd().length;
  const pos = Number(/position (\d+)/.exec(error)?.[1] ?? NaN);
  const truncated = /end of JSON input|Unterminated/i.test(error) || (Number.isFinite(pos) && pos >= end - 1);
  return truncated
    ? { kind: "truncated", file, detail: `cut short after ${text.length} bytes (${error})` }
    : { kind: "unreadable", file, detail: `not JSON: ${error}` };
}

/** One file: which kind of report it is, whose, and when it was made; or what is wrong with it. */
export function parseNodeFile(raw: RawNodeFile): ParsedNodeFile {
  const fallback = nodeFromFileName(raw.name);
  const bad = (kind: FileProblemKind, detail: string, node = fallback): ParsedNodeFile => ({
    kind: "bad",
    file: raw.name,
    node,
    problem: { kind, file: raw.name, detail },
  });
  if (raw.problem) return { kind: "bad", file: raw.name, node: fallback, problem: raw.problem };
  const text = raw.text ?? "";
  if (!text.trim()) return bad("empty", "the file is empty (a writer that did not write atomically?)");
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return {
      kind: "bad",
      file: raw.name,
      node: fallback,
      problem: parseProblem(raw.name, text, (e as Error).message),
    };
  }
  if (!isObject(doc)) return bad("unknown-format", "not a JSON object");
  const version = doc.schema_version;
  const node = str(isObject(doc.node) ? doc.node.host : null) ?? str(doc.host) ?? fallback;
  if (typeof version === "number" && version > SCHEMA_VERSION) {
    return bad(
      "newer-schema",
      `schema_version ${version}; this mlagent reads ${SCHEMA_VERSION}: upgrade it`,
      node,
    );
  }
  if (version !== SCHEMA_VERSION) {
    return bad("unknown-format", `schema_version ${JSON.stringify(version)}`, node);
  }
  const isStatus = isObject(doc.node) && Array.isArray(doc.venvs) && typeof doc.generated_at === "string";
  const isHealth = typeof doc.verdict === "string" && Array.isArray(doc.checks) &&
    typeof doc.checked_at === "string";
  if (!isStatus && !isHealth) return bad("unknown-format", "neither a status nor a health report", node);
  const at = Date.parse(String(isStatus ? doc.generated_at : doc.checked_at));
  if (!Number.isFinite(at)) return bad("unknown-format", "its time is not an ISO-8601 time", node);
  return {
    kind: isStatus ? "status" : "health",
    file: raw.name,
    node,
    at_ms: at,
    end_ms: at + (num(doc.duration_ms) ?? 0),
    mtime_ms: raw.mtime_ms,
    doc,
  };
}

function emptyRow(node: string): NodeRow {
  return {
    node,
    status_file: null,
    health_file: null,
    status_at: null,
    status_age_ms: null,
    health_at: null,
    health_age_ms: null,
    verdict: null,
    failed_checks: [],
    faults: [],
    drained: null,
    drain_reason: null,
    driver_version: null,
    gpu_faults: [],
    cache_corrupt_entries: null,
    driver_too_old: [],
    venvs: {},
    problems: [],
    attention: false,
  };
}

/** Clock problems of a report: made ahead of this clock, or far from when its file was last written. */
function clockProblem(p: Extract<ParsedNodeFile, { doc: Json }>, o: MergeOptions): FileProblem | null {
  if (p.at_ms - o.now > o.maxSkewMs) {
    return {
      kind: "clock-skew",
      file: p.file,
      detail: `made ${formatDuration(p.at_ms - o.now)} ahead of this clock`,
    };
  }
  if (p.mtime_ms !== null && Math.abs(p.end_ms - p.mtime_ms) > o.maxSkewMs) {
    const off = p.end_ms - p.mtime_ms;
    return {
      kind: "clock-skew",
      file: p.file,
      detail: `its clock is ${formatDuration(Math.abs(off))} ${
        off > 0 ? "ahead of" : "behind"
      } the file's write time`,
    };
  }
  return null;
}

function readStatus(row: NodeRow, doc: Json) {
  for (const v of Array.isArray(doc.venvs) ? doc.venvs : []) {
    if (!isObject(v)) continue;
    const profile = str(v.profile) ?? str(v.name);
    const condition = str(v.condition);
    if (profile && condition) row.venvs[profile] = condition;
  }
  const cache = isObject(doc.cache) ? doc.cache : null;
  const corrupt = num(cache?.corrupt_entries);
  if (corrupt !== null) row.cache_corrupt_entries = corrupt;
}

function readHealth(row: NodeRow, doc: Json) {
  row.verdict = str(doc.verdict);
  const failing = (Array.isArray(doc.checks) ? doc.checks : []).filter((c): c is Json =>
    isObject(c) && c.status === "fail"
  );
  row.failed_checks = failing.map((c) => String(c.id));
  row.faults = failing.map((c) => `${c.id} ${str(c.reason) ?? str(c.message) ?? ""}`.trim());
  const state = isObject(doc.node_state) ? doc.node_state : null;
  const action = isObject(doc.action) ? doc.action : null;
  // After its own action the node is in the state the action left it in.
  if (action && action.done === true && (action.kind === "drain" || action.kind === "update-reason")) {
    row.drained = true;
    row.drain_reason = str(action.reason);
  } else if (action && action.done === true && action.kind === "resume") {
    row.drained = false;
  } else if (state) {
    row.drained = state.drained === true;
    row.drain_reason = str(state.reason);
  }
  const facts = isObject(doc.facts) ? doc.facts : {};
  row.driver_version = str(facts.driver_version);
  for (const g of Array.isArray(facts.gpus) ? facts.gpus : []) {
    if (isObject(g) && Array.isArray(g.faults) && g.faults.length) {
      row.gpu_faults.push({ gpu: num(g.index) ?? -1, uuid: str(g.uuid), faults: g.faults.map(String) });
    }
  }
  for (const v of Array.isArray(facts.venvs) ? facts.venvs : []) {
    if (isObject(v) && v.driver_support === "no") {
      row.driver_too_old.push({
        venv: String(v.name),
        profile: str(v.profile),
        cuda_variant: str(v.cuda_variant),
        cuda_version: str(v.cuda_version),
      });
    }
  }
  const cache = isObject(facts.cache) ? facts.cache : null;
  if (row.cache_corrupt_entries === null && num(cache?.corrupt_entries) !== null) {
    row.cache_corrupt_entries = num(cache!.corrupt_entries);
  }
}

/** Merges parsed files into the report (duration_ms is the caller's to fill); the newest report per node and kind wins. */
export function mergeFleet(files: ParsedNodeFile[], o: MergeOptions): FleetReport {
  const rows = new Map<string, NodeRow>();
  const row = (node: string) => {
    let r = rows.get(node);
    if (!r) rows.set(node, r = emptyRow(node));
    return r;
  };
  const best = new Map<string, Extract<ParsedNodeFile, { doc: Json }>>();
  for (const f of files) {
    const r = row(f.node);
    if (f.kind === "bad") {
      r.problems.push(f.problem);
      continue;
    }
    const key = `${f.kind}\0${f.node}`;
    const prev = best.get(key);
    if (!prev || f.at_ms > prev.at_ms) {
      if (prev) {
        r.problems.push({
          kind: "duplicate",
          file: prev.file,
          detail: `another ${f.kind} report for ${f.node}: ${f.file} is newer`,
        });
      }
      best.set(key, f);
    } else {
      r.problems.push({
        kind: "duplicate",
        file: f.file,
        detail: `another ${f.kind} report for ${f.node}: ${prev.file} is newer`,
      });
    }
  }
  for (const f of best.values()) {
    const r = row(f.node);
    const clock = clockProblem(f, o);
    if (clock) r.problems.push(clock);
    const age = Math.max(0, o.now - f.at_ms);
    if (age > o.maxAgeMs) {
      r.problems.push({
        kind: "stale",
        file: f.file,
        detail: `${f.kind} report is ${formatDuration(age)} old (max ${formatDuration(o.maxAgeMs)})`,
      });
    }
    if (f.kind === "status") {
      r.status_file = f.file;
      r.status_at = isoTime(f.at_ms);
      r.status_age_ms = age;
      readStatus(r, f.doc);
    } else {
      r.health_file = f.file;
      r.health_at = isoTime(f.at_ms);
      r.health_age_ms = age;
      readHealth(r, f.doc);
    }
  }

  const byName = (
    a: { node: string },
    b: { node: string },
  ) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0);
  const nodes = [...rows.values()].sort(byName);
  const anyHealth = nodes.some((n) => n.health_file);
  const profiles = new Map<string, ProfileRow>();
  const prow = (p: string) => {
    let r = profiles.get(p);
    if (!r) {
      profiles.set(
        p,
        r = {
          profile: p,
          ready: [],
          damaged: [],
          outdated: [],
          missing: [],
          other: [],
          unknown: [],
          driver_too_old: [],
        },
      );
    }
    return r;
  };
  for (const n of nodes) for (const p of Object.keys(n.venvs)) prow(p);
  const problemKinds: Partial<Record<FileProblemKind, number>> = {};
  let current = 0;
  for (const n of nodes) {
    const statusUsable = n.status_file !== null &&
      !n.problems.some((p) => p.file === n.status_file && p.kind === "stale");
    if (statusUsable) current++;
    for (const [name, pr] of profiles) {
      const c = n.venvs[name];
      if (!n.status_file) pr.unknown.push(n.node);
      else if (c === undefined) pr.missing.push(n.node);
      else if (c === "ready") pr.ready.push(n.node);
      else if (c === "damaged") pr.damaged.push(n.node);
      else if (c === "outdated") pr.outdated.push(n.node);
      else pr.other.push({ node: n.node, condition: c });
    }
    for (const t of n.driver_too_old) {
      if (t.profile && profiles.has(t.profile)) profiles.get(t.profile)!.driver_too_old.push(n.node);
    }
    for (const k of new Set(n.problems.map((p) => p.kind))) problemKinds[k] = (problemKinds[k] ?? 0) + 1;
    n.attention = n.problems.length > 0 || (n.verdict !== null && n.verdict !== "healthy") ||
      n.gpu_faults.length > 0 ||
      n.driver_too_old.length > 0 || (n.cache_corrupt_entries ?? 0) > 0 || n.drained === true ||
      (anyHealth && !n.health_file) || !n.status_file;
  }
  const count = (f: (n: NodeRow) => boolean) => nodes.filter(f).length;
  const attention = count((n) => n.attention);
  return {
    ok: attention === 0,
    generated_at: isoTime(o.now),
    source: o.source,
    max_age_s: Math.round(o.maxAgeMs / 1000),
    max_skew_s: Math.round(o.maxSkewMs / 1000),
    duration_ms: 0,
    counts: {
      nodes: nodes.length,
      files: files.length,
      current,
      healthy: count((n) => n.verdict === "healthy"),
      unhealthy: count((n) => n.verdict === "unhealthy"),
      cannot_judge: count((n) => n.verdict === "unknown"),
      drained: count((n) => n.drained === true),
      gpu_faults: count((n) => n.gpu_faults.length > 0),
      corrupt_caches: count((n) => (n.cache_corrupt_entries ?? 0) > 0),
      driver_too_old: count((n) => n.driver_too_old.length > 0),
      problems: problemKinds,
      attention,
    },
    profiles: [...profiles.values()].sort((
      a,
      b,
    ) => (a.profile < b.profile ? -1 : a.profile > b.profile ? 1 : 0)),
    nodes,
  };
}
