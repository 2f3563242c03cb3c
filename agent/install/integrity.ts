/**
 * Whether a venv still holds what its profile pins. A ready state file says what was installed once; a user's
 * `pip uninstall`, a scrubbed scratch disk or a half-restored backup can remove files since. Every wheel
 * install leaves a `*.dist-info/RECORD` listing each file with its size and sha256, so the check needs no
 * Python: each pinned distribution present at its pin, every file its RECORD lists present at its size
 * (`full`, stat only), or also at its hash (`deep`). `listing` only looks for each pinned dist-info at its
 * version, for the status of every venv on a node.
 */
import { loadNodeCrypto } from "../core/hash.ts";
import type { Env } from "../core/env.ts";
import { canonicalName } from "../core/pep503.ts";
import { parseRequirement } from "../profiles/mod.ts";
import type { Profile } from "../profiles/types.ts";
import { pinHolds } from "./pins.ts";

export type IntegrityMode = "listing" | "full" | "deep";

/** A distribution the profile names: its pin when exact, else any version (a git or URL reference). */
export interface PinnedDistribution {
  name: string;
  version: string | null;
  /** The requirement as the profile writes it, for reinstalling exactly that. */
  requirement: string;
  stage: string;
}

export interface IntegrityProblem {
  package: string;
  /** One file that is missing or changed (relative to site-packages), when a file is the problem. */
  file: string | null;
  reason: string;
}

export interface IntegrityReport {
  ok: boolean;
  mode: IntegrityMode;
  packages: number;
  files: number;
  problems: IntegrityProblem[];
  duration_ms: number;
}

/** Every distribution the profile's stages name (pinned by version or by reference), first stage wins. */
export function pinnedDistributions(profile: Profile): PinnedDistribution[] {
  const out = new Map<string, PinnedDistribution>();
  for (const stage of profile.stages) {
    for (const r of stage.packages.map(parseRequirement)) {
      if (!r.name || r.kind === "invalid" || r.kind === "unpinned" || out.has(r.name)) continue;
      out.set(r.name, { name: r.name, version: r.version, requirement: r.text, stage: stage.name });
    }
  }
  return [...out.values()];
}

interface DistInfo {
  dir: string;
  version: string;
  site: string;
}

/** The venv's site-packages dirs (`lib/pythonX.Y/site-packages`). */
function sitePackages(env: Env, venvDir: string): string[] {
  try {
    return [...env.fs.readDirSync(`${venvDir}/lib`)]
      .filter((e) => /^python\d+\.\d+t?$/.test(e.name))
      .map((e) => `${venvDir}/lib/${e.name}/site-packages`);
  } catch {
    return [];
  }
}

/** canonical name -> the dist-info dirs found (more than one is itself damage: two half-installs). */
function distInfos(env: Env, sites: string[]): Map<string, DistInfo[]> {
  const out = new Map<string, DistInfo[]>();
  for (const site of sites) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...env.fs.readDirSync(site)];
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.name.endsWith(".dist-info")) continue;
      // {name}-{version}.dist-info: a version never contains "-" (wheel spec), so the last one splits them.
      const stem = e.name.slice(0, -".dist-info".length);
      const cut = stem.lastIndexOf("-");
      if (cut <= 0) continue;
      const name = canonicalName(stem.slice(0, cut));
      out.set(name, [...(out.get(name) ?? []), {
        dir: `${site}/${e.name}`,
        version: stem.slice(cut + 1),
        site,
      }]);
    }
  }
  return out;
}

export interface RecordEntry {
  path: string;
  /** "sha256=<urlsafe base64, no padding>", or "" (RECORD itself, .pyc files compiled after install). */
  hash: string;
  size: number | null;
}

/** Parses a RECORD (CSV: path,hash,size; a path with a comma or quote is quoted). Pure. */
export function parseRecord(text: string): RecordEntry[] {
  const out: RecordEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line) continue;
    const fields: string[] = [];
    let i = 0;
    while (i <= line.length) {
      if (line[i] === '"') {
        let v = "";
        i++;
        while (i < line.length) {
          if (line[i] === '"' && line[i + 1] === '"') {
            v += '"';
            i += 2;
          } else if (line[i] === '"') {
            i++;
            break;
          } else v += line[i++];
        }
        fields.push(v);
        i++; // the comma
      } else {
        const next = line.indexOf(",", i);
        const end = next === -1 ? line.length : next;
        fields.push(line.slice(i, end));
        i = end + 1;
      }
    }
    const size = fields[2] && /^\d+$/.test(fields[2]) ? Number(fields[2]) : null;
    out.push({ path: fields[0] ?? "", hash: fields[1] ?? "", size });
  }
  return out;
}

export interface IntegrityOptions {
  /** Called as files are hashed in deep mode (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Checks the distributions against the venv. Never throws for what it finds; a problem is data. */
export async function checkIntegrity(
  env: Env,
  venvDir: string,
  dists: PinnedDistribution[],
  mode: IntegrityMode,
  opts: IntegrityOptions = {},
): Promise<IntegrityReport> {
  const started = env.now();
  const problems: IntegrityProblem[] = [];
  const found = distInfos(env, sitePackages(env, venvDir));
  let files = 0;
  const toHash: { pkg: string; path: string; rel: string; hash: string }[] = [];
  for (const d of dists) {
    const infos = found.get(d.name) ?? [];
    if (infos.length === 0) {
      problems.push({ package: d.name, file: null, reason: "not installed" });
      continue;
    }
    if (infos.length > 1) {
      problems.push({
        package: d.name,
        file: null,
        reason: `installed twice (${infos.map((i) => i.version).join(" and ")}): a broken upgrade`,
      });
      continue;
    }
    const info = infos[0];
    if (d.version !== null && !pinHolds(d.version, info.version)) {
      problems.push({
        package: d.name,
        file: null,
        reason: `installed at ${info.version}, pinned ${d.version}`,
      });
      continue;
    }
    if (mode === "listing") continue;
    let record: string;
    try {
      record = new TextDecoder().decode(env.fs.readFileSync(`${info.dir}/RECORD`));
    } catch (e) {
      problems.push({
        package: d.name,
        file: `${info.dir.slice(info.site.length + 1)}/RECORD`,
        reason: e instanceof Deno.errors.NotFound
          ? "its RECORD is missing"
          : `its RECORD cannot be read (${e})`,
      });
      continue;
    }
    const entries = parseRecord(record);
    if (entries.length === 0) {
      problems.push({
        package: d.name,
        file: `${info.dir.slice(info.site.length + 1)}/RECORD`,
        reason: "its RECORD is empty",
      });
      continue;
    }
    let first: IntegrityProblem | null = null;
    let bad = 0;
    for (const e of entries) {
      // Files without a size (RECORD itself, bytecode compiled after install) are not part of the wheel.
      if (e.size === null) continue;
      files++;
      const abs = e.path.startsWith("/") ? e.path : `${info.site}/${e.path}`;
      let st: Deno.FileInfo | null = null;
      try {
        st = env.fs.statSync(abs);
      } catch { /* missing */ }
      const why = !st
        ? "is missing"
        : !st.isFile
        ? "is not a file"
        : st.size !== e.size
        ? `is ${st.size} bytes, RECORD says ${e.size}`
        : null;
      if (why) {
        bad++;
        first ??= { package: d.name, file: e.path, reason: why };
      } else if (mode === "deep" && e.hash.startsWith("sha256=")) {
        toHash.push({ pkg: d.name, path: abs, rel: e.path, hash: e.hash });
      }
    }
    if (first) {
      problems.push({
        ...first,
        reason: `${first.file} ${first.reason}${bad > 1 ? ` (and ${bad - 1} more)` : ""}`,
      });
    }
  }
  const damagedByHash = new Set<string>();
  // Loaded only here: node:crypto costs more to load than the stat-only check takes on a large venv.
  const { createHash } = toHash.length ? await loadNodeCrypto() : { createHash: null };
  const sha256Record = (path: string) =>
    "sha256=" + createHash!("sha256").update(env.fs.readFileSync(path)).digest("base64url");
  for (const [i, h] of toHash.entries()) {
    opts.onProgress?.(i, toHash.length);
    if (damagedByHash.has(h.pkg)) continue;
    let actual: string | null = null;
    try {
      actual = sha256Record(h.path);
    } catch { /* vanished meanwhile */ }
    if (actual !== h.hash) {
      damagedByHash.add(h.pkg);
      problems.push({
        package: h.pkg,
        file: h.rel,
        reason: `${h.rel} does not match the hash its RECORD gives`,
      });
    }
  }
  if (toHash.length) opts.onProgress?.(toHash.length, toHash.length);
  return {
    ok: problems.length === 0,
    mode,
    packages: dists.length,
    files,
    problems,
    duration_ms: env.now() - started,
  };
}

/** One line for messages: "torch: torch/__init__.py is missing (and 3 more)". */
export function describeIntegrity(r: IntegrityReport): string {
  return r.problems.map((p) => `${p.package}: ${p.reason}`).join("; ");
}
