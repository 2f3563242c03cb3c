/**
 * Profiles: find one (built-in name, a name in MLAGENT_PROFILE_PATH, or a path), parse it with line and
 * column on syntax errors, validate it against profiles/profile.schema.json, and lint what a schema cannot
 * say (every requirement pinned, stage names unique, "cuda" index only with CUDA variants, no conflicting
 * pins). A profile that fails any of this is bad input (exit 2) and nothing is created for it.
 */
import { createHash } from "node:crypto";
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { closestMatch, validateJson } from "../core/jsonschema.ts";
import { jsonPointerLocations, locatePointer, parseJsonLocated } from "../core/json_location.ts";
import { absolute } from "../core/paths.ts";
import type { Profile, Stage } from "./types.ts";
import { BUILTIN_PROFILES, PROFILE_SCHEMA } from "../../profiles/mod.ts";

export type { Profile, Stage } from "./types.ts";

export const PROFILE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;

export interface LintIssue {
  /** The file (or "builtin:NAME") the issue is in. */
  source: string;
  /** JSON pointer to the field ("/stages/1/packages/0"); "" for the whole document. */
  path: string;
  /** The rule that failed, in words. */
  rule: string;
  severity: "error" | "warning";
}

export interface ProfileEntry {
  name: string;
  description: string;
  /** "builtin", or the file it was read from. */
  source: string;
  /** Set when an entry earlier in the search order has the same name and wins. */
  shadowed_by: string | null;
  /** Why the file cannot be used (syntax or lint errors); null when it is valid. */
  error: string | null;
}

// ---------------------------------------------------------------------------------------------------------
// Requirements

export interface Requirement {
  /** Canonical name (PEP 503: lowercase, runs of -_. become -). */
  name: string;
  extras: string[];
  /** The exact version for `==`/`===` pins ("2.4.0+cu121"); null otherwise. */
  version: string | null;
  /** The VCS or archive URL for direct references, without the @ref; null otherwise. */
  url: string | null;
  /** The VCS ref (commit or tag) for direct references; null otherwise. */
  ref: string | null;
  /** Environment marker after ";", when present. */
  marker: string | null;
  kind: "version" | "vcs" | "url" | "unpinned" | "invalid";
  /** Pinned exactly: an `==` version, a VCS source at a commit or tag, or an archive URL naming its version. */
  pinned: boolean;
  /** Why it is not pinned or cannot be parsed; null when pinned. */
  problem: string | null;
  /** The text as written. */
  text: string;
}

const NAME_RE = /^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[\s*([A-Za-z0-9._,\s-]*)\])?\s*/;
const COMMIT_RE = /^[0-9a-f]{40}$/;
/** Refs that look like release tags (v1.2, 1.2.3, release-2024.01). Branch names cannot be told from tags
 * by syntax, so only version-looking refs and full commits count as pinned. */
const TAG_RE = /^(v|release[-_]?)?[0-9]+(\.[0-9]+)*([._-]?(post|rc|a|b|alpha|beta|dev)[0-9]*)*$/i;
const ARCHIVE_RE = /\/([^/?#]+?)(\.whl|\.tar\.gz|\.tar\.bz2|\.zip|\.tgz)(\?[^#]*)?(#.*)?$/;

export function canonicalName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

/**
 * Parses one requirement line: `name[extras]==1.2.3; marker`, `name @ git+https://host/repo.git@<commit>`,
 * `git+https://host/repo.git@v1.0#egg=name`, or `name @ https://host/name-1.0-py3-none-any.whl`.
 */
export function parseRequirement(req: string): Requirement {
  const text = req;
  const base: Requirement = {
    name: "",
    extras: [],
    version: null,
    url: null,
    ref: null,
    marker: null,
    kind: "invalid",
    pinned: false,
    problem: null,
    text,
  };
  let body = req.trim();
  const invalid = (problem: string): Requirement => ({ ...base, problem });
  if (body === "") return invalid("empty requirement");
  if (body.startsWith("-")) {
    return invalid(`installer options ("${body.split(/\s/)[0]}") belong in stage fields, not in packages`);
  }

  // A bare VCS URL: git+https://...@ref#egg=name
  if (/^(git|hg|svn|bzr)\+/.test(body)) {
    const egg = /#(?:.*&)?egg=([A-Za-z0-9._-]+)/.exec(body);
    if (!egg) return invalid("a VCS URL needs a name: write `name @ git+https://...@<commit>`");
    return direct({ ...base, name: canonicalName(egg[1]) }, body.replace(/#.*$/, ""));
  }

  const semi = splitMarker(body);
  body = semi.body;
  base.marker = semi.marker;
  const m = NAME_RE.exec(body);
  if (!m) return invalid(`cannot read a package name in "${req}"`);
  base.name = canonicalName(m[1]);
  base.extras = m[2] ? m[2].split(",").map((e) => e.trim()).filter(Boolean) : [];
  const rest = body.slice(m[0].length).trim();

  if (rest.startsWith("@")) return direct(base, rest.slice(1).trim());
  if (rest === "") return { ...base, kind: "unpinned", problem: "no version: pin it with ==" };

  const spec = /^(===|==)\s*([A-Za-z0-9.+!_*-]+)$/.exec(rest);
  if (spec) {
    const version = spec[2];
    if (version.includes("*")) {
      return { ...base, kind: "unpinned", problem: `"${rest}" is a wildcard, not an exact pin` };
    }
    return { ...base, kind: "version", version, pinned: true };
  }
  if (/^(~=|!=|<=|>=|<|>|==)/.test(rest)) {
    return { ...base, kind: "unpinned", problem: `"${rest}" is a range, not an exact pin: use ==` };
  }
  return invalid(`cannot read the version specifier "${rest}"`);
}

function splitMarker(body: string): { body: string; marker: string | null } {
  // A URL may contain ";" only in rare query strings; markers follow " ; " or ";" outside URLs.
  const at = body.search(/\s;\s*|;\s*(python_|platform_|sys_|os_|implementation_|extra\b)/);
  if (at === -1) return { body, marker: null };
  return { body: body.slice(0, at).trim(), marker: body.slice(at).replace(/^\s*;\s*/, "").trim() };
}

function direct(base: Requirement, url: string): Requirement {
  const vcs = /^(git|hg|svn|bzr)\+(.+)$/.exec(url);
  if (vcs) {
    // The ref follows the last "@" after the host part (user@host is allowed before it).
    const noFragment = vcs[2].replace(/#.*$/, "");
    const schemeEnd = noFragment.indexOf("://");
    const pathStart = schemeEnd === -1 ? 0 : noFragment.indexOf("/", schemeEnd + 3);
    const at = noFragment.lastIndexOf("@");
    if (at === -1 || at < pathStart) {
      return {
        ...base,
        kind: "unpinned",
        url: url.replace(/#.*$/, ""),
        problem: "VCS source without a ref: append @<40-hex commit> or @<tag>",
      };
    }
    const ref = noFragment.slice(at + 1);
    const bareUrl = `${vcs[1]}+${noFragment.slice(0, at)}`;
    if (COMMIT_RE.test(ref) || TAG_RE.test(ref)) {
      return { ...base, kind: "vcs", url: bareUrl, ref, pinned: true };
    }
    return {
      ...base,
      kind: "unpinned",
      url: bareUrl,
      ref,
      problem: `VCS ref "${ref}" is neither a full 40-hex commit nor a version tag (branches move)`,
    };
  }
  if (/^(https?|file):\/\//.test(url)) {
    const archive = ARCHIVE_RE.exec(url);
    const hashed = /#(sha256|sha384|sha512)=[0-9a-f]+/.test(url);
    // Wheel and sdist file names carry their version: name-1.2.3(-tags).whl / name-1.2.3.tar.gz
    const versioned = archive && /-[0-9][A-Za-z0-9.+!_]*(-|$)/.test(archive[1]);
    if (archive && (versioned || hashed)) {
      const v = archive && /-([0-9][A-Za-z0-9.+!_]*)(-|$)/.exec(archive[1]);
      return { ...base, kind: "url", url, version: v ? v[1] : null, pinned: true };
    }
    return {
      ...base,
      kind: "unpinned",
      url,
      problem: "URL source names no version: point at a versioned wheel/sdist or add #sha256=...",
    };
  }
  return { ...base, kind: "invalid", problem: `cannot read the direct reference "${url}"` };
}

// ---------------------------------------------------------------------------------------------------------
// Lint

/**
 * Every problem with a profile document: schema violations (with the field path and the rule), unknown
 * fields (naming the allowed ones), unpinned requirements, and cross-field rules. Pure.
 */
export function lintProfile(value: unknown, source: string): LintIssue[] {
  const issues: LintIssue[] = validateJson(PROFILE_SCHEMA, value).map((i) => ({
    source,
    path: i.path,
    rule: i.message,
    severity: "error" as const,
  }));
  if (issues.length > 0) return issues; // cross-field rules assume the shape is right
  const p = value as Profile;
  const error = (path: string, rule: string) => issues.push({ source, path, rule, severity: "error" });
  const warn = (path: string, rule: string) => issues.push({ source, path, rule, severity: "warning" });

  const seenStages = new Map<string, number>();
  const pins = new Map<string, { where: string; req: Requirement }>();
  let anyBuild = false;
  let anyCudaIndex = false;
  p.stages.forEach((stage, si) => {
    const sp = `/stages/${si}`;
    if (seenStages.has(stage.name)) {
      error(`${sp}/name`, `stage name "${stage.name}" repeats stage ${seenStages.get(stage.name)}`);
    }
    seenStages.set(stage.name, si);
    anyBuild ||= stage.builds_extensions === true;
    const indexes = [stage.index_url, ...(stage.extra_index_urls ?? [])];
    if (indexes.includes("cuda")) anyCudaIndex = true;
    stage.packages.forEach((text, pi) => {
      const req = parseRequirement(text);
      const path = `${sp}/packages/${pi}`;
      if (req.kind === "invalid") return error(path, req.problem!);
      if (!req.pinned && !stage.allow_unpinned) {
        error(
          path,
          `"${text}" is not pinned: ${req.problem} (or set allow_unpinned on the stage with a reason)`,
        );
      }
      const key = req.marker ? `${req.name}; ${req.marker}` : req.name;
      const prev = pins.get(key);
      if (prev && req.pinned && prev.req.pinned && pinOf(prev.req) !== pinOf(req)) {
        error(path, `"${text}" conflicts with "${prev.req.text}" at ${prev.where}`);
      }
      if (!prev) pins.set(key, { where: path, req });
    });
    if (stage.no_build_isolation && stage.packages.length > 0 && si === 0) {
      warn(
        `${sp}/no_build_isolation`,
        "the first stage builds without isolation: its build deps must already be in the venv",
      );
    }
  });
  if (anyCudaIndex && p.cuda_variants.length === 0) {
    error("/cuda_variants", 'a stage uses index_url "cuda" but the profile lists no CUDA variants');
  }
  if (anyBuild && !p.builds_extensions) {
    error(
      "/builds_extensions",
      "a stage sets builds_extensions, so the profile must too (doctor checks headers and nvcc)",
    );
  }
  const variantNames = new Set<string>();
  p.cuda_variants.forEach((v, i) => {
    if (variantNames.has(v.name)) {
      error(`/cuda_variants/${i}/name`, `CUDA variant "${v.name}" is listed twice`);
    }
    variantNames.add(v.name);
    const digits = v.cuda.replace(".", "");
    if (`cu${digits}` !== v.name) {
      error(`/cuda_variants/${i}/cuda`, `CUDA ${v.cuda} does not match variant ${v.name}`);
    }
  });
  const seenVerify = new Set<string>();
  p.verify.forEach((step, i) => {
    if (seenVerify.has(step.name)) error(`/verify/${i}/name`, `verify step "${step.name}" is listed twice`);
    seenVerify.add(step.name);
  });
  if (p.gpu.required && p.cuda_variants.length === 0) {
    warn("/cuda_variants", "the profile requires a GPU but lists no CUDA variants");
  }
  return issues;
}

function pinOf(r: Requirement): string {
  return r.kind === "version" ? `==${r.version}` : `${r.url}@${r.ref ?? ""}`;
}

// ---------------------------------------------------------------------------------------------------------
// Hashing

/** JSON with object keys sorted at every level: the same profile always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Fields that change nothing in the venv: editing them must not trigger a reinstall. */
const NOT_INSTALL_INPUTS = ["$schema", "description", "sources", "models", "disk_gib"];

/**
 * SHA-256 (hex) of the profile's install inputs in canonical JSON: name, python, gpu, cuda_variants,
 * builds_extensions, stages, verify. Description, sources, models and disk size are left out.
 */
export function profileSha256(profile: Profile): string {
  const subset = Object.fromEntries(
    Object.entries(profile).filter(([k]) => !NOT_INSTALL_INPUTS.includes(k)),
  );
  return sha256(canonicalJson(subset));
}

/** SHA-256 (hex) of one stage in canonical JSON, for reinstalling only the stages that changed. */
export function stageSha256(stage: Stage): string {
  return sha256(canonicalJson(stage));
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

// ---------------------------------------------------------------------------------------------------------
// Finding and loading

/** Directories named by MLAGENT_PROFILE_PATH (colon-separated), made absolute, empty entries dropped. */
export function profileDirs(env: Env): string[] {
  return (env.vars.MLAGENT_PROFILE_PATH ?? "").split(":").filter((d) => d.trim() !== "").map((d) =>
    absolute(env, d)
  );
}

function looksLikePath(s: string): boolean {
  return s.includes("/") || s.endsWith(".json") || s.startsWith(".");
}

/**
 * Parses and lints a profile document; throws badInput naming the file, the field path and the rule.
 * `source` is what messages call the document (a path, or "builtin:NAME").
 */
export function profileFromText(text: string, source: string): Profile {
  const parsed = parseJsonLocated(text);
  if (!parsed.ok) {
    const { line, column, message } = parsed.error;
    throw badInput(
      `${source}:${line}:${column}: malformed JSON: ${message}`,
      "fix the JSON syntax (no trailing commas or comments in profiles)",
      { file: source, line, column },
    );
  }
  return profileFromValue(parsed.value, source, text);
}

/**
 * Lints a parsed document and returns it as a Profile, or throws badInput with the first error. With the
 * document's text, the message also gives the line and column of the offending field.
 */
export function profileFromValue(value: unknown, source: string, text?: string): Profile {
  const errors = lintProfile(value, source).filter((i) => i.severity === "error");
  if (errors.length > 0) {
    const first = errors[0];
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
    const at = text === undefined ? null : locatePointer(jsonPointerLocations(text), first.path);
    throw badInput(
      `${source}${at ? `:${at.line}:${at.column}` : ""}: ${first.path || "/"}: ${first.rule}${more}`,
      `run: mlagent profiles lint ${source.startsWith("builtin:") ? "<file>" : source}`,
      { file: source, issues: errors.map(({ path, rule }) => ({ path, rule })) },
    );
  }
  return value as Profile;
}

async function readProfileFile(env: Env, file: string): Promise<Profile> {
  let text: string;
  try {
    text = await env.fs.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw badInput(`profile file not found: ${file}`);
    if (e instanceof Deno.errors.IsADirectory) throw badInput(`profile path is a directory: ${file}`);
    if (e instanceof Deno.errors.PermissionDenied) {
      throw badInput(`cannot read profile ${file}: permission denied`);
    }
    throw badInput(`cannot read profile ${file}: ${(e as Error).message}`);
  }
  return profileFromText(text, file);
}

async function isFile(env: Env, path: string): Promise<boolean> {
  try {
    return (await env.fs.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * Finds and validates a profile. A name is looked up in MLAGENT_PROFILE_PATH directories first
 * (`<dir>/<name>.json`, so a site can override a built-in), then among the built-ins; anything with a "/"
 * or ending in ".json" is a path. Unknown names, malformed JSON and lint errors throw badInput (exit 2).
 */
export async function loadProfile(env: Env, nameOrPath: string): Promise<Profile> {
  return (await findProfile(env, nameOrPath)).profile;
}

/** loadProfile, also saying where the profile came from: "builtin:NAME" or the absolute file path. */
export async function findProfile(
  env: Env,
  nameOrPath: string,
): Promise<{ profile: Profile; source: string }> {
  if (nameOrPath.includes("\0")) throw badInput("profile name contains a NUL byte");
  if (looksLikePath(nameOrPath)) {
    const file = absolute(env, nameOrPath);
    return { profile: await readProfileFile(env, file), source: file };
  }
  if (!PROFILE_NAME_PATTERN.test(nameOrPath)) {
    throw badInput(
      `invalid profile name "${nameOrPath}": names match ${PROFILE_NAME_PATTERN.source}`,
      "pass a path (./my-model.json) to use a file",
    );
  }
  for (const dir of profileDirs(env)) {
    const file = `${dir}/${nameOrPath}.json`;
    if (await isFile(env, file)) {
      const profile = await readProfileFile(env, file);
      if (profile.name !== nameOrPath) {
        throw badInput(
          `${file}: /name: the file is named "${nameOrPath}.json" but declares name "${profile.name}"`,
          `rename the file to ${profile.name}.json or set "name": "${nameOrPath}"`,
        );
      }
      return { profile, source: file };
    }
  }
  if (Object.hasOwn(BUILTIN_PROFILES, nameOrPath)) {
    const source = `builtin:${nameOrPath}`;
    return { profile: profileFromValue(structuredClone(BUILTIN_PROFILES[nameOrPath]), source), source };
  }
  const known = [...new Set((await listProfiles(env)).map((e) => e.name))];
  const near = closestMatch(nameOrPath, known);
  throw badInput(
    `unknown profile "${nameOrPath}"${near ? `; did you mean "${near}"?` : ""}`,
    `known profiles: ${known.join(", ")}; or pass a path to a .json file`,
    { known, closest: near },
  );
}

/**
 * Every profile mlagent can find by name, in lookup order: MLAGENT_PROFILE_PATH directories (each sorted
 * by name), then built-ins. A later entry with the same name as an earlier one is marked shadowed.
 * Unreadable or invalid files are listed with their error rather than hidden.
 */
export async function listProfiles(env: Env): Promise<ProfileEntry[]> {
  const entries: ProfileEntry[] = [];
  for (const dir of profileDirs(env)) {
    let names: string[] = [];
    try {
      for await (const e of env.fs.readDir(dir)) {
        if ((e.isFile || e.isSymlink) && e.name.endsWith(".json")) names.push(e.name);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue; // a missing directory on the path is not an error
      throw e;
    }
    names = names.filter((n) => PROFILE_NAME_PATTERN.test(n.slice(0, -5))).sort();
    for (const fileName of names) {
      const file = `${dir}/${fileName}`;
      const name = fileName.slice(0, -5);
      try {
        const p = await readProfileFile(env, file);
        const error = p.name === name ? null : `declares name "${p.name}"`;
        entries.push({ name, description: p.description, source: file, shadowed_by: null, error });
      } catch (e) {
        entries.push({ name, description: "", source: file, shadowed_by: null, error: (e as Error).message });
      }
    }
  }
  for (const [name, value] of Object.entries(BUILTIN_PROFILES)) {
    const description = (value as { description?: string }).description ?? "";
    entries.push({ name, description, source: "builtin", shadowed_by: null, error: null });
  }
  const winner = new Map<string, string>();
  for (const e of entries) {
    const w = winner.get(e.name);
    if (w !== undefined) e.shadowed_by = w;
    else winner.set(e.name, e.source);
  }
  return entries;
}
