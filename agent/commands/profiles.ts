/** `mlagent profiles list|show|lint`: the profiles mlagent can find, one in full, and a linter for files. */
import type { Command } from "../cli.ts";
import { parseCommandArgs } from "./args.ts";
import type { Env } from "../core/env.ts";
import { EXIT, usageError } from "../core/errors.ts";
import { jsonPointerLocations, locatePointer, parseJsonLocated } from "../core/json_location.ts";
import { type Outcome, plural } from "../core/output.ts";
import { absolute } from "../core/paths.ts";
import {
  findProfile,
  type LintIssue,
  lintProfile,
  listProfiles,
  MAX_PROFILE_BYTES,
  MAX_PROFILE_DEPTH,
  type Profile,
  profileDirs,
  profileSha256,
} from "../profiles/mod.ts";
import { jsonNestingDepth, readBoundedText } from "../core/files.ts";
import { BUILTIN_PROFILES } from "../../profiles/mod.ts";

const HELP = `Usage: mlagent profiles list [--json]
       mlagent profiles show NAME|FILE [--json]
       mlagent profiles lint FILE... [--json]

A profile is a JSON file describing one model's venv: the Python constraint, GPU needs, the CUDA variants
of its PyTorch wheels, ordered install stages with exact pins, verify steps and models. Built-in profiles
are compiled in; add your own as files (pass the path) or in a directory named by MLAGENT_PROFILE_PATH.

Subcommands:
  list        every profile found by name: MLAGENT_PROFILE_PATH directories first, then built-ins
  show        one profile in full (stages, pins, verify steps, models, where each pin came from)
  lint        check files: JSON syntax (line and column), the schema (field path and rule), unknown
              fields, and that every requirement is pinned (==, or a VCS/URL source at a commit or tag)

Options:
  --json      one JSON document

Environment:
  MLAGENT_PROFILE_PATH  colon-separated directories holding <name>.json profiles (searched before built-ins)

Exit codes: 0 ok (lint: no errors; warnings allowed), 2 unknown profile, malformed file or lint errors.`;

const SUBCOMMANDS: Record<string, string> = {
  list: `Usage: mlagent profiles list [--json]

Every profile mlagent finds by name, in lookup order: MLAGENT_PROFILE_PATH directories (each sorted by
name), then the built-ins; a name found twice is marked shadowed, an unreadable or invalid file is listed
with its error.

Environment: MLAGENT_PROFILE_PATH. Exit codes: 0 ok, 2 bad flag or an unusable MLAGENT_PROFILE_PATH entry.`,
  show: `Usage: mlagent profiles show NAME|FILE [--json]

One profile in full: Python constraint, GPU needs, CUDA variants, stages with their pins, verify steps,
models and sources. NAME is a built-in, a name in MLAGENT_PROFILE_PATH, or a profile installed from a file.

Environment: MLAGENT_PROFILE_PATH. Exit codes: 0 ok, 2 unknown profile or malformed file.`,
  lint: `Usage: mlagent profiles lint FILE|NAME... [--json]

Checks profile files: JSON syntax (line and column), the schema (field path and rule, with a did-you-mean
for unknown fields), every requirement pinned, stage names unique, include/exclude patterns that can match,
models with a pinned revision and required files (warnings). A built-in name checks what ships.

Exit codes: 0 no errors (warnings allowed), 2 errors in any file.`,
};

export const profilesCommand: Command = {
  name: "profiles",
  help: HELP,
  subcommands: SUBCOMMANDS,
  run: runProfilesCommand,
};

async function runProfilesCommand(env: Env, argv: string[]): Promise<Outcome> {
  const { positionals } = parseCommandArgs("profiles", argv, {});
  const [sub, ...args] = positionals;
  switch (sub) {
    case "list":
      if (args.length > 0) throw usageError(`profiles list: unexpected argument "${args[0]}"`);
      return await listCommand(env);
    case "show":
      if (args.length !== 1) {
        throw usageError(
          "profiles show: give exactly one profile name or file",
          "see: mlagent profiles --help",
        );
      }
      return await showCommand(env, args[0]);
    case "lint":
      if (args.length === 0) {
        throw usageError("profiles lint: give at least one file", "see: mlagent profiles --help");
      }
      return await lintCommand(env, args);
    case undefined:
      throw usageError("profiles: missing subcommand (list, show or lint)", "see: mlagent profiles --help");
    default:
      throw usageError(
        `profiles: unknown subcommand "${sub}" (list, show or lint)`,
        "see: mlagent profiles --help",
      );
  }
}

async function listCommand(env: Env): Promise<Outcome> {
  const entries = await listProfiles(env);
  const width = Math.max(4, ...entries.map((e) => e.name.length));
  const lines = entries.map((e) => {
    const where = e.source === "builtin" ? "builtin" : e.source;
    const note = e.error
      ? `  [invalid: ${e.error}]`
      : e.shadowed_by
      ? `  [shadowed by ${e.shadowed_by}]`
      : "";
    return `${e.name.padEnd(width)}  ${e.description}${note}\n${" ".repeat(width)}  (${where})`;
  });
  return {
    exitCode: EXIT.ok,
    json: { ok: true, profile_path: profileDirs(env), profiles: entries },
    text: lines.join("\n"),
  };
}

async function showCommand(env: Env, nameOrPath: string): Promise<Outcome> {
  const { profile, source } = await findProfile(env, nameOrPath);
  const sha256 = profileSha256(profile);
  return {
    exitCode: EXIT.ok,
    json: { ok: true, source, profile_sha256: sha256, profile },
    text: renderProfile(profile, source, sha256),
  };
}

/** A profile for people: what gets installed, in which order, how it is checked, and why each pin. */
export function renderProfile(p: Profile, source: string, sha256: string): string {
  const out: string[] = [];
  out.push(`${p.name}: ${p.description}`);
  out.push(`  source:       ${source}`);
  out.push(`  sha256:       ${sha256}`);
  out.push(`  python:       ${p.python}`);
  const gpu = p.gpu.required
    ? `required${p.gpu.min_count ? `, at least ${p.gpu.min_count}` : ""}${
      p.gpu.min_memory_mib ? `, ${p.gpu.min_memory_mib} MiB each` : ""
    }`
    : "not required";
  out.push(`  gpu:          ${gpu}`);
  out.push(
    `  cuda:         ${
      p.cuda_variants.length ? p.cuda_variants.map((v) => `${v.name} (${v.index_url})`).join(", ") : "none"
    }`,
  );
  out.push(
    `  builds:       ${
      p.builds_extensions ? "compiles extensions (needs Python.h and nvcc)" : "wheels only"
    }`,
  );
  out.push(`  disk:         ${p.disk_gib} GiB`);
  out.push("  stages:");
  p.stages.forEach((s, i) => {
    const opts = [
      s.index_url ? `index ${s.index_url === "cuda" ? "of the CUDA variant" : s.index_url}` : null,
      s.extra_index_urls?.length ? `extra index ${s.extra_index_urls.join(", ")}` : null,
      s.no_cache ? "no cache" : null,
      s.no_build_isolation ? "no build isolation" : null,
      s.no_deps ? "no deps" : null,
      s.builds_extensions ? "builds extensions" : null,
      s.env ? Object.entries(s.env).map(([k, v]) => `${k}=${v}`).join(" ") : null,
      s.timeout_s ? `timeout ${s.timeout_s}s` : null,
      s.allow_unpinned ? `unpinned allowed: ${s.allow_unpinned}` : null,
    ].filter(Boolean);
    out.push(`    ${i + 1}. ${s.name}${opts.length ? ` [${opts.join("; ")}]` : ""}`);
    for (const pkg of s.packages) out.push(`         ${pkg}`);
  });
  out.push("  verify:");
  if (p.verify.length === 0) out.push("    (none)");
  for (const v of p.verify) {
    out.push(
      `    - ${v.name}${v.requires_gpu ? " (only with a GPU)" : ""}${v.timeout_s ? `, ${v.timeout_s}s` : ""}`,
    );
  }
  out.push("  models:");
  if (p.models.length === 0) out.push("    (none)");
  for (const m of p.models) {
    out.push(
      `    - ${m.repo}${m.revision ? `@${m.revision}` : ""}${m.local_dir ? ` -> ${m.local_dir}` : ""}`,
    );
  }
  if (p.sources && Object.keys(p.sources).length > 0) {
    out.push("  sources:");
    for (const [k, v] of Object.entries(p.sources)) out.push(`    ${k}: ${v}`);
  }
  return out.join("\n");
}

interface LintedFile {
  file: string;
  ok: boolean;
  errors: number;
  warnings: number;
  issues: { path: string; rule: string; severity: "error" | "warning"; line?: number; column?: number }[];
}

async function lintOne(env: Env, arg: string): Promise<LintedFile> {
  const result = (issues: LintedFile["issues"], file: string): LintedFile => {
    const errors = issues.filter((i) => i.severity === "error").length;
    return { file, ok: errors === 0, errors, warnings: issues.length - errors, issues };
  };
  const fromLint = (issues: LintIssue[]) =>
    issues.map(({ path, rule, severity }) => ({ path, rule, severity }));
  const file = absolute(env, arg);
  const read = await readBoundedText(env, file, MAX_PROFILE_BYTES);
  if (read.kind === "missing" && Object.hasOwn(BUILTIN_PROFILES, arg)) {
    // A bare built-in name is accepted too, so `profiles lint yolo` checks what ships.
    return result(fromLint(lintProfile(BUILTIN_PROFILES[arg], `builtin:${arg}`)), `builtin:${arg}`);
  }
  if (read.kind !== "ok") {
    const why = read.kind === "missing" ? "file not found" : read.why;
    return result([{ path: "", rule: `cannot read: ${why}`, severity: "error" }], arg);
  }
  const text = read.text;
  const depth = jsonNestingDepth(text);
  if (depth > MAX_PROFILE_DEPTH) {
    return result([{
      path: "",
      rule: `nested ${depth} levels deep (at most ${MAX_PROFILE_DEPTH})`,
      severity: "error",
    }], arg);
  }
  const parsed = parseJsonLocated(text);
  if (!parsed.ok) {
    const { line, column, message } = parsed.error;
    return result([{
      path: "",
      rule: `malformed JSON: ${message}`,
      severity: "error",
      line,
      column,
    }], arg);
  }
  const locations = jsonPointerLocations(text);
  const located = fromLint(lintProfile(parsed.value, arg)).map((i) => ({
    ...i,
    ...(locatePointer(locations, i.path) ?? {}),
  }));
  return result(located, arg);
}

async function lintCommand(env: Env, files: string[]): Promise<Outcome> {
  const results: LintedFile[] = [];
  for (const f of files) results.push(await lintOne(env, f));
  const lines: string[] = [];
  for (const r of results) {
    for (const i of r.issues) {
      const mark = i.severity === "warning" ? "warning: " : "";
      const where = i.line !== undefined ? `${r.file}:${i.line}:${i.column}` : r.file;
      // Syntax errors have no field path; everything else names the field and the rule.
      lines.push(
        i.rule.startsWith("malformed JSON")
          ? `${where}: ${i.rule}`
          : `${where}: ${i.path || "/"}: ${mark}${i.rule}`,
      );
    }
  }
  const errors = results.reduce((n, r) => n + r.errors, 0);
  const warnings = results.reduce((n, r) => n + r.warnings, 0);
  const summary = `${plural(errors, "error")}, ${plural(warnings, "warning")} in ${
    plural(results.length, "file")
  }`;
  env.log.info(summary);
  return {
    exitCode: errors > 0 ? EXIT.usage : EXIT.ok,
    json: { ok: errors === 0, errors, warnings, files: results },
    text: lines.join("\n"),
  };
}
