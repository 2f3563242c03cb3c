/** Hashes of a profile and of each stage, over canonical JSON, so an edit that changes nothing installs nothing. */
import { sha256Hex } from "../core/hash.ts";
import type { Profile, Stage } from "./types.ts";

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
  return sha256Hex(canonicalJson(subset));
}

/** SHA-256 (hex) of one stage in canonical JSON, for reinstalling only the stages that changed. */
export function stageSha256(stage: Stage): string {
  return sha256Hex(canonicalJson(stage));
}
