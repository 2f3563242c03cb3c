/**
 * Resumable, verified downloads of a Hugging Face repo, into a local dir that `hf download --local-dir` also
 * understands or into the hub cache that `hf download` and `from_pretrained` read (layout.ts). Bytes go to a
 * part (`.cache/huggingface/download/<path>.incomplete` beside huggingface_hub's `<path>.metadata` record, or
 * `blobs/<etag>.incomplete` in the cache), so a later run or another process continues with a Range request;
 * every file is checked against its size and every LFS file against its sha256 before it is put in place. The
 * listing of the commit is recorded before the first byte is fetched. The whole run holds the download lock of
 * the target (the local dir, or the repo's folder in the cache): a second job waits, then finds the files done.
 */
import type { Env } from "../core/env.ts";
import { LEAF } from "../core/run.ts";
import { badInput, failed, MlagentError } from "../core/errors.ts";
import {
  HubClient,
  hubEndpoint,
  type HubFile,
  HubHttpError,
  networkHint,
  quote,
  readToken,
  redact,
  REFUSED_REDIRECT,
  validateRepoId,
  validateRevision,
} from "./hub.ts";
import { downloadLockSpec, withLock } from "../lock/mod.ts";
import { formatBytes } from "../core/output.ts";
import { type Ctx, type Job, stallMsFor } from "./context.ts";
import { numberVar } from "../core/vars.ts";
import {
  hostilePathReason,
  META_DIR,
  parentOf,
  readManifestAt,
  readMetadata,
  recordDirProblem,
  scanFiles,
  statOrNull,
  writeMetadata,
  writeText,
} from "./files.ts";
import { filterPaths } from "./glob.ts";
import { isBlobName, linkPointer, refProblem, tagCacheDir, writeRef, writeTree } from "./hub_cache.ts";
import { blobName, blobPath, filesDir, type Layout, manifestPath, partPath, RECORD_DIR } from "./layout.ts";
import { startProgress } from "./progress.ts";
import { withRetries } from "./retries.ts";
import { fetchFile, prefetchHeads } from "./transfer.ts";
import { layoutOf } from "./target.ts";
import type { DownloadOptions, DownloadReport, Manifest } from "./types.ts";
import { hashFile, isSha1 } from "./hashing.ts";
import { verifyLocalModel } from "./verify.ts";

export { hostilePathReason } from "./files.ts";
export { filterPaths } from "./glob.ts";
export { hubCacheRepoDir, type LayoutKind, pointerTarget, repoFolderName } from "./layout.ts";
export { rangeChunkBytes } from "./parts.ts";
export { layoutOf, modelTarget } from "./target.ts";
export { contiguousEnd } from "./transfer.ts";
export type { DownloadReport, Target, VerifyResult } from "./types.ts";
export { verifyLocalModel } from "./verify.ts";

export { cleanToken, readToken, validateRepoId, validateRevision } from "./hub.ts";

export async function downloadRepo(env: Env, opts: DownloadOptions): Promise<DownloadReport> {
  const started = env.now();
  const bad = validateRepoId(opts.repo);
  if (bad) throw badInput(bad, "a repo id looks like tencent/HunyuanVideo-I2V");
  const revision = opts.revision ?? "main";
  const badRev = validateRevision(revision);
  if (badRev) throw badInput(badRev, "a revision is a branch, a tag or a commit hash");
  const layout = layoutOf(env, opts.repo, opts);
  const cache = layout.kind === "hub-cache";
  const badRef = cache ? refProblem(revision) : null;
  if (badRef) {
    throw badInput(
      `revision ${quote(revision)} ${badRef}: in the hub cache it would name a file outside refs/`,
      "a revision is a branch, a tag or a commit hash",
    );
  }
  const root = layout.root;
  const st = await statOrNull(env, root);
  if (st && !st.isDirectory) throw badInput(`target ${root} exists and is not a directory`);
  const recordDir = await recordDirProblem(env, root);
  if (recordDir) {
    throw badInput(
      `${recordDir}: the download records and parts would be written there`,
      `remove it (or make it a plain directory) and run again; nothing was written`,
    );
  }

  const offline = ["1", "on", "yes", "true"].includes((env.vars.HF_HUB_OFFLINE ?? "").toLowerCase());
  if (offline) {
    const v = await verifyLocalModel(env, { ...opts, layout: layout.kind, localDir: root });
    const missing = [...v.missing, ...v.corrupt, ...v.unverified];
    return {
      ok: v.complete,
      repo: opts.repo,
      revision,
      commit: v.commit,
      layout: layout.kind,
      local_dir: v.local_dir,
      offline: true,
      files: v.files,
      files_fetched: 0,
      files_reused: v.files - missing.length - v.partial.length,
      files_resumed: 0,
      total_bytes: v.bytes,
      fetched_bytes: 0,
      reused_bytes: v.bytes,
      resumed_bytes: 0,
      retries: 0,
      duration_ms: env.now() - started,
      throughput_bytes_per_s: 0,
      missing,
      partial: v.partial,
      reason: v.reason,
    };
  }

  // A target that does not exist yet will get files: its free space is read while the Hub answers the
  // revision and listing (df costs ~45 ms of spawning on a busy node), not after them.
  const early = !st && !opts.skipDiskCheck ? measureFreeSpace(env, spaceDir(layout)) : undefined;
  try {
    return await downloadOnline(env, opts, layout, revision, started, early);
  } finally {
    // Never a df left behind, whatever failed first.
    await early;
  }
}

/** The download itself, once the target and the revision are known to be sane and the Hub is to be asked. */
async function downloadOnline(
  env: Env,
  opts: DownloadOptions,
  layout: Layout,
  revision: string,
  started: number,
  early: Promise<FreeSpace> | undefined,
): Promise<DownloadReport> {
  const cache = layout.kind === "hub-cache";
  const root = layout.root;
  const token = opts.token ?? await readToken(env);
  const client = new HubClient(env, hubEndpoint(env), token);
  client.apiTimeoutMs = stallMsFor(env, opts);
  const stallMs = stallMsFor(env, opts);
  const abort = new AbortController();
  const ctx: Ctx = {
    env,
    client,
    repo: opts.repo,
    commit: "",
    layout,
    token,
    stallMs,
    maxRetries: opts.maxRetries ?? 6,
    backoffBaseMs: opts.backoffBaseMs ?? numberVar(env, "MLAGENT_DOWNLOAD_BACKOFF_MS", 1000),
    rangeThreshold: opts.rangeThresholdBytes ??
      numberVar(env, "MLAGENT_DOWNLOAD_RANGE_MIN_MIB", 64) * 1024 * 1024,
    rangeParts: Math.max(1, opts.rangeParts ?? 4),
    splitBelow: opts.splitBelowBytesPerS ?? 256 * 1024 * 1024,
    splitAfterMs: opts.splitAfterMs ?? 1000,
    signal: abort.signal,
    retries: 0,
    fetched: 0,
    reused: 0,
    resumed: 0,
    filesResumed: 0,
    active: new Set(),
    dirs: new Set(),
    buffers: [],
  };

  // Plan everything before writing anything: a hostile listing leaves the disk untouched.
  const { commit, files: listed } = await client.resolveAndList(
    opts.repo,
    revision,
    (what, f, stop) => withRetries(ctx, what, f, stop),
  ).catch((e) => {
    throw toMlagentError(e, opts.repo, revision, client);
  });
  ctx.commit = commit;
  for (const f of listed) {
    const why = hostilePathReason(f.path) ??
      // In the cache the listed hash becomes a file name under blobs/: it must be one, not a path.
      (cache && !isBlobName(blobName(f))
        ? `has a hash that is not a sha1 or sha256 (${quote(blobName(f))})`
        : null);
    if (why) {
      throw badInput(
        `${opts.repo}@${revision} lists a file path that ${why}: ${quote(f.path)}`,
        "refused; nothing was written",
      );
    }
  }
  const byPath = new Map(listed.map((f) => [f.path, f]));
  // Required files are fetched whatever the include/exclude patterns say: the model cannot run without them.
  const keep = new Set([
    ...filterPaths(listed.map((f) => f.path), opts.include, opts.exclude),
    ...(opts.requiredFiles ?? []),
  ]);
  const wanted = listed.filter((f) => keep.has(f.path));
  const absent = (opts.requiredFiles ?? []).filter((r) => !byPath.has(r));
  if (absent.length) {
    throw failed(
      `${opts.repo}@${revision} has no file ${absent.map((a) => quote(a)).join(", ")}`,
      "check the profile's model files against the repo",
    );
  }
  if (wanted.length === 0) {
    throw failed(`no file of ${opts.repo}@${revision} matches the include/exclude patterns`);
  }
  const dir = filesDir(layout, ctx.commit);
  await refuseSymlinkEscapes(env, dir, root, wanted.map((f) => f.path), cache);

  await env.fs.mkdir(cache ? `${root}/blobs` : `${root}/${META_DIR}`, { recursive: true });
  const removeSignals = [
    env.onSignal("SIGINT", () => abort.abort(failed("interrupted"))),
    env.onSignal("SIGTERM", () => abort.abort(failed("terminated"))),
  ];
  try {
    return await withLock(env, downloadLockSpec(root, "download"), {
      timeoutMs: opts.lockTimeoutMs ?? 6 * 3600_000,
      // Our own SIGINT/SIGTERM handlers abort the transfers, save their progress, then release.
      handleSignals: false,
      signal: abort.signal,
    }, async (lock) => {
      lock.lost.addEventListener("abort", () => abort.abort(failed(`lost the lock on ${root}`)));
      const manifest = await readManifestAt(env, manifestPath(layout, ctx.commit));
      const mtimes = new Map<string, number>();
      const plan = cache
        ? await planCache(ctx, wanted, manifest, mtimes)
        : await planLocal(ctx, wanted, manifest, mtimes);
      const { jobs } = plan;
      if (!opts.skipDiskCheck) await checkFreeSpace(env, layout, jobs, early);
      if (cache) {
        // As snapshot_download: the listing, then the ref (its snapshot folder made first: hf's cache scan calls
        // a ref to a missing snapshot corrupt, _cache_manager.py l.795-799).
        await writeTree(env, root, ctx.commit, listed);
        await env.fs.mkdir(dir, { recursive: true });
        await writeRef(env, root, revision, ctx.commit);
        await tagCacheDir(env, parentOf(root));
      }
      // The whole listing goes to disk before the first byte: a run killed from here on leaves a dir whose
      // missing files are named by it, never one that looks complete because it lacks the files not fetched.
      await writeManifest(env, layout, opts.repo, revision, ctx.commit, [], mtimes, listed, false);
      // Blobs already in the cache (another revision's, or hf's) only need their snapshot links.
      for (const f of plan.linkOnly) linkPointer(env, layout, ctx.commit, f, ctx.dirs);
      const stopProgress = startProgress(ctx, jobs);
      try {
        const parallel = opts.parallel ?? 8;
        prefetchHeads(ctx, jobs, parallel);
        await runPool(jobs, parallel, abort, (job) => fetchFile(ctx, job));
      } finally {
        stopProgress();
      }
      for (const j of jobs) {
        for (const p of [j.file.path, ...(j.alsoPaths ?? [])]) mtimes.set(p, j.mtimeMs ?? 0);
      }
      await writeManifest(env, layout, opts.repo, revision, ctx.commit, wanted, mtimes, listed, true);
      const duration = Math.max(1, env.now() - started);
      return {
        ok: true,
        repo: opts.repo,
        revision,
        commit: ctx.commit,
        layout: layout.kind,
        local_dir: dir,
        offline: false,
        files: wanted.length,
        files_fetched: jobs.reduce((a, j) => a + 1 + (j.alsoPaths?.length ?? 0), 0),
        files_reused: plan.reusedFiles,
        files_resumed: ctx.filesResumed,
        total_bytes: wanted.reduce((a, f) => a + f.size, 0),
        fetched_bytes: ctx.fetched,
        reused_bytes: ctx.reused,
        resumed_bytes: ctx.resumed,
        retries: ctx.retries,
        duration_ms: duration,
        throughput_bytes_per_s: Math.round(ctx.fetched / (duration / 1000)),
        missing: [],
        partial: [],
        reason: null,
      };
    });
  } catch (e) {
    throw toMlagentError(
      abort.signal.aborted && abort.signal.reason instanceof MlagentError ? abort.signal.reason : e,
      opts.repo,
      revision,
      client,
    );
  } finally {
    for (const r of removeSignals) r();
  }
}

interface Plan {
  jobs: Job[];
  reusedFiles: number;
  /** Hub cache: listed files whose blob is there, to be linked from the snapshot. */
  linkOnly: HubFile[];
}

/** A local dir: each wanted file either done (right size, vouched for) or a job, resuming its part if any. */
async function planLocal(
  ctx: Ctx,
  wanted: HubFile[],
  manifest: Manifest | null,
  mtimes: Map<string, number>,
): Promise<Plan> {
  const { env, layout } = ctx;
  const localDir = layout.root;
  const jobs: Job[] = [];
  let reusedFiles = 0;
  // Two directory walks instead of a failing stat per file of a fresh download.
  const present = await scanFiles(env, localDir, RECORD_DIR);
  const parts = await scanFiles(env, `${localDir}/${META_DIR}`);
  for (const f of wanted) {
    const mtime = present.has(f.path) ? await isAlreadyDone(env, localDir, f, ctx.commit, manifest) : null;
    if (mtime !== null) {
      ctx.reused += f.size;
      reusedFiles++;
      mtimes.set(f.path, mtime);
    } else {
      jobs.push({
        file: f,
        size: f.size,
        done: 0,
        resumedFrom: 0,
        hasPart: parts.has(`${f.path}.incomplete`),
      });
    }
  }
  return { jobs, reusedFiles, linkOnly: [] };
}

/**
 * The hub cache: one job per blob not yet there (the listed paths with the same bytes share it, as hf's
 * blobs do), resuming `blobs/<etag>.incomplete` if present; a blob already there is only linked.
 */
async function planCache(
  ctx: Ctx,
  wanted: HubFile[],
  manifest: Manifest | null,
  mtimes: Map<string, number>,
): Promise<Plan> {
  const { env, layout } = ctx;
  const names = new Set<string>();
  try {
    for await (const e of env.fs.readDir(`${layout.root}/blobs`)) names.add(e.name);
  } catch { /* no blobs yet */ }
  const byBlob = new Map<string, HubFile[]>();
  for (const f of wanted) {
    const same = byBlob.get(blobName(f));
    if (same) same.push(f);
    else byBlob.set(blobName(f), [f]);
  }
  const jobs: Job[] = [];
  const linkOnly: HubFile[] = [];
  let reusedFiles = 0;
  for (const [name, files] of byBlob) {
    const f = files[0];
    const mtime = names.has(name) ? await isBlobDone(env, layout, f, files, manifest) : null;
    if (mtime !== null) {
      for (const g of files) mtimes.set(g.path, mtime);
      linkOnly.push(...files);
      ctx.reused += f.size * files.length;
      reusedFiles += files.length;
    } else {
      jobs.push({
        file: f,
        size: f.size,
        done: 0,
        resumedFrom: 0,
        hasPart: names.has(`${name}.incomplete`),
        alsoPaths: files.slice(1).map((g) => g.path),
      });
    }
  }
  return { jobs, reusedFiles, linkOnly };
}

/**
 * A blob already in the cache at the listed size. Its name is its hash and both hf and mlagent rename a part
 * to it only when it is whole, so that is the record; if mlagent's manifest saw it with another mtime it was
 * rewritten since, and its bytes decide. Returns its mtime (ms), or null when it must be fetched.
 */
async function isBlobDone(
  env: Env,
  layout: Layout,
  f: HubFile,
  paths: HubFile[],
  manifest: Manifest | null,
): Promise<number | null> {
  const path = blobPath(layout, f);
  const st = await statOrNull(env, path);
  if (!st?.isFile || st.size !== f.size) return null;
  const mtime = st.mtime?.getTime() ?? 0;
  const seen = paths.map((p) => manifest?.files[p.path]).find((k) =>
    k && (k.sha256 ?? k.etag) === blobName(f)
  );
  if (!seen || seen.mtime_ms === mtime) return mtime;
  const algo = f.lfsSha256 ? "sha256" : "git-sha1";
  return (await hashFile(env, path, algo)) === blobName(f) ? mtime : null;
}

function toMlagentError(e: unknown, repo: string, revision: string, client: HubClient): unknown {
  if (e instanceof MlagentError) return e;
  if (e instanceof HubHttpError) {
    if (e.errorCode === REFUSED_REDIRECT) {
      return badInput(
        e.message,
        "the Hub (or something posing as it) sent a hostile redirect; nothing from it was written",
      );
    }
    const gated = e.errorCode === "GatedRepo";
    if (gated) {
      return failed(
        e.message,
        `request access at ${client.endpoint}/${repo}, then set HF_TOKEN or run \`hf auth login\` with a token of the account that was granted access`,
      );
    }
    if (
      e.errorCode === "RevisionNotFound" ||
      (e.status === 404 && e.message.startsWith(`revision "${revision}"`))
    ) {
      return failed(
        `revision "${revision}" does not exist in ${repo}`,
        `see the branches and tags at ${client.endpoint}/${repo}/tree/main`,
      );
    }
    if (e.status === 401 || e.status === 403 || e.errorCode === "RepoNotFound") {
      return failed(
        e.message,
        client.token
          ? `check the repo id, and that the token's account can read ${repo} (private repos need an invited account; fine-grained tokens need read access to it)`
          : `if ${repo} is private or gated, set HF_TOKEN (or run \`hf auth login\`) with a token that can read it`,
      );
    }
    if (e.reach) {
      return failed(e.message, networkHint(e.reach, client.endpoint), {
        reach_failure: e.reach,
        endpoint: client.endpoint,
      });
    }
    return failed(
      e.message,
      e.retriable
        ? "the Hub or the network failed repeatedly; run the same command again to resume"
        : undefined,
    );
  }
  if (e instanceof Error) return failed(redact(e.message, client.token));
  return e;
}

/**
 * A listed path must not land outside the target through a symlink already inside it: every folder on the way
 * from `base` (the local dir, or the snapshot folder) must resolve inside `root`. In the hub cache the file
 * itself is a symlink to its blob, which is replaced, never written through, so only its folders count.
 */
async function refuseSymlinkEscapes(
  env: Env,
  base: string,
  rootDir: string,
  paths: string[],
  leafIsLink: boolean,
) {
  let root: string;
  try {
    root = await env.fs.realPath(rootDir);
  } catch {
    return; // The dir does not exist yet: nothing in it can be a symlink.
  }
  const seen = new Set<string>();
  // Nothing below a missing dir can exist: one lstat per missing dir, not one per file of a fresh download.
  const missing = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i <= parts.length - (leafIsLink ? 1 : 0); i++) {
      const rel = parts.slice(0, i).join("/");
      if (missing.has(rel)) break;
      if (seen.has(rel)) continue;
      seen.add(rel);
      const full = `${base}/${rel}`;
      const lst = await env.fs.lstat(full).catch(() => null);
      if (!lst) {
        missing.add(rel);
        break;
      }
      if (lst.isSymlink) {
        const real = await env.fs.realPath(full).catch(() => null);
        if (!real || (real !== root && !real.startsWith(root + "/"))) {
          throw badInput(
            `${quote(p)} would be written outside ${rootDir} through the symlink ${full}`,
            "refused; nothing was written",
          );
        }
      }
    }
  }
}

/**
 * A file either tool finished: right size, a record naming the same etag, and not modified since.
 * Returns its mtime (ms) if so, else null.
 */
async function isAlreadyDone(
  env: Env,
  localDir: string,
  f: HubFile,
  commit: string,
  manifest: Manifest | null,
): Promise<number | null> {
  const st = await statOrNull(env, `${localDir}/${f.path}`);
  if (!st?.isFile || st.size !== f.size) return null;
  const want = f.lfsSha256 ?? f.oid;
  const rec = await readMetadata(env, localDir, f.path);
  const mtime = st.mtime?.getTime() ?? 0;
  const known = manifest?.files[f.path];
  // mlagent saw the file at verification time; a different mtime means someone rewrote it since.
  const untouched = !known || known.mtime_ms === mtime;
  if (rec && rec.etag === want && mtime / 1000 - 1 <= rec.timestamp && untouched) return mtime;
  // No record or an outdated one: the bytes decide (huggingface_hub does the same for LFS files).
  const algo = f.lfsSha256 ? "sha256" : isSha1(f.oid) ? "git-sha1" : null;
  if (!algo || (await hashFile(env, `${localDir}/${f.path}`, algo)) !== want) return null;
  writeMetadata(env, localDir, f.path, commit, want);
  return mtime;
}

/** Free bytes on the filesystem of a folder (null if df could not say), and when they were read. */
interface FreeSpace {
  avail: number | null;
  at: number;
}

/** Where the bytes of a download land: the local dir, or the hub cache holding the repo's folder. */
const spaceDir = (layout: Layout) => layout.kind === "local-dir" ? layout.root : parentOf(layout.root);

/**
 * The free bytes of the filesystem `dir` is on, or will be on: df of its nearest existing folder (a folder
 * not made yet cannot be a mount point, so what is made in it lands there). Never throws.
 */
async function measureFreeSpace(env: Env, dir: string): Promise<FreeSpace> {
  let probe = dir;
  while (probe.length > 1 && !(await statOrNull(env, probe))?.isDirectory) probe = parentOf(probe) || "/";
  const at = env.now();
  try {
    const r = await env.run(["df", "-P", "-B1", probe], { ...LEAF, timeoutMs: 10_000 });
    if (r.kind !== "exited" || r.code !== 0) {
      env.log.debug(`could not read free space of ${probe}; not checked`);
      return { avail: null, at };
    }
    const fields = r.stdout.trim().split("\n").at(-1)?.split(/\s+/) ?? [];
    const avail = Number(fields[3]);
    return { avail: Number.isFinite(avail) ? avail : null, at };
  } catch (e) {
    env.log.debug(
      `could not read free space of ${probe} (${e instanceof Error ? e.message : e}); not checked`,
    );
    return { avail: null, at };
  }
}

/** A reading this old (the lock was waited for, say) is taken again before the first byte. */
const FREE_SPACE_FRESH_MS = 2000;

async function checkFreeSpace(env: Env, layout: Layout, jobs: Job[], early?: Promise<FreeSpace>) {
  let need = 0;
  for (const j of jobs) {
    const have = j.hasPart ? (await statOrNull(env, partPath(layout, j.file)))?.size ?? 0 : 0;
    need += Math.max(0, j.size - have);
  }
  if (need === 0) return;
  const where = spaceDir(layout);
  let space = early ? await early : undefined;
  if (!space || env.now() - space.at > FREE_SPACE_FRESH_MS) space = await measureFreeSpace(env, where);
  const avail = space.avail;
  if (avail === null) return;
  if (avail < need) {
    throw failed(
      `not enough free space in ${where}: ${formatBytes(need)} still to fetch, ${formatBytes(avail)} free`,
      layout.kind === "local-dir"
        ? "free space there or choose another --local-dir"
        : "free space there, or point HF_HUB_CACHE (or HF_HOME) elsewhere",
      { need_bytes: need, free_bytes: avail },
    );
  }
}

/**
 * Records the listing of `commit` and the files verified so far (atomically: a reader sees the old manifest
 * or the new one). Before the transfers `files` is empty and only the entries an earlier run of the same
 * commit verified are kept; at the end the run's files join them and `completed_at` is set.
 */
async function writeManifest(
  env: Env,
  layout: Layout,
  repo: string,
  revision: string,
  commit: string,
  files: HubFile[],
  mtimes: Map<string, number>,
  listed: HubFile[],
  completed: boolean,
) {
  const path = manifestPath(layout, commit);
  const old = await readManifestAt(env, path);
  const same = old && old.commit === commit && old.repo === repo;
  const entries: Manifest["files"] = same ? { ...old.files } : {};
  for (const f of files) {
    entries[f.path] = {
      size: f.size,
      etag: f.lfsSha256 ?? f.oid,
      ...(f.lfsSha256 ? { sha256: f.lfsSha256 } : {}),
      mtime_ms: mtimes.get(f.path) ?? 0,
    };
  }
  const now = new Date(env.now()).toISOString();
  const m: Manifest = {
    schema_version: 2,
    repo,
    revision,
    commit,
    listed_at: same && old.listed_at ? old.listed_at : now,
    completed_at: completed ? now : null,
    files: entries,
    listing: Object.fromEntries(
      listed.map((f) => [f.path, {
        size: f.size,
        etag: f.lfsSha256 ?? f.oid,
        ...(f.lfsSha256 ? { sha256: f.lfsSha256 } : {}),
      }]),
    ),
  };
  await env.fs.mkdir(parentOf(path), { recursive: true });
  await writeText(env, path, JSON.stringify(m) + "\n");
}

/** Runs `work` over `items` with at most `n` at once; the first failure aborts the rest. */
async function runPool<T>(items: T[], n: number, abort: AbortController, work: (t: T) => Promise<void>) {
  let next = 0;
  let firstError: unknown;
  const worker = async () => {
    while (next < items.length && firstError === undefined && !abort.signal.aborted) {
      const item = items[next++];
      try {
        await work(item);
      } catch (e) {
        if (firstError === undefined) firstError = e;
        if (!abort.signal.aborted) abort.abort(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (firstError !== undefined) throw firstError;
  if (abort.signal.aborted) throw abort.signal.reason;
}
