/** Judging a model on disk against its records, without the network: the one completeness judgement. */
import type { Env } from "../core/env.ts";
import {
  hfPartPath,
  hostilePathReason,
  MANIFEST,
  META_DIR,
  readHfTree,
  readManifest,
  readMetadata,
  recordDirProblem,
  scanFiles,
  statOrNull,
} from "./files.ts";
import { filterPaths } from "./glob.ts";
import { algoOf, hashAll, type ToHash } from "./hashing.ts";
import { quote } from "./hub.ts";
import { emptyVerdict, filesOk, isLiteral, provableWithoutListing, unverifiedReason } from "./judge.ts";
import { layoutOf } from "./target.ts";
import type { ListedFile, Manifest, VerifyOptions, VerifyResult } from "./types.ts";
import { verifyHubCache } from "./verify_cache.ts";

export { algoOf, hashFile, isSha1, isSha256 } from "./hashing.ts";

/**
 * Offline: is the target (a local dir, or the repo's folder in the hub cache) a finished download of `repo`
 * (at `revision`)? The one judgement status, prologue, `download --verify` and install's model step share.
 */
export async function verifyLocalModel(env: Env, opts: VerifyOptions): Promise<Required<VerifyResult>> {
  const layout = layoutOf(env, opts.repo, opts);
  return layout.kind === "hub-cache"
    ? await verifyHubCache(env, opts, layout.root)
    : await verifyLocalDir(env, opts, layout.root);
}

/**
 * A local dir: the expected files are the listing of the commit the
 * dir holds (mlagent's manifest, else huggingface_hub's `trees/<commit>.json`) after include/exclude, plus
 * the required files; each must be there at its listed size with a record (`.metadata`) that vouches for its
 * hash and that it has not changed since. A `.incomplete` part, a missing file, a wrong size, a file nothing
 * vouches for, or no listing at all (only per-file records) keeps the dir incomplete. A file changed since its
 * record is hashed; with `deep` every file is. Never touches the network.
 */
async function verifyLocalDir(
  env: Env,
  opts: VerifyOptions,
  localDir: string,
): Promise<Required<VerifyResult>> {
  const result = emptyVerdict(opts.repo, "local-dir", localDir);
  const untrusted = await recordDirProblem(env, localDir);
  if (untrusted) {
    result.reason = `${untrusted}; its download records are not trusted`;
    return result;
  }
  const reasons: string[] = [];
  const recordDir = await scanFiles(env, `${localDir}/${META_DIR}`);
  const recorded = [...recordDir].filter((p) => p.endsWith(".metadata")).map((p) =>
    p.slice(0, -".metadata".length)
  );
  const manifest = await readManifest(env, localDir);
  let listing: Record<string, ListedFile> | null = null;
  let verified: Manifest["files"] = {};
  if (manifest) {
    result.listing = "mlagent";
    result.commit = manifest.commit;
    listing = manifest.listing ?? manifest.files;
    verified = manifest.files;
    if (manifest.repo !== opts.repo) reasons.push(`the dir holds ${manifest.repo}, not ${opts.repo}`);
    else if (opts.revision && !revisionMatches(opts.revision, manifest.revision, manifest.commit)) {
      reasons.push(
        `the dir holds revision ${quote(manifest.revision)} (commit ${manifest.commit.slice(0, 12)}), not ${
          quote(opts.revision)
        }`,
      );
    }
  } else if (recorded.length) {
    // Filled by `hf download --local-dir`: its records name the commit each file came from.
    const commit = await heldCommit(env, localDir, recorded, opts.revision);
    result.commit = commit.commit;
    if (commit.other) reasons.push(commit.other);
    const tree = commit.commit ? await readHfTree(env, localDir, commit.commit) : null;
    if (tree) {
      result.listing = "hf";
      listing = tree;
    }
  } else {
    reasons.push(`nothing has been downloaded to ${localDir}`);
  }

  const expected = new Map<string, ListedFile | undefined>();
  if (listing) {
    for (const p of filterPaths(Object.keys(listing), opts.include, opts.exclude)) {
      expected.set(p, listing[p]);
    }
  } else {
    for (const p of filterPaths(recorded, opts.include, opts.exclude)) expected.set(p, undefined);
    // Named one by one, a file must be there whether or not a record says so.
    const named = (opts.include ?? []).filter(isLiteral);
    for (const p of filterPaths(named, undefined, opts.exclude)) expected.set(p, undefined);
  }
  for (const r of opts.requiredFiles ?? []) {
    if (expected.has(r)) continue;
    expected.set(r, listing?.[r]);
    if (listing && !listing[r] && result.commit) {
      reasons.push(`commit ${result.commit.slice(0, 12)} has no file ${quote(r)}`);
    }
  }

  // First every file's size and record (stat only), then the hashing that those leave to do.
  const toHash: ToHash[] = [];
  for (const [path, want] of [...expected].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    result.files++;
    if (hostilePathReason(path)) {
      result.missing.push(path);
      continue;
    }
    const st = await statOrNull(env, `${localDir}/${path}`);
    if (!st?.isFile) {
      const part = recordDir.has(`${path}.incomplete`) ||
        (want &&
          recordDir.has(hfPartPath(localDir, path, want.etag).slice(localDir.length + META_DIR.length + 2)));
      (part ? result.partial : result.missing).push(path);
      continue;
    }
    if (want && st.size !== want.size) {
      result.partial.push(path);
      continue;
    }
    result.bytes += st.size;
    const rec = await readMetadata(env, localDir, path);
    const etag = want ? (want.sha256 ?? want.etag) : rec?.etag;
    const algo = algoOf(etag);
    const mtime = st.mtime?.getTime() ?? 0;
    const known = verified[path];
    // mlagent saw the file when it verified it; another mtime means it was rewritten since (even with the
    // mtime set back, which huggingface_hub's timestamp rule alone would miss).
    const untouched = !known || (known.sha256 ?? known.etag) !== etag || known.mtime_ms === mtime;
    const vouched = !!rec && rec.etag === etag && mtime / 1000 - 1 <= rec.timestamp && untouched;
    if (algo && etag && (opts.deep || (!vouched && rec?.etag === etag))) {
      toHash.push({ path, file: `${localDir}/${path}`, size: st.size, etag, algo });
    } else if (!vouched) {
      result.unverified.push(path);
    }
  }
  await hashAll(env, localDir, toHash, result, opts.deep ?? false);

  const unproven = unverifiedReason(result.unverified);
  if (unproven) reasons.push(unproven);
  const whole = filesOk(result);
  if (!listing && recorded.length && whole && !provableWithoutListing(opts)) {
    reasons.push(
      `the file list of ${
        result.commit ? `commit ${result.commit.slice(0, 12)}` : "this download"
      } is not recorded there (no ${MANIFEST} or .cache/huggingface/trees/<commit>.json: an older hf, or files named one by one), so files beyond the ${result.files} present cannot be ruled out; run \`mlagent download ${opts.repo} --local-dir ${localDir}\` once online to record it (the files there are reused)`,
    );
  }
  result.reason = reasons.length ? reasons.join("; ") : null;
  result.complete = reasons.length === 0 && whole;
  return result;
}

/** Whether `asked` names what the manifest holds: its revision, its commit, or a prefix of it (7+ hex). */
function revisionMatches(asked: string, revision: string, commit: string): boolean {
  return asked === revision || asked === commit ||
    (/^[0-9a-f]{7,40}$/.test(asked) && commit.startsWith(asked));
}

/**
 * The commit an hf-filled dir holds: the asked one when it is a commit hash, else the one named by the
 * newest record (hf rewrites every record of a snapshot when it moves to a new commit).
 */
async function heldCommit(
  env: Env,
  localDir: string,
  recorded: string[],
  revision: string | undefined,
): Promise<{ commit: string | null; other: string | null }> {
  let newest: { commit: string; timestamp: number } | null = null;
  const commits = new Set<string>();
  for (const p of recorded) {
    const rec = await readMetadata(env, localDir, p);
    if (!rec) continue;
    commits.add(rec.commit);
    if (!newest || rec.timestamp > newest.timestamp) newest = rec;
  }
  if (revision && /^[0-9a-f]{40}$/.test(revision)) {
    if (commits.has(revision)) return { commit: revision, other: null };
    return {
      commit: newest?.commit ?? null,
      other: newest
        ? `the dir holds commit ${newest.commit.slice(0, 12)}, not ${revision.slice(0, 12)}`
        : null,
    };
  }
  return { commit: newest?.commit ?? null, other: null };
}
