/** Free disk where venvs and the installer cache live, against the profile's need (default: warn below 20 GiB). */
import type { Env } from "../agent/core/env.ts";
import { formatBytes } from "../agent/core/output.ts";
import { LEAF } from "../agent/core/run.ts";
import { type CheckContext, type CheckResult, result } from "./types.ts";

export const DEFAULT_MIN_FREE_GIB = 20;
const GIB = 1024 ** 3;

export interface DfRow {
  filesystem: string;
  total_bytes: number;
  used_bytes: number;
  available_bytes: number;
  mount_point: string;
}

/** `df -P -k` -> one row per line after the header (POSIX format: one line per filesystem, 1024-byte blocks). */
export function parseDfP(text: string): DfRow[] {
  const rows: DfRow[] = [];
  for (const line of text.split("\n").slice(1)) {
    const m = /^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+|-)%?\s+(\/.*)$/.exec(line.trimEnd());
    if (!m) continue;
    rows.push({
      filesystem: m[1],
      total_bytes: Number(m[2]) * 1024,
      used_bytes: Number(m[3]) * 1024,
      available_bytes: Number(m[4]) * 1024,
      mount_point: m[6],
    });
  }
  return rows;
}

/** The path itself or its nearest existing ancestor (df needs a path that exists). */
export async function nearestExisting(env: Env, path: string): Promise<string> {
  let p = path;
  for (;;) {
    try {
      await env.fs.stat(p);
      return p;
    } catch {
      const up = p.slice(0, p.lastIndexOf("/")) || "/";
      if (up === p) return "/";
      p = up;
    }
  }
}

export interface DiskPlace {
  /** What lives there: "venv root", "cache". */
  role: string;
  path: string;
  /** The existing path df was asked about. */
  probed: string;
  filesystem: string | null;
  mount_point: string | null;
  available_bytes: number | null;
}

export interface DiskFacts {
  places: DiskPlace[];
  problem: string | null;
}

/** One `df -P -k` for every place at once. */
export async function gatherDisk(
  env: Env,
  places: { role: string; path: string }[],
  timeoutMs = 10_000,
): Promise<DiskFacts> {
  const probed = await Promise.all(places.map((p) => nearestExisting(env, p.path)));
  const r = await env.run(["df", "-P", "-k", ...probed], { ...LEAF, timeoutMs });
  const facts: DiskFacts = {
    places: places.map((p, i) => ({
      ...p,
      probed: probed[i],
      filesystem: null,
      mount_point: null,
      available_bytes: null,
    })),
    problem: null,
  };
  if (r.kind !== "exited") {
    facts.problem = r.kind === "not-found" ? "df is not on PATH" : `df did not answer within ${r.afterMs} ms`;
    return facts;
  }
  const rows = parseDfP(r.stdout);
  if (rows.length !== places.length) {
    facts.problem = `df -P gave ${rows.length} rows for ${places.length} paths (exit ${r.code}): ${
      r.stderr.trim().split("\n")[0] ?? ""
    }`;
  }
  rows.forEach((row, i) => {
    if (!facts.places[i]) return;
    facts.places[i].filesystem = row.filesystem;
    facts.places[i].mount_point = row.mount_point;
    facts.places[i].available_bytes = row.available_bytes;
  });
  return facts;
}

/** The scheduler hooks' disk.space verdict: every place against one floor, the words said either way. */
export type FloorVerdict =
  | { status: "warn"; message: string }
  | { status: "fail"; message: string; low: string }
  | { status: "pass"; message: string };

/**
 * Pure: the places (venv root, TMPDIR) against the bytes a job needs free. `low` names only the short ones,
 * short enough for a drain reason; unknown space warns (a hook must not drain a node over a missing df).
 */
export function judgeFloor(facts: DiskFacts, minFree: number): FloorVerdict {
  if (facts.places.every((p) => p.available_bytes === null)) {
    return { status: "warn", message: `free space unknown: ${facts.problem ?? "df gave nothing"}` };
  }
  const low = facts.places.filter((p) => p.available_bytes !== null && p.available_bytes < minFree)
    .map((p) => `${formatBytes(p.available_bytes!)} free on ${p.mount_point ?? p.path} (${p.role})`)
    .join("; ");
  if (low) return { status: "fail", message: `${low}; at least ${formatBytes(minFree)} needed`, low };
  return {
    status: "pass",
    message: facts.places.map((p) => `${formatBytes(p.available_bytes ?? 0)} free for ${p.role}`).join("; "),
  };
}

/** disk.space: each filesystem once; with a profile below its disk_gib fails, without one below 20 GiB warns. */
export function evaluateDisk(facts: DiskFacts, ctx: Pick<CheckContext, "profile">): CheckResult {
  const needGib = ctx.profile?.disk_gib ?? DEFAULT_MIN_FREE_GIB;
  const short = ctx.profile ? "fail" : "warn";
  const diskFacts = { disk: { need_bytes: needGib * GIB, places: facts.places } };
  const known = facts.places.filter((p) => p.available_bytes !== null);
  if (known.length === 0) {
    return result(
      "disk.space",
      "warn",
      `free space unknown: ${facts.problem ?? "df gave nothing"}`,
      "check `df -h` by hand",
      diskFacts,
    );
  }
  // Places on one filesystem share its free space: judge each filesystem once.
  const byFs = new Map<string, DiskPlace[]>();
  for (const p of known) {
    const key = `${p.filesystem}\0${p.mount_point}`;
    byFs.set(key, [...(byFs.get(key) ?? []), p]);
  }
  const parts: string[] = [];
  let low = false;
  for (const group of byFs.values()) {
    const avail = group[0].available_bytes!;
    const roles = group.map((g) => `${g.role} ${g.path}`).join(" and ");
    parts.push(`${formatBytes(avail)} free for ${roles} (on ${group[0].mount_point})`);
    if (avail < needGib * GIB) low = true;
  }
  const who = ctx.profile ? `profile ${ctx.profile.name} needs` : "recommended:";
  const msg = `${parts.join("; ")}; ${who} ${needGib} GiB`;
  if (low) {
    return result(
      "disk.space",
      short,
      msg,
      "free space (`mlagent cache clean --yes`, old venvs), or point MLAGENT_ROOT / MLAGENT_CACHE_DIR at a larger filesystem",
      diskFacts,
    );
  }
  return result("disk.space", "pass", msg, null, diskFacts);
}

export async function checkDisk(ctx: CheckContext, cacheDir: string): Promise<CheckResult[]> {
  const facts = await gatherDisk(ctx.env, [
    { role: "venv root", path: ctx.venvRoot },
    { role: "cache", path: cacheDir },
  ], ctx.probeTimeoutMs);
  return [evaluateDisk(facts, ctx)];
}
