/**
 * The completeness judgement for a model in the hub cache, whoever filled it (mlagent, `hf download`,
 * `from_pretrained`): the same rules as for a local dir (verify.ts), read from the cache's own records.
 */
import type { Env } from "../core/env.ts";
import { quote } from "./hub.ts";
import { hostilePathReason, readHfTreeIn, readManifestAt, recordDirProblem, scanFiles } from "./files.ts";
import { filterPaths } from "./glob.ts";
import { algoOf, hashAll, type ToHash } from "./hashing.ts";
import { isBlobName, readRef } from "./hub_cache.ts";
import { emptyVerdict, filesOk, isLiteral, provableWithoutListing, unverifiedReason } from "./judge.ts";
import { manifestPath } from "./layout.ts";
import type { ListedFile, Manifest, VerifyOptions, VerifyResult } from "./types.ts";

/**
 * `root` is the repo's folder (`models--ORG--NAME`). The commit is the revision itself when it is a commit
 * hash, else what `refs/<revision>` names (as hf resolves it offline: file_download.py l.1113-1124); its
 * listing is mlagent's manifest of that commit, else hf's `trees/<commit>.json`. Each expected file must be
 * in `snapshots/<commit>/` as a link to the blob its listing names, at the listed size. The blob's name is its
 * hash and both tools rename a part to it only once whole, so that vouches for it, unless mlagent's manifest
 * saw it with another mtime (then it is hashed); with `deep` every blob is hashed. A plain file in the
 * snapshot (hf's fallback where symlinks fail) has no such record: unverified unless `deep`. A part
 * (`blobs/<etag>.incomplete`, or hf's `blobs/<etag>.<8 hex>.incomplete`) makes a missing file partial.
 */
export async function verifyHubCache(
  env: Env,
  opts: VerifyOptions,
  root: string,
): Promise<Required<VerifyResult>> {
  const result = emptyVerdict(opts.repo, "hub-cache", root);
  const untrusted = await recordDirProblem(env, root);
  if (untrusted) {
    result.reason = `${untrusted}; its download records are not trusted`;
    return result;
  }
  const revision = opts.revision ?? "main";
  const commit = /^[0-9a-f]{40}$/.test(revision) ? revision : await readRef(env, root, revision);
  const exists = await env.fs.stat(root).then(() => true, () => false);
  if (!commit) {
    result.reason = exists
      ? `the hub cache has no ref ${
        quote(revision)
      } for ${opts.repo} (${root}/refs): that revision was not downloaded`
      : `nothing of ${opts.repo} has been downloaded to the hub cache (${root})`;
    return result;
  }
  result.commit = commit;
  const snapshot = `${root}/snapshots/${commit}`;
  result.local_dir = snapshot;
  const reasons: string[] = [];

  const manifest = await readManifestAt(env, manifestPath({ kind: "hub-cache", root }, commit));
  let listing: Record<string, ListedFile> | null = null;
  let verified: Manifest["files"] = {};
  if (manifest && manifest.repo === opts.repo && manifest.commit === commit) {
    result.listing = "mlagent";
    listing = manifest.listing ?? manifest.files;
    verified = manifest.files;
  } else {
    const tree = await readHfTreeIn(env, root, commit);
    if (tree) {
      result.listing = "hf";
      listing = tree;
    }
  }
  const expected = new Map<string, ListedFile | undefined>();
  const present = listing ? new Set<string>() : await scanFiles(env, snapshot);
  if (listing) {
    for (const p of filterPaths(Object.keys(listing), opts.include, opts.exclude)) {
      expected.set(p, listing[p]);
    }
  } else {
    if (present.size === 0) reasons.push(`nothing of commit ${commit.slice(0, 12)} is in ${snapshot}`);
    for (const p of filterPaths([...present], opts.include, opts.exclude)) expected.set(p, undefined);
    const named = (opts.include ?? []).filter(isLiteral);
    for (const p of filterPaths(named, undefined, opts.exclude)) expected.set(p, undefined);
  }
  for (const r of opts.requiredFiles ?? []) {
    if (expected.has(r)) continue;
    expected.set(r, listing?.[r]);
    if (listing && !listing[r]) reasons.push(`commit ${commit.slice(0, 12)} has no file ${quote(r)}`);
  }

  const blobs = new Set<string>();
  try {
    for await (const e of env.fs.readDir(`${root}/blobs`)) blobs.add(e.name);
  } catch { /* no blobs */ }
  const partOf = (name: string) =>
    blobs.has(`${name}.incomplete`) ||
    [...blobs].some((b) =>
      b.startsWith(`${name}.`) && /^\.[0-9a-f]{8}\.incomplete$/.test(b.slice(name.length))
    );
  const blobDir = await env.fs.realPath(`${root}/blobs`).catch(() => null);

  const toHash: ToHash[] = [];
  for (const [path, want] of [...expected].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    result.files++;
    const name = want ? (want.sha256 ?? want.etag) : undefined;
    if (hostilePathReason(path)) {
      result.missing.push(path);
      continue;
    }
    const pointer = `${snapshot}/${path}`;
    const lst = await env.fs.lstat(pointer).catch(() => null);
    const real = lst?.isSymlink ? await env.fs.realPath(pointer).catch(() => null) : null;
    const st = lst?.isSymlink ? (real ? await env.fs.stat(real).catch(() => null) : null) : lst;
    if (!st?.isFile) {
      (name && partOf(name) ? result.partial : result.missing).push(path);
      continue;
    }
    if (want && st.size !== want.size) {
      result.partial.push(path);
      continue;
    }
    result.bytes += st.size;
    const mtime = st.mtime?.getTime() ?? 0;
    if (lst!.isSymlink) {
      const blob = real!.slice(real!.lastIndexOf("/") + 1);
      const inBlobs = blobDir !== null && real === `${blobDir}/${blob}` && isBlobName(blob);
      if (!inBlobs || (name && blob !== name)) {
        // A link to other bytes than the listing's (or to somewhere that is not a blob of this repo).
        result.corrupt.push(path);
        continue;
      }
      const known = verified[path];
      const changed = !!known && (known.sha256 ?? known.etag) === blob && known.mtime_ms !== mtime;
      if (opts.deep || changed) {
        toHash.push({ path, file: real!, size: st.size, etag: blob, algo: algoOf(blob)! });
      }
      continue;
    }
    // A plain file: hf copies the blob there where symlinks fail; nothing records what it holds.
    const algo = algoOf(name);
    if (opts.deep && name && algo) toHash.push({ path, file: pointer, size: st.size, etag: name, algo });
    else result.unverified.push(path);
  }
  await hashAll(env, snapshot, toHash, result, opts.deep ?? false);

  const unproven = unverifiedReason(result.unverified);
  if (unproven) reasons.push(unproven);
  const whole = filesOk(result);
  if (!listing && present.size && whole && !provableWithoutListing(opts)) {
    reasons.push(
      `the file list of commit ${
        commit.slice(0, 12)
      } is not recorded in the hub cache (no mlagent manifest or trees/${commit}.json: an older hf), so files beyond the ${result.files} present cannot be ruled out; run \`mlagent download ${opts.repo} --cache\` once online to record it (the blobs there are reused)`,
    );
  }
  result.reason = reasons.length ? reasons.join("; ") : null;
  result.complete = reasons.length === 0 && whole;
  return result;
}
