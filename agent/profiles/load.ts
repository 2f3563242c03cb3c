/** Finding and loading profiles: built-in names, MLAGENT_PROFILE_PATH, and paths; bad input names the file, line and column. */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { closestMatch } from "../core/did_you_mean.ts";
import { absolute } from "../core/paths.ts";
import { describeFsError, jsonNestingDepth, readBoundedText } from "../core/files.ts";
import type { Profile } from "./types.ts";
import { BUILTIN_PROFILES } from "../../profiles/mod.ts";
import { lintProfile } from "./validate.ts";

export const PROFILE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
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
export async function profileFromText(text: string, source: string): Promise<Profile> {
  const depth = jsonNestingDepth(text);
  if (depth > MAX_PROFILE_DEPTH) {
    throw badInput(
      `${source}: nested ${depth} levels deep; a profile nests at most ${MAX_PROFILE_DEPTH}`,
      "this is not a profile: check the file",
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Where it broke needs a JSON scanner (an npm library): loaded only when a profile is broken, so every
    // command that merely reads a good profile starts without it.
    const { parseJsonLocated } = await import("../core/json_location.ts");
    const parsed = parseJsonLocated(text);
    if (!parsed.ok) {
      const { line, column, message } = parsed.error;
      throw badInput(
        `${source}:${line}:${column}: malformed JSON: ${message}`,
        "fix the JSON syntax (no trailing commas or comments in profiles)",
        { file: source, line, column },
      );
    }
    value = parsed.value;
  }
  const errors = lintErrors(value, source);
  if (errors.length > 0) {
    const { jsonPointerLocations, locatePointer } = await import("../core/json_location.ts");
    throw lintFailure(source, errors, locatePointer(jsonPointerLocations(text), errors[0].path));
  }
  return value as Profile;
}

/** Lints a parsed document and returns it as a Profile, or throws badInput with the first error. */
export function profileFromValue(value: unknown, source: string): Profile {
  const errors = lintErrors(value, source);
  if (errors.length > 0) throw lintFailure(source, errors, null);
  return value as Profile;
}

const lintErrors = (value: unknown, source: string) =>
  lintProfile(value, source).filter((i) => i.severity === "error");

/** The first lint error as bad input, at its line and column when the text was at hand. */
function lintFailure(
  source: string,
  errors: ReturnType<typeof lintErrors>,
  at: { line: number; column: number } | null,
) {
  const first = errors[0];
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
  return badInput(
    `${source}${at ? `:${at.line}:${at.column}` : ""}: ${first.path || "/"}: ${first.rule}${more}`,
    `run: mlagent profiles lint ${source.startsWith("builtin:") ? "<file>" : source}`,
    { file: source, issues: errors.map(({ path, rule }) => ({ path, rule })) },
  );
}

/** Profiles are a few KiB; anything far larger, or nested far deeper than one, is not a profile. */
export const MAX_PROFILE_BYTES = 4 * 1024 * 1024;
export const MAX_PROFILE_DEPTH = 64;

/** A profile file's text, or bad input naming the file and why it cannot be one (missing, a FIFO, huge). */
export async function readProfileText(env: Env, file: string): Promise<string> {
  const r = await readBoundedText(env, file, MAX_PROFILE_BYTES);
  if (r.kind === "missing") throw badInput(`profile file not found: ${file}`);
  if (r.kind === "refused") throw badInput(`cannot read profile ${file}: it ${r.why}`);
  return r.text;
}

async function readProfileFile(env: Env, file: string): Promise<Profile> {
  return profileFromText(await readProfileText(env, file), file);
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
      throw badInput(
        `MLAGENT_PROFILE_PATH names ${dir}, which cannot be listed: ${
          e instanceof Deno.errors.NotADirectory ? "it is not a directory" : describeFsError(e)
        }`,
        "MLAGENT_PROFILE_PATH is a colon-separated list of directories holding NAME.json profiles",
      );
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
