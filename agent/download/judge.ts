/** What the two completeness judgements (a local dir, a hub-cache repo folder) share: pure pieces only. */
import type { LayoutKind } from "./layout.ts";
import type { VerifyOptions, VerifyResult } from "./types.ts";

/** Pure: whether a glob is a plain file name (no fnmatch special character, no trailing "/"). */
export const isLiteral = (glob: string) => !/[*?[]/.test(glob) && !glob.endsWith("/");

/** Without a listing, only a selection made of file names (each checked) is known in full. */
export function provableWithoutListing(opts: VerifyOptions): boolean {
  return (opts.include?.length ?? 0) > 0 && opts.include!.every(isLiteral);
}

/** A verdict that is "not complete" until the judgement says otherwise. */
export function emptyVerdict(repo: string, layout: LayoutKind, localDir: string): Required<VerifyResult> {
  return {
    complete: false,
    repo,
    commit: null,
    layout,
    local_dir: localDir,
    files: 0,
    bytes: 0,
    missing: [],
    partial: [],
    corrupt: [],
    unverified: [],
    listing: "unknown",
    hashed_files: 0,
    reason: null,
  };
}

/** Pure: the reason naming files present that nothing proves, or null. */
export function unverifiedReason(unverified: string[]): string | null {
  if (!unverified.length) return null;
  return `${unverified.length} file(s) present without a record of their hash: ${
    unverified.slice(0, 3).join(", ")
  }${unverified.length > 3 ? ", ..." : ""}`;
}

/** Pure: whether every expected file was found whole and vouched for. */
export const filesOk = (r: VerifyResult) =>
  r.missing.length + r.partial.length + r.corrupt.length + (r.unverified?.length ?? 0) === 0;
