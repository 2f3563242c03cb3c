/** A file's part on disk: resuming it from its saved state or starting afresh, and splitting it into ranges. */
import { formatBytes } from "../core/output.ts";
import { type Ctx, ensureDir, type Job, type PartState, type Segment, STATE_MIN_BYTES } from "./context.ts";
import { parentOf, statOrNull, writeText } from "./files.ts";
import { partPath, partStatePath } from "./layout.ts";

export async function loadState(ctx: Ctx, job: Job, etag: string, size: number): Promise<PartState> {
  const inc = partPath(ctx.layout, job.file);
  const have = job.hasPart ? (await statOrNull(ctx.env, inc))?.size : undefined;
  let saved: PartState | null = null;
  if (have !== undefined) {
    try {
      saved = JSON.parse(await ctx.env.fs.readTextFile(partStatePath(ctx.layout, job.file)));
    } catch {
      saved = null;
    }
  }
  if (
    have !== undefined && saved && saved.etag === etag && saved.size === size && Array.isArray(saved.segments)
  ) {
    job.stateSaved = true;
    if (saved.segments.length === 1) {
      // One stream appends: the file's length is the truth, even past the last saved state.
      saved.segments[0].pos = Math.min(have, size);
    } else {
      for (const s of saved.segments) s.pos = Math.min(s.pos, have, s.end);
    }
    return saved;
  }
  if (ctx.layout.kind === "hub-cache" && !saved && have !== undefined && have > 0 && have <= size) {
    // `blobs/<etag>.incomplete` with no state of ours: its name pins the bytes it is a prefix of, and every
    // writer of that name (huggingface_hub before PR #4228, mlagent's one stream) appends in order, so it is
    // resumed from its length; the hash at the end proves the whole blob either way.
    return { etag, size, segments: [{ start: 0, end: size, pos: have }] };
  }
  if (have !== undefined && have > 0) {
    ctx.env.log.warn(
      `${job.file.path}: the partial download ${
        saved && saved.etag !== etag ? "is of another version (ETag changed)" : "has no usable state"
      }; restarting it`,
    );
  }
  return await freshState(ctx, job, etag, size, !rangesFromStart(ctx, size));
}

export async function freshState(
  ctx: Ctx,
  job: Job,
  etag: string,
  size: number,
  single: boolean,
): Promise<PartState> {
  const inc = partPath(ctx.layout, job.file);
  ensureDir(ctx, parentOf(inc));
  if (!single || job.hasPart || size === 0) {
    // One stream truncates when it opens at byte 0; ranges write at offsets into an existing file.
    const f = await ctx.env.fs.open(inc, { write: true, create: true, truncate: true });
    f.close();
  }
  job.hasPart = true;
  if (job.stateSaved) {
    await ctx.env.fs.remove(partStatePath(ctx.layout, job.file)).catch(() => {});
    job.stateSaved = false;
  }
  const segments: Segment[] = [];
  const step = single ? size : rangeChunkBytes(size, ctx.rangeParts);
  for (let s = 0; s < size || segments.length === 0; s += step || 1) {
    segments.push({ start: s, end: Math.min(size, s + step), pos: s });
    if (size === 0) break;
  }
  const state = { etag, size, segments };
  // A small file gets its state only when a transfer is interrupted: a kill before that loses < 1 MiB.
  if (size >= STATE_MIN_BYTES) await saveState(ctx, job, state);
  return state;
}

/**
 * Pure: the size of one range of a large file. Many more ranges than connections, taken in file order, so
 * the written prefix grows at the speed of all connections and the sha256 follows it during the transfer
 * (four quarter-file ranges left 3/4 of the file to hash after the last byte: ~1 s per GiB). At least 32 MiB
 * (or a quarter of a smaller file) so the extra requests cost little against a real CDN's latency; at most
 * 256 MiB so the ranges still running at the end, re-read for the hash, stay small.
 */
export function rangeChunkBytes(size: number, parts: number): number {
  const MiB = 1024 * 1024;
  const perPart = Math.ceil(size / Math.max(1, parts));
  return Math.max(1, Math.min(256 * MiB, Math.ceil(size / (parts * 8))), Math.min(32 * MiB, perPart));
}

/** Whether a fresh file is fetched as ranges from its first byte (never as one stream). */
export function rangesFromStart(ctx: Ctx, size: number): boolean {
  return size >= ctx.rangeThreshold && ctx.rangeParts > 1 && ctx.splitBelow === Infinity;
}

/** Whether a one-stream transfer of this file may still be split into ranges. */
export function splittable(ctx: Ctx, size: number): boolean {
  return size >= ctx.rangeThreshold && ctx.rangeParts > 1 && ctx.splitBelow !== Infinity;
}

/**
 * Pure: the ms a thread spent on a CPU plus waiting in the run queue for one, from its `/proc/<pid>/schedstat`
 * (both in ns, then the number of time slices), or null if the text is not that.
 */
export function schedBusyMs(text: string): number | null {
  const [onCpu, waiting] = text.trim().split(/\s+/).map(Number);
  return Number.isFinite(onCpu) && Number.isFinite(waiting) ? (onCpu + waiting) / 1e6 : null;
}

/** How busy the process's main thread (the one every stream and hash runs on) has been, or null if unknown. */
function mainThreadBusyMs(ctx: Ctx): number | null {
  try {
    return schedBusyMs(ctx.env.fs.readTextFileSync(`${ctx.env.procRoot}/self/schedstat`));
  } catch {
    return null;
  }
}

/**
 * Pure: whether a slow stream may be split. Ranges help when the link is what is slow: this thread then mostly
 * sleeps waiting for bytes. When it was busy (running, or runnable and waiting for a CPU) for at least half of
 * the window, the node's CPU is what is slow: every range would run on this same thread, and hashing the ranges
 * not at the cursor reads them back from disk, so a split costs CPU and time (measured under load 6 on two
 * cores: 512 MiB in 3.2 s and 1.7 s CPU split, against 2.3-2.4 s and 1.4 s as one stream).
 */
export function worthSplitting(busyMs: number | null, elapsedMs: number): boolean {
  return busyMs === null || busyMs < elapsedMs / 2;
}

/**
 * Splits the rest of a one-stream transfer into ranges after `splitAfterMs` if it is slower than
 * `splitBelow` and waiting on the link rather than on this node's CPU (worthSplitting): the stream keeps the
 * next range, the others go to `queue`. Returns the stop function.
 */
export function watchSplit(
  ctx: Ctx,
  job: Job,
  state: PartState,
  queue: Segment[],
  addWorkers: (n: number) => void,
) {
  const seg = state.segments[0];
  const t0 = ctx.env.now();
  const from = seg.pos;
  const busy0 = mainThreadBusyMs(ctx);
  const stop = ctx.env.every(Math.max(10, Math.min(250, ctx.splitAfterMs / 4)), () => {
    const elapsed = ctx.env.now() - t0;
    if (elapsed < ctx.splitAfterMs) return;
    stop();
    const rate = (seg.pos - from) / (elapsed / 1000);
    const step = rangeChunkBytes(job.size, ctx.rangeParts);
    const boundary = seg.pos + step;
    if (rate >= ctx.splitBelow || boundary >= seg.end - step / 2 || state.segments.length !== 1) return;
    const busy1 = busy0 === null ? null : mainThreadBusyMs(ctx);
    const busy = busy0 === null || busy1 === null ? null : busy1 - busy0;
    if (!worthSplitting(busy, elapsed)) {
      ctx.env.log.debug(
        `${job.file.path}: ${formatBytes(rate)}/s on one connection, but this thread was busy ${
          Math.round((100 * busy!) / elapsed)
        }% of the time: the CPU is the limit, so no ranges`,
      );
      return;
    }
    const end = seg.end;
    seg.end = boundary;
    for (let s = boundary; s < end; s += step) {
      const next = { start: s, end: Math.min(end, s + step), pos: s };
      state.segments.push(next);
      queue.push(next);
    }
    ctx.env.log.info(
      `${job.file.path}: ${
        formatBytes(rate)
      }/s on one connection; fetching the rest as ${ctx.rangeParts} ranges`,
    );
    addWorkers(ctx.rangeParts - 1);
  });
  return stop;
}

export async function saveState(ctx: Ctx, job: Job, state: PartState) {
  await writeText(ctx.env, partStatePath(ctx.layout, job.file), JSON.stringify(state));
  job.stateSaved = true;
}

export async function removePart(ctx: Ctx, job: Job) {
  await ctx.env.fs.remove(partPath(ctx.layout, job.file)).catch(() => {});
  job.hasPart = false;
  if (job.stateSaved) await ctx.env.fs.remove(partStatePath(ctx.layout, job.file)).catch(() => {});
  job.stateSaved = false;
}
