/**
 * Installer failure classifier (contract stub; the profiles/classifier work fills it).
 * Pure: installer output in, a verdict out. Table-tested against captured real pip and uv errors.
 */

export type FailureKind = "network" | "cache-corrupt" | "resolution" | "build" | "unknown";

export interface FailureVerdict {
  kind: FailureKind;
  /** The package the error names, lowercase canonical, when one is named. */
  package: string | null;
  /** The likely cause in words (e.g. "nvcc not found", "Python.h missing"). */
  cause: string | null;
  /** The fix a user can act on. */
  remedy: string;
  /** For network failures: what failed (dns, connect, tls, http-5xx, timeout). */
  detail: string | null;
}

export function classifyInstallFailure(_output: string): FailureVerdict {
  return {
    kind: "unknown",
    package: null,
    cause: null,
    remedy: "Read the installer output above",
    detail: null,
  };
}
