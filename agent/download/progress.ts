/**
 * A download's progress on the Env's board (core/progress.ts): a total row, and a row per file in flight once
 * it has run for a tick (a small file that comes and goes between two ticks never gets one, so a repo of many
 * small files shows the total only, never a flicker or a line per file). The board decides the rest: redrawn
 * on a terminal, a line every 10% or 30 s in a log, nothing with -q or --no-progress.
 */
import { formatBytes, formatDuration } from "../core/output.ts";
import type { ProgressRow } from "../core/progress.ts";
import type { Ctx, Job } from "./context.ts";

/** Pure: "1.2 GiB/4.0 GiB 210 MiB/s ETA 14s" (rate and ETA only once something moved). */
export function progressText(done: number, total: number, bytesPerS: number): string {
  const eta = bytesPerS > 0 ? ` ETA ${formatDuration(((total - done) / bytesPerS) * 1000)}` : "";
  return `${formatBytes(done)}/${formatBytes(total)}${
    bytesPerS > 0 ? ` ${formatBytes(bytesPerS)}/s` : ""
  }${eta}`;
}

export function startProgress(ctx: Ctx, jobs: Job[]): () => void {
  const { env } = ctx;
  if (jobs.length === 0) return () => {};
  const total = jobs.reduce((a, j) => a + j.size, 0);
  const t0 = env.now();
  const startFetched = ctx.fetched;
  const totalRow = env.progress.row(`${ctx.repo}:`);
  const fileRows = new Map<Job, { row: ProgressRow; t0: number; from: number }>();
  const tick = () => {
    for (const [j, r] of fileRows) {
      if (ctx.active.has(j)) continue;
      r.row.done();
      fileRows.delete(j);
    }
    const now = env.now();
    for (const j of ctx.active) {
      let r = fileRows.get(j);
      if (!r) fileRows.set(j, r = { row: env.progress.row(`  ${j.file.path}`), t0: now, from: j.done });
      const secs = (now - r.t0) / 1000;
      const done = Math.min(j.done, j.size);
      r.row.update(
        progressText(done, j.size, secs > 0 ? (done - r.from) / secs : 0),
        j.size ? done / j.size : 1,
      );
    }
    const done = jobs.reduce((a, j) => a + Math.min(j.done, j.size), 0);
    const finished = jobs.reduce((a, j) => a + (j.done >= j.size && !ctx.active.has(j) ? 1 : 0), 0);
    const secs = (now - t0) / 1000;
    const rate = secs > 0 ? (ctx.fetched - startFetched) / secs : 0;
    totalRow.update(
      `${progressText(done, total, rate)} (${finished}/${jobs.length} files)`,
      total ? done / total : finished / jobs.length,
    );
  };
  // The board redraws a terminal every 120 ms; new numbers 4 times a second are plenty, and a log needs fewer.
  const stop = env.every(env.stderrIsTerminal ? 250 : 1000, tick);
  return () => {
    stop();
    for (const r of fileRows.values()) r.row.done();
    fileRows.clear();
    totalRow.done();
  };
}
