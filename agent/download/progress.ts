import { formatBytes, formatDuration } from "../core/output.ts";
import type { Ctx, Job } from "./context.ts";

/** Bytes, rate and ETA per file and in total, redrawn every second on a terminal only. */
export function startProgress(ctx: Ctx, jobs: Job[]): () => void {
  if (!ctx.env.stderrIsTerminal || jobs.length === 0) return () => {};
  const total = jobs.reduce((a, j) => a + j.size, 0);
  const t0 = ctx.env.now();
  const startFetched = ctx.fetched;
  return ctx.env.every(1000, () => {
    const done = jobs.reduce((a, j) => a + Math.min(j.done, j.size), 0);
    const secs = Math.max(0.001, (ctx.env.now() - t0) / 1000);
    const rate = (ctx.fetched - startFetched) / secs;
    const eta = rate > 0 ? formatDuration(((total - done) / rate) * 1000) : "?";
    const files = [...ctx.active].slice(0, 3).map((j) =>
      `${j.file.path} ${j.size ? Math.floor((100 * j.done) / j.size) : 100}%`
    );
    ctx.env.log.progress(
      `${formatBytes(done)}/${formatBytes(total)} ${formatBytes(rate)}/s ETA ${eta}${
        files.length ? `  ${files.join(", ")}` : ""
      }`,
    );
  });
}
