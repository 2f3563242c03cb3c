/**
 * Profiles: find one (built-in name, a name in MLAGENT_PROFILE_PATH, or a path), parse it with line and
 * column on syntax errors, validate it against profiles/profile.schema.json, and lint what a schema cannot
 * say (every requirement pinned, stage names unique, "cuda" index only with CUDA variants, no conflicting
 * pins). A profile that fails any of this is bad input (exit 2) and nothing is created for it.
 */

export { canonicalJson, profileSha256, stageSha256 } from "./hash.ts";
export {
  findProfile,
  listProfiles,
  loadProfile,
  MAX_PROFILE_BYTES,
  MAX_PROFILE_DEPTH,
  PROFILE_NAME_PATTERN,
  profileDirs,
} from "./load.ts";
export { parseRequirement } from "./requirement.ts";
export { type LintIssue, lintProfile } from "./validate.ts";

export type { Profile, Stage } from "./types.ts";
