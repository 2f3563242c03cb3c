/**
 * Resumable, verified downloads of a Hugging Face repo into a local dir that `hf download --local-dir` also
 * understands. Bytes go to `<dir>/.cache/huggingface/download/<path>.incomplete` (beside the
 * `<path>.metadata` record huggingface_hub keeps there), so a later run or another process continues with a
 * Range request; every file is checked against its size and every LFS file against its sha256 before it is
 * renamed into place. The whole run holds the download lock of the target dir: a second job waits, then
 * finds the files done.
 */
import type { Env } from "../core/env.ts";
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
import { absolute } from "../core/paths.ts";
import { type Ctx, envNumber, type Job, stallMsFor } from "./context.ts";
import {
  hostilePathReason,
  incompletePath,
  MANIFEST,
  META_DIR,
  readManifest,
  readMetadata,
  recordDirProblem,
  scanFiles,
  statOrNull,
  writeMetadata,
  writeText,
} from "./files.ts";
import { filterPaths } from "./glob.ts";
import { startProgress } from "./progress.ts";
import { withRetries } from "./retries.ts";
import { fetchFile, prefetchHeads } from "./transfer.ts";
import type { DownloadOptions, DownloadReport, Manifest } from "./types.ts";
import { hashFile, isSha1, verifyLocalModel } from "./verify.ts";

export { hostilePathReason } from "./files.ts";
export { filterPaths } from "./glob.ts";
export { rangeChunkBytes } from "./parts.ts";
export { contiguousEnd } from "./transfer.ts";
export type { DownloadReport, VerifyResult } from "./types.ts";
export { verifyLocalModel } from "./verify.ts";

export { cleanToken, readToken, validateRepoId, validateRevision } from "./hub.ts";

export async function downloadRepo(env: Env, opts: DownloadOptions): Promise<DownloadReport> {
  const started = env.now();
  const bad = validateRepoId(opts.repo);
  if (bad) throw badInput(bad, "a repo id looks like tencent/HunyuanVideo-I2V");
  const revision = opts.revision ?? "main";
  const badRev = validateRevision(revision);
  if (badRev) throw badInput(badRev, "a revision is a branch, a tag or a commit hash");
  const localDir = absolute(env, opts.localDir);
  const st = await statOrNull(env, localDir);
  if (st && !st.isDirectory) throw badInput(`target ${localDir} exists and is not a directory`);
  const recordDir = await recordDirProblem(env, localDir);
  if (recordDir) {
    throw badInput(
      `${recordDir}: the download records and parts would be written there`,
      `remove it (or make it a plain directory) and run again; nothing was written`,
    );
  }

  const offline = ["1", "on", "yes", "true"].includes((env.vars.HF_HUB_OFFLINE ?? "").toLowerCase());
  if (offline) {
    const v = await verifyLocalModel(env, { ...opts, localDir });
    const missing = [...v.missing, ...v.corrupt, ...v.unverified];
    return {
      ok: v.complete,
      repo: opts.repo,
      revision,
      commit: v.commit,
      local_dir: localDir,
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
    localDir,
    token,
    stallMs,
    maxRetries: opts.maxRetries ?? 6,
    backoffBaseMs: opts.backoffBaseMs ?? envNumber(env, "MLAGENT_DOWNLOAD_BACKOFF_MS") ?? 1000,
    rangeThreshold: opts.rangeThresholdBytes ??
      (envNumber(env, "MLAGENT_DOWNLOAD_RANGE_MIN_MIB") ?? 64) * 1024 * 1024,
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
  };

  // Plan everything before writing anything: a hostile listing leaves the disk untouched.
  ctx.commit = await withRetries(ctx, `revision ${revision}`, () => client.resolveCommit(opts.repo, revision))
    .catch((e) => {
      throw toMlagentError(e, opts.repo, revision, client);
    });
  const listed = await withRetries(ctx, "file listing", () => client.listFiles(opts.repo, ctx.commit)).catch(
    (e) => {
      throw toMlagentError(e, opts.repo, revision, client);
    },
  );
  for (const f of listed) {
    const why = hostilePathReason(f.path);
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
  await refuseSymlinkEscapes(env, localDir, wanted.map((f) => f.path));

  await env.fs.mkdir(`${localDir}/${META_DIR}`, { recursive: true });
  const removeSignals = [
    env.onSignal("SIGINT", () => abort.abort(failed("interrupted"))),
    env.onSignal("SIGTERM", () => abort.abort(failed("terminated"))),
  ];
  try {
    return await withLock(env, downloadLockSpec(localDir, "download"), {
      timeoutMs: opts.lockTimeoutMs ?? 6 * 3600_000,
      // Our own SIGINT/SIGTERM handlers abort the transfers, save their progress, then release.
      handleSignals: false,
      signal: abort.signal,
    }, async (lock) => {
      lock.lost.addEventListener("abort", () => abort.abort(failed(`lost the lock on ${localDir}`)));
      const jobs: Job[] = [];
      let reusedFiles = 0;
      const manifest = await readManifest(env, localDir);
      // Two directory walks instead of a failing stat per file of a fresh download.
      const present = await scanFiles(env, localDir, ".cache/huggingface");
      const parts = await scanFiles(env, `${localDir}/${META_DIR}`);
      const mtimes = new Map<string, number>();
      for (const f of wanted) {
        const mtime = present.has(f.path)
          ? await isAlreadyDone(env, localDir, f, ctx.commit, manifest)
          : null;
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
      if (!opts.skipDiskCheck) await checkFreeSpace(env, localDir, jobs);
      // The whole listing goes to disk before the first byte: a run killed from here on leaves a dir whose
      // missing files are named by it, never one that looks complete because it lacks the files not fetched.
      await writeManifest(env, localDir, opts.repo, revision, ctx.commit, [], mtimes, listed, false);
      const stopProgress = startProgress(ctx, jobs);
      try {
        const parallel = opts.parallel ?? 8;
        prefetchHeads(ctx, jobs, parallel);
        await runPool(jobs, parallel, abort, (job) => fetchFile(ctx, job));
      } finally {
        stopProgress();
      }
      for (const j of jobs) mtimes.set(j.file.path, j.mtimeMs ?? 0);
      await writeManifest(env, localDir, opts.repo, revision, ctx.commit, wanted, mtimes, listed, true);
      const duration = Math.max(1, env.now() - started);
      return {
        ok: true,
        repo: opts.repo,
        revision,
        commit: ctx.commit,
        local_dir: localDir,
        offline: false,
        files: wanted.length,
        files_fetched: jobs.length,
        files_reused: reusedFiles,
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

/** A listed path must not land outside the dir through a symlink already inside it. */
async function refuseSymlinkEscapes(env: Env, localDir: string, paths: string[]) {
  let root: string;
  try {
    root = await env.fs.realPath(localDir);
  } catch {
    return; // The dir does not exist yet: nothing in it can be a symlink.
  }
  const seen = new Set<string>();
  // Nothing below a missing dir can exist: one lstat per missing dir, not one per file of a fresh download.
  const missing = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const rel = parts.slice(0, i).join("/");
      if (missing.has(rel)) break;
      if (seen.has(rel)) continue;
      seen.add(rel);
      const full = `${localDir}/${rel}`;
      const lst = await env.fs.lstat(full).catch(() => null);
      if (!lst) {
        missing.add(rel);
        break;
      }
      if (lst.isSymlink) {
        const real = await env.fs.realPath(full).catch(() => null);
        if (!real || (real !== root && !real.startsWith(root + "/"))) {
          throw badInput(
            `${quote(p)} would be written outside ${localDir} through the symlink ${rel}`,
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
  await writeMetadata(env, localDir, f.path, commit, want);
  return mtime;
}

async function checkFreeSpace(env: Env, localDir: string, jobs: Job[]) {
  let need = 0;
  for (const j of jobs) {
    const have = j.hasPart ? (await statOrNull(env, incompletePath(localDir, j.file.path)))?.size ?? 0 : 0;
    need += Math.max(0, j.size - have);
  }
  if (need === 0) return;
  const r = await env.run(["df", "-P", "-B1", localDir], { timeoutMs: 10_000 });
  if (r.kind !== "exited" || r.code !== 0) {
    env.log.debug(`could not read free space of ${localDir}; not checked`);
    return;
  }
  const fields = r.stdout.trim().split("\n").at(-1)?.split(/\s+/) ?? [];
  const avail = Number(fields[3]);
  if (!Number.isFinite(avail)) return;
  if (avail < need) {
    throw failed(
      `not enough free space in ${localDir}: ${formatBytes(need)} still to fetch, ${formatBytes(avail)} free`,
      "free space there or choose another --local-dir",
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
  localDir: string,
  repo: string,
  revision: string,
  commit: string,
  files: HubFile[],
  mtimes: Map<string, number>,
  listed: HubFile[],
  completed: boolean,
) {
  const old = await readManifest(env, localDir);
  const entries: Manifest["files"] = old && old.commit === commit && old.repo === repo
    ? { ...old.files }
    : {};
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
    listed_at: old && old.commit === commit && old.repo === repo && old.listed_at ? old.listed_at : now,
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
  await writeText(env, `${localDir}/${MANIFEST}`, JSON.stringify(m) + "\n");
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
