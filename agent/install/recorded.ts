/**
 * Profiles by name, including those installed from a file. An install records where its profile came from
 * (`builtin:NAME` or the file's absolute path) and its hash in the venv's state; afterwards `status NAME`,
 * `verify NAME`, `prologue --profile NAME` and every hint that says `mlagent install NAME` work by name,
 * and say when the file has changed or gone.
 */
import type { Env } from "../core/env.ts";
import { badInput, MlagentError } from "../core/errors.ts";
import { venvDir as venvDirOf } from "../core/paths.ts";
import { findProfile, PROFILE_NAME_PATTERN, profileSha256 } from "../profiles/mod.ts";
import type { Profile } from "../profiles/types.ts";
import { readVenvState } from "./state.ts";

export interface ResolvedProfile {
  profile: Profile;
  /** "builtin:NAME", or the file it was read from. */
  source: string;
}

/**
 * A profile by name or path. A name that no search finds is looked up in the venv it would have been
 * installed to: a profile installed from a file is found again at that file. The file gone is bad input
 * naming it; the file changed since the install is said (the venv is then outdated).
 */
export async function resolveProfile(env: Env, ref: string, root?: string): Promise<ResolvedProfile> {
  try {
    return await findProfile(env, ref);
  } catch (e) {
    if (!(e instanceof MlagentError) || !PROFILE_NAME_PATTERN.test(ref) || !("known" in e.details)) throw e;
    const st = await readVenvState(env, venvDirOf(env, ref, root));
    // Any JSON may be there (a corrupt or foreign state file): only a string source is a recorded one.
    const source = st.kind === "ok" ? st.value?.plan?.profile_source : undefined;
    if (typeof source !== "string") throw e;
    if (source.startsWith("builtin:")) throw e;
    let found: ResolvedProfile;
    try {
      found = await findProfile(env, source);
    } catch (inner) {
      if (!(inner instanceof MlagentError)) throw inner;
      throw badInput(
        `profile "${ref}" was installed from ${source}, which cannot be read now: ${inner.message}`,
        `restore that file, or install from the profile's new place: mlagent install /path/to/${ref}.json`,
        { profile: ref, recorded_source: source },
      );
    }
    if (found.profile.name !== ref) {
      throw badInput(
        `profile "${ref}" was installed from ${source}, which now declares name "${found.profile.name}"`,
        `install from the file again: mlagent install ${source}`,
      );
    }
    if (st.kind === "ok" && profileSha256(found.profile) !== st.value.plan.profile_sha256) {
      env.log.warn(
        `profile "${ref}" (${source}) changed since its venv was built; mlagent install ${ref} updates it`,
      );
    }
    return found;
  }
}
