/**
 * What the no-op check and the plan must agree on, kept apart from planning (doctor, download, cache) so
 * a no-op install loads only this: the plan's fingerprint, the forced CUDA variant, the newest variant,
 * and the places that must be trusted before anything in them is read.
 */
import type { Env } from "../core/env.ts";
import { sha256Hex } from "../core/hash.ts";
import { modelsRoot, venvDir as venvDirOf, venvRoot } from "../core/paths.ts";
import { requireTrustedDir } from "../core/trust.ts";
import { compareVersions } from "../compat.ts";
import type { CudaVariant, Profile } from "../profiles/types.ts";
import type { InstallOptions } from "./types.ts";

export const sha = (...parts: string[]) => sha256Hex(parts.join("\0"));

/** The whole plan's fingerprint: profile content, CUDA variant, interpreter (version and path), installer. */
export function planFingerprint(
  profileSha256: string,
  cuda: string | null,
  pythonVersion: string,
  pythonExecutable: string,
  installer: string,
): string {
  return sha(profileSha256, cuda ?? "", pythonVersion, pythonExecutable, installer);
}

/** Before anything is read from these places, let alone run: another local user must not own them. */
export function requirePlacesTrusted(env: Env, profile: Profile, opts: InstallOptions): void {
  requireTrustedDir(env, venvRoot(env, opts.root), "venv root");
  requireTrustedDir(env, venvDirOf(env, profile.name, opts.root), "venv");
  if (profile.models.length && !opts.noModels) requireTrustedDir(env, modelsRoot(env), "models dir");
}

/** --cuda, else MLAGENT_CUDA_VARIANT (the doctor's name for the same choice). */
export function forcedCuda(env: Env, opts: InstallOptions): string | null {
  return opts.cuda?.trim() || env.vars.MLAGENT_CUDA_VARIANT?.trim() || null;
}

export function newestVariant(variants: CudaVariant[]): CudaVariant {
  return [...variants].sort((a, b) => compareVersions(b.cuda, a.cuda))[0];
}
