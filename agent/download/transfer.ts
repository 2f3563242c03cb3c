/**
 * Moving one file's bytes: the resolve answer's headers (a HEAD when a part is resumed, else the GET's own),
 * GET (whole or in ranges, resumed), hashing as they land, verify, rename, record.
 */
import { failed } from "../core/errors.ts";
import { type FileMetadata, HubHttpError, networkHint } from "./hub.ts";
import { formatBytes, formatDuration } from "../core/output.ts";
import {
  type Ctx,
  ensureDir,
  type Job,
  type PartState,
  READ_BUFFER_BYTES,
  RestartFile,
  type Segment,
  StallError,
} from "./context.ts";
import { parentOf, writeMetadata } from "./files.ts";
import { InlineHasher } from "./hasher.ts";
import { linkPointer } from "./hub_cache.ts";
import { blobName, blobPath, partPath, partStatePath } from "./layout.ts";
import {
  freshState,
  loadState,
  rangesFromStart,
  removePart,
  saveState,
  splittable,
  watchSplit,
} from "./parts.ts";
import { errText, isRetriable, retryDelayMs, withRetries } from "./retries.ts";
import { isSha1, isSha256 } from "./hashing.ts";

function headWithRetries(ctx: Ctx, job: Job): Promise<FileMetadata> {
  return withRetries(
    ctx,
    job.file.path,
    () => ctx.client.headFile(ctx.repo, ctx.commit, job.file.path, ctx.signal),
  );
}

/**
 * Starts the HEADs of the files that resume a part (they need the headers before their Range request) in list
 * order, `ahead` at a time beyond the transfers. A fresh file needs none: its GET answers with the same
 * headers (fetchFile). A failed HEAD surfaces in that file's fetchFile.
 */
export function prefetchHeads(ctx: Ctx, all: Job[], parallel: number) {
  const jobs = all.filter((j) => needsHead(ctx, j));
  const resolvers = new Map<Job, { resolve: (m: FileMetadata) => void; reject: (e: unknown) => void }>();
  for (const j of jobs) {
    j.head = new Promise<FileMetadata>((resolve, reject) => resolvers.set(j, { resolve, reject }));
    j.head.catch(() => {}); // handled where awaited; never an unhandled rejection when the run aborts first
  }
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const j = jobs[next++];
      const r = resolvers.get(j)!;
      if (ctx.signal.aborted) {
        r.reject(ctx.signal.reason);
        continue;
      }
      await headWithRetries(ctx, j).then(r.resolve, r.reject);
    }
  };
  for (let i = 0; i < Math.min(jobs.length, parallel * 2); i++) worker();
}

/**
 * Whether a file needs a HEAD before its bytes: one resuming a part (its first request is a Range), or one
 * fetched as ranges from its first byte (a GET would bring the whole body before the ranges start).
 */
function needsHead(ctx: Ctx, job: Job): boolean {
  return job.hasPart || rangesFromStart(ctx, job.file.size);
}

/** The resolve answer (HEAD or GET), fetch (resuming), verify, rename, record. */
export async function fetchFile(ctx: Ctx, job: Job): Promise<void> {
  try {
    await fetchOpened(ctx, job);
  } finally {
    // An answer whose body was not read (a mismatch, ranges instead of one stream): its connection is freed.
    await job.opened?.body?.cancel().catch(() => {});
    job.opened = undefined;
  }
}

async function fetchOpened(ctx: Ctx, job: Job): Promise<void> {
  const { env, layout } = ctx;
  const path = job.file.path;
  let meta: FileMetadata;
  if (job.head || needsHead(ctx, job)) meta = await (job.head ?? headWithRetries(ctx, job));
  else {
    const opened = await withRetries(
      ctx,
      path,
      () => ctx.client.openFile(ctx.repo, ctx.commit, path, ctx.signal),
    );
    meta = opened.meta;
    job.opened = opened.body;
  }
  job.meta = meta;
  // A body announced longer than the listed file is refused as the stream itself would refuse it.
  if (job.opened && meta.size > job.file.size) {
    throw tooLong(job, `announced ${meta.size} bytes for bytes 0-`);
  }
  if (meta.size !== job.file.size) {
    throw failed(
      `${path}: the Hub lists ${job.file.size} bytes but serves ${meta.size}`,
      "run again; if it persists the revision is inconsistent on the Hub",
    );
  }
  const sha256 = job.file.lfsSha256 ?? (isSha256(meta.etag) ? meta.etag : undefined);
  // In the hub cache the blob is named by the listed hash, so the bytes are proven against that one whatever
  // the HEAD said; in a local dir the record keeps the HEAD's etag, as hf's does.
  const cache = layout.kind === "hub-cache";
  const algo = sha256
    ? "sha256"
    : (cache ? isSha1(job.file.oid) : isSha1(meta.etag) && meta.etag === job.file.oid)
    ? "git-sha1"
    : null;
  const want = cache ? blobName(job.file) : sha256 ?? meta.etag;
  const inc = partPath(layout, job.file);
  ctx.active.add(job);
  try {
    for (let verifyAttempt = 1;; verifyAttempt++) {
      let state = await loadState(ctx, job, meta.etag, meta.size);
      job.hasher = algo ? await InlineHasher.create(algo, meta.size) : undefined;
      const already = state.segments.reduce((a, s) => a + (s.pos - s.start), 0);
      if (verifyAttempt === 1 && already > 0) {
        job.resumedFrom = already;
        ctx.reused += already;
        ctx.resumed += already;
        ctx.filesResumed++;
        env.log.info(`${path}: resuming at ${formatBytes(already)} of ${formatBytes(meta.size)}`);
      }
      job.done = already;
      job.written = undefined as Job["written"];
      for (let restarts = 0;; restarts++) {
        try {
          await fetchSegments(ctx, job, state, meta.location);
          break;
        } catch (e) {
          if (!(e instanceof RestartFile) || restarts >= 3) throw e;
          env.log.warn(`${path}: ${e.message}; restarting the file from byte 0`);
          ctx.retries++;
          job.done = 0;
          state = await freshState(ctx, job, meta.etag, meta.size, true);
          job.hasher = algo ? await InlineHasher.create(algo, meta.size) : undefined;
        }
      }
      // A one-stream file was measured on its handle as it completed: no stat of it by path.
      let st = job.written;
      if (!st) {
        const info = await env.fs.stat(inc);
        st = { size: info.size, mtimeMs: info.mtime?.getTime() ?? 0 };
      }
      const size = st.size;
      job.mtimeMs = st.mtimeMs;
      let problem: string | null = null;
      if (size !== meta.size) problem = `size ${size} bytes, expected ${meta.size}`;
      else if (job.hasher) {
        const got = await job.hasher.digest(env, inc, size, ctx.signal);
        if (got !== want) {
          problem = `${algo === "sha256" ? "sha256" : "git blob sha1"} ${got}, expected ${want}`;
        }
      }
      if (problem) {
        await removePart(ctx, job);
        if (verifyAttempt >= 2) {
          throw failed(
            `${path}: downloaded bytes do not match the Hub (${problem}), twice`,
            "the server or a proxy is sending corrupt data; try again later or from another network",
          );
        }
        env.log.warn(`${path}: downloaded bytes do not match (${problem}); deleted, downloading once more`);
        ctx.retries++;
        continue;
      }
      place(ctx, job, meta.etag);
      if (job.stateSaved) await env.fs.remove(partStatePath(layout, job.file)).catch(() => {});
      return;
    }
  } finally {
    ctx.active.delete(job);
  }
}

/**
 * Puts a verified part in place: in a local dir, renamed to its path with hf's record beside it; in the hub
 * cache, renamed to its blob and linked from the snapshot at every listed path with those bytes. Synchronous:
 * a rename, a symlink and a small record cost less than trips through the async pool, and a repo of many
 * small files is made of little else.
 */
function place(ctx: Ctx, job: Job, etag: string) {
  const { env, layout } = ctx;
  const inc = partPath(layout, job.file);
  if (layout.kind === "local-dir") {
    const final = `${layout.root}/${job.file.path}`;
    ensureDir(ctx, parentOf(final));
    env.fs.renameSync(inc, final);
    writeMetadata(env, layout.root, job.file.path, ctx.commit, etag, ctx.dirs);
    return;
  }
  env.fs.renameSync(inc, blobPath(layout, job.file));
  linkPointer(env, layout, ctx.commit, job.file, ctx.dirs);
  for (const p of job.alsoPaths ?? []) {
    linkPointer(env, layout, ctx.commit, { ...job.file, path: p }, ctx.dirs);
  }
}

/**
 * The unfinished segments, `rangeParts` at a time in file order; progress saved every second and when they
 * stop. While they run, the file's hash follows the contiguous prefix written so far.
 */
async function fetchSegments(ctx: Ctx, job: Job, state: PartState, url: string) {
  const fileAbort = new AbortController();
  const onParent = () => fileAbort.abort(ctx.signal.reason);
  ctx.signal.addEventListener("abort", onParent);
  const canSplit = state.segments.length === 1 && splittable(ctx, job.size);
  const multi = () => state.segments.length > 1;
  let saving: Promise<unknown> | undefined;
  const saver = multi() || canSplit
    ? ctx.env.every(1000, () => {
      if (multi()) saving = saveState(ctx, job, state).catch(() => {});
    })
    : undefined;
  let transferring = true;
  const chase = (multi() || canSplit) && job.hasher
    ? chaseHash(ctx, job, job.hasher, state, () => transferring, fileAbort.signal)
    : undefined;
  const queue = state.segments.filter((s) => s.pos < s.end);
  const workers: Promise<void>[] = [];
  const addWorkers = (n: number) => {
    for (let i = 0; i < n; i++) {
      workers.push((async () => {
        for (let seg = queue.shift(); seg && !fileAbort.signal.aborted; seg = queue.shift()) {
          await fetchSegment(ctx, job, state, seg, url, fileAbort.signal).catch((e) => {
            fileAbort.abort(e);
            throw e;
          });
          // A finished range is on record at once: a kill before the next periodic save refetches none of it.
          if (multi() && queue.length + state.segments.filter((s) => s.pos < s.end).length > 0) {
            await saveState(ctx, job, state).catch(() => {});
          }
        }
      })());
    }
  };
  addWorkers(Math.min(queue.length, Math.max(1, ctx.rangeParts)));
  const stopSplit = canSplit ? watchSplit(ctx, job, state, queue, addWorkers) : () => {};
  try {
    // Workers may be added while these run (a split): wait until no new one appeared.
    let results: PromiseSettledResult<void>[];
    do {
      results = await Promise.allSettled(workers);
    } while (results.length !== workers.length);
    stopSplit();
    const bad = results.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
    if (bad) throw bad.reason;
  } finally {
    stopSplit();
    transferring = false;
    await chase;
    saver?.();
    // A save the timer began just before it stopped lands now, not after the file's last state or its removal
    // (a stray .incomplete.json was once left in blobs/ beside a finished blob).
    await saving;
    ctx.signal.removeEventListener("abort", onParent);
    const progressed = state.segments.some((s) => s.pos > s.start) &&
      state.segments.some((s) => s.pos < s.end);
    if (multi() || (!job.stateSaved && progressed)) await saveState(ctx, job, state).catch(() => {});
  }
}

/** Pure: the end of the prefix of the file that is written without a gap. */
export function contiguousEnd(segments: Segment[]): number {
  let end = 0;
  for (const s of [...segments].sort((a, b) => a.start - b.start)) {
    if (s.start > end) break;
    end = Math.max(end, s.pos);
    if (s.pos < s.end) break;
  }
  return end;
}

/** Hashes the written prefix from disk while ranges are still coming; never fails (the final digest redoes). */
async function chaseHash(
  ctx: Ctx,
  job: Job,
  hasher: InlineHasher,
  state: PartState,
  running: () => boolean,
  signal: AbortSignal,
) {
  const inc = partPath(ctx.layout, job.file);
  try {
    while (running()) {
      const upTo = contiguousEnd(state.segments);
      if (upTo > hasher.cursor) await hasher.catchUp(ctx.env, inc, upTo, signal);
      else await ctx.env.sleep(25);
    }
  } catch {
    // The digest after the transfer hashes whatever this did not.
  }
}

/** One segment to its end, retrying transient failures from the byte reached. */
async function fetchSegment(
  ctx: Ctx,
  job: Job,
  state: PartState,
  seg: Segment,
  url: string,
  signal: AbortSignal,
) {
  let failures = 0;
  let refreshed = 0;
  while (seg.pos < seg.end) {
    const before = seg.pos;
    try {
      await streamOnce(ctx, job, state, seg, job.meta?.location ?? url, signal);
    } catch (e) {
      if (!signal.aborted && isExpiredCdnLink(ctx, e, job.meta?.location ?? url) && refreshed < 3) {
        // Signed CDN links expire (an hour or so) while a big file is still downloading: ask the Hub again.
        refreshed++;
        ctx.retries++;
        ctx.env.log.warn(
          `${job.file.path}: the CDN link was refused (${
            errText(e, ctx.token)
          }); asking the Hub for a fresh one`,
        );
        const fresh = await withRetries(
          ctx,
          job.file.path,
          () => ctx.client.headFile(ctx.repo, ctx.commit, job.file.path, signal),
        );
        if (fresh.etag !== job.meta?.etag || fresh.size !== job.size) {
          throw new RestartFile("the file changed on the Hub while downloading");
        }
        job.meta = fresh;
        continue;
      }
      if (signal.aborted || !isRetriable(e)) throw e;
      failures = seg.pos > before ? 1 : failures + 1;
      if (failures >= ctx.maxRetries) {
        const reach = e instanceof HubHttpError ? e.reach : undefined;
        throw failed(
          `${job.file.path}: ${errText(e, ctx.token)}, ${failures} attempts in a row without progress`,
          `${
            reach ? `${networkHint(reach, ctx.client.endpoint)}; then ` : ""
          }run the same command again to resume from the bytes already fetched`,
          reach ? { reach_failure: reach } : undefined,
        );
      }
      ctx.retries++;
      if (!job.stateSaved && seg.pos > seg.start) await saveState(ctx, job, state);
      const delay = retryDelayMs(ctx, e, failures);
      ctx.env.log.warn(
        `${job.file.path}: ${errText(e, ctx.token)}; attempt ${
          failures + 1
        }/${ctx.maxRetries} in ${delay} ms, resuming at byte ${seg.pos}`,
      );
      await ctx.env.sleep(delay, signal);
    }
  }
}

function tooLong(job: Job, what: string) {
  return failed(
    `${job.file.path}: the server ${what}, but the Hub lists the file at ${job.size} bytes; refused`,
    "the Hub or a proxy is serving something other than the listed file; nothing past the listed size was kept",
  );
}

function isExpiredCdnLink(ctx: Ctx, e: unknown, url: string): boolean {
  return e instanceof HubHttpError && [401, 403, 410].includes(e.status) &&
    new URL(url).origin !== ctx.client.origin;
}

/** One GET of the rest of a segment, written at its offset; a watchdog aborts it when no byte comes. */
async function streamOnce(
  ctx: Ctx,
  job: Job,
  state: PartState,
  seg: Segment,
  url: string,
  signal: AbortSignal,
) {
  const wholeFile = state.segments.length === 1;
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal.reason);
  signal.addEventListener("abort", onAbort);
  let last = ctx.env.now();
  let stalled = false;
  const stopWatchdog = ctx.env.every(Math.max(20, Math.min(1000, ctx.stallMs / 4)), () => {
    if (ctx.env.now() - last > ctx.stallMs) {
      stalled = true;
      ac.abort(new StallError(`no byte for ${formatDuration(ctx.stallMs)}`));
    }
  });
  const useRange = !(wholeFile && seg.pos === 0);
  // A split while streaming shortens this segment: the server's extra bytes then belong to other ranges.
  const requestedEnd = seg.end;
  let file: Deno.FsFile | undefined;
  // The GET that brought the file's headers (fetchFile) already carries the whole body from byte 0.
  const opened = !useRange ? job.opened : undefined;
  // A range cannot use it: its connection is freed at once rather than when the run ends.
  if (useRange) await job.opened?.body?.cancel().catch(() => {});
  job.opened = undefined;
  let cancelBody: (() => void) | undefined;
  const onStall = () => cancelBody?.();
  ac.signal.addEventListener("abort", onStall);
  try {
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (useRange) headers.range = `bytes=${seg.pos}-${seg.end - 1}`;
    const res = opened ?? await ctx.client.request(url, { headers, signal: ac.signal });
    if (res.status === 416) {
      await res.body?.cancel();
      throw new RestartFile(`the server answered 416 to bytes=${seg.pos}-`);
    }
    if (!res.ok) throw await ctx.client.explain(res, ctx.repo, job.file.path);
    if (useRange && res.status !== 206) {
      await res.body?.cancel();
      throw new RestartFile(`the server ignored the Range request (HTTP ${res.status})`, true);
    }
    if (res.status === 206) {
      const m = (res.headers.get("content-range") ?? "").match(/bytes (\d+)-(\d+)\/(\d+|\*)/);
      if (!m || Number(m[1]) !== seg.pos || (m[3] !== "*" && Number(m[3]) !== job.size)) {
        await res.body?.cancel();
        throw new RestartFile(`the server answered a different range (${res.headers.get("content-range")})`);
      }
    }
    // The body may not be longer than the part of the listed size asked for: a server that says or sends
    // more is lying about the file, and its surplus is never written.
    const announced = Number(res.headers.get("content-length") ?? NaN);
    if (announced > requestedEnd - seg.pos) {
      throw tooLong(job, `announced ${announced} bytes for bytes ${seg.pos}-`);
    }
    if (!res.body) throw new HubHttpError(`${job.file.path}: empty body`, res.status, true);
    file = ctx.env.fs.openSync(partPath(ctx.layout, job.file), {
      write: true,
      create: true,
      truncate: wholeFile && seg.pos === 0,
    });
    if (seg.pos > 0) await file.seek(seg.pos, Deno.SeekMode.Start);
    // A BYOB reader fills one buffer again and again: no allocation per chunk, so memory stays flat and GC
    // has nothing to chase however big the file is.
    const reader = res.body.getReader({ mode: "byob" });
    // The opened answer was asked for before this stream's watchdog existed: a stall cancels its reader.
    if (opened) cancelBody = () => void reader.cancel().catch(() => {});
    let buf = ctx.buffers.pop() ?? new ArrayBuffer(READ_BUFFER_BYTES);
    try {
      while (true) {
        const { done, value } = await reader.read(new Uint8Array(buf));
        if (value) buf = value.buffer as ArrayBuffer;
        if (done || !value) break;
        last = ctx.env.now();
        let chunk = value;
        if (seg.pos + chunk.length > seg.end) {
          if (seg.end === requestedEnd) {
            throw tooLong(job, `sent more than the ${requestedEnd - seg.pos} bytes left`);
          }
          // A split shortened this segment: the rest of this body belongs to the ranges that took over.
          chunk = chunk.subarray(0, seg.end - seg.pos);
        }
        // Synchronous: a page-cache write is faster than another trip through the event loop. Measured on a
        // 2-core node: async writes double-buffered on Deno's pool took 30-60% longer for 1 GiB, and 1 MiB
        // BYOB buffers 2-3x the system time of 256 KiB ones (each read hands the buffer over).
        let off = 0;
        while (off < chunk.length) off += file.writeSync(chunk.subarray(off));
        job.hasher?.feed(seg.pos, chunk);
        seg.pos += chunk.length;
        job.done += chunk.length;
        ctx.fetched += chunk.length;
        if (seg.end < requestedEnd && seg.pos >= seg.end) break;
      }
    } finally {
      reader.cancel().catch(() => {});
      // A buffer still attached (not lent to a read that was cut) goes to the next stream.
      if (buf.byteLength === READ_BUFFER_BYTES) ctx.buffers.push(buf);
    }
    if (seg.pos < seg.end) {
      throw new HubHttpError(`connection closed at byte ${seg.pos} of ${job.size}`, 0, true);
    }
    if (state.segments.length === 1) {
      const info = file.statSync();
      job.written = { size: info.size, mtimeMs: info.mtime?.getTime() ?? 0 };
    }
  } catch (e) {
    if (stalled) throw new StallError(`no byte for ${formatDuration(ctx.stallMs)} (watchdog); resuming`);
    throw e;
  } finally {
    stopWatchdog();
    signal.removeEventListener("abort", onAbort);
    ac.signal.removeEventListener("abort", onStall);
    file?.close();
  }
}
