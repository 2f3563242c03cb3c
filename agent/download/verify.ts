/** Hashing files and judging a local model dir against its records, without the network. */
import { createHash } from "node:crypto";
import type { Env } from "../core/env.ts";
import { formatBytes, formatDuration } from "../core/output.ts";
import { absolute } from "../core/paths.ts";
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
import { quote } from "./hub.ts";
import type { ListedFile, Manifest, VerifyOptions, VerifyResult } from "./types.ts";

export async function hashFile(
  env: Env,
  path: string,
  algo: "sha256" | "git-sha1",
  signal?: AbortSignal,
  onRead?: (bytes: number) => void,
): Promise<string> {
  const h = createHash(algo === "sha256" ? "sha256" : "sha1");
  const file = await env.fs.open(path, { read: true });
  try {
    if (algo === "git-sha1") h.update(`blob ${(await file.stat()).size}\0`);
    const buf = new Uint8Array(4 << 20);
    while (true) {
      if (signal?.aborted) throw signal.reason;
      const n = await file.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
      onRead?.(n);
    }
  } finally {
    file.close();
  }
  return h.digest("hex");
}

export const isSha256 = (s: string | undefined) => !!s && /^[0-9a-f]{64}$/.test(s);
export const isSha1 = (s: string | undefined) => !!s && /^[0-9a-f]{40}$/.test(s);

/** Pure: the hash an etag is (sha256 of an LFS file, git blob sha1 of a regular one), or null if neither. */
export const algoOf = (etag: string | undefined): "sha256" | "git-sha1" | null =>
  isSha256(etag) ? "sha256" : isSha1(etag) ? "git-sha1" : null;

/** Pure: whether a glob is a plain file name (no fnmatch special character, no trailing "/"). */
const isLiteral = (glob: string) => !/[*?[]/.test(glob) && !glob.endsWith("/");

// ---------------------------------------------------------------------------------------------- verify

/**
 * Offline: is `localDir` a finished download of `repo` (at `revision`)? The one judgement status, prologue,
 * `download --verify` and install's model step share. The expected files are the listing of the commit the
 * dir holds (mlagent's manifest, else huggingface_hub's `trees/<commit>.json`) after include/exclude, plus
 * the required files; each must be there at its listed size with a record (`.metadata`) that vouches for its
 * hash and that it has not changed since. A `.incomplete` part, a missing file, a wrong size, a file nothing
 * vouches for, or no listing at all (only per-file records) keeps the dir incomplete. A file changed since its
 * record is hashed; with `deep` every file is. Never touches the network.
 */
export async function verifyLocalModel(env: Env, opts: VerifyOptions): Promise<Required<VerifyResult>> {
  const localDir = absolute(env, opts.localDir);
  const result: Required<VerifyResult> = {
    complete: false,
    repo: opts.repo,
    commit: null,
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
  const toHash: { path: string; size: number; etag: string; algo: "sha256" | "git-sha1" }[] = [];
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
      toHash.push({ path, size: st.size, etag, algo });
    } else if (!vouched) {
      result.unverified.push(path);
    }
  }
  await hashAll(env, localDir, toHash, result, opts.deep ?? false);

  if (result.unverified.length) {
    reasons.push(
      `${result.unverified.length} file(s) present without a record of their hash: ${
        result.unverified.slice(0, 3).join(", ")
      }${result.unverified.length > 3 ? ", ..." : ""}`,
    );
  }
  const filesOk = result.missing.length + result.partial.length + result.corrupt.length +
      result.unverified.length === 0;
  if (!listing && recorded.length && filesOk && !provableWithoutListing(opts)) {
    reasons.push(
      `the file list of ${
        result.commit ? `commit ${result.commit.slice(0, 12)}` : "this download"
      } is not recorded there (no ${MANIFEST} or .cache/huggingface/trees/<commit>.json: an older hf, or files named one by one), so files beyond the ${result.files} present cannot be ruled out; run \`mlagent download ${opts.repo} --local-dir ${localDir}\` once online to record it (the files there are reused)`,
    );
  }
  result.reason = reasons.length ? reasons.join("; ") : null;
  result.complete = reasons.length === 0 && filesOk;
  return result;
}

/** Without a listing, only a selection made of file names (each checked above) is known in full. */
function provableWithoutListing(opts: VerifyOptions): boolean {
  return (opts.include?.length ?? 0) > 0 && opts.include!.every(isLiteral);
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

/** Hashes the files that need it, with progress on stderr (redrawn on a terminal, a heartbeat elsewhere). */
async function hashAll(
  env: Env,
  localDir: string,
  files: { path: string; size: number; etag: string; algo: "sha256" | "git-sha1" }[],
  result: Required<VerifyResult>,
  deep: boolean,
) {
  if (files.length === 0) return;
  const total = files.reduce((a, f) => a + f.size, 0);
  const t0 = env.now();
  let done = 0;
  let current = "";
  let index = 0;
  let lastBeat = t0;
  if (deep) env.log.info(`re-hashing ${files.length} files (${formatBytes(total)}) in ${localDir}`);
  const line = () =>
    `hashed ${index}/${files.length} files, ${formatBytes(done)} of ${formatBytes(total)}${
      current ? `: ${current}` : ""
    }`;
  const stop = env.every(1000, () => {
    if (env.stderrIsTerminal) env.log.progress(line());
    else if (env.now() - lastBeat >= 30_000) {
      lastBeat = env.now();
      env.log.info(line());
    }
  });
  try {
    for (const f of files) {
      current = f.path;
      const got = await hashFile(env, `${localDir}/${f.path}`, f.algo, undefined, (n) => (done += n));
      index++;
      result.hashed_files++;
      if (got !== f.etag) result.corrupt.push(f.path);
    }
  } finally {
    stop();
  }
  if (deep) {
    env.log.info(
      `hashed ${files.length} files (${formatBytes(total)}) in ${formatDuration(env.now() - t0)}: ${
        result.corrupt.length ? `${result.corrupt.length} do not match` : "all match"
      }`,
    );
  }
}
