import type { Env } from "../core/env.ts";
import { stateDir } from "../core/paths.ts";
import { within } from "../core/deadline.ts";
import type { PrologueReport } from "./types.ts";

/** The one-line record for the prologue log and stderr: enough for an admin to see why a node refused jobs. */
export function logLine(r: PrologueReport): string {
  return JSON.stringify({
    time: r.started_at,
    host: r.host,
    scheduler: r.scheduler,
    job_id: r.job_id,
    profile: r.profile,
    verdict: r.verdict,
    exit_code: r.exit_code,
    duration_ms: r.duration_ms,
    timed_out: r.timed_out,
    problems: r.checks.filter((c) => c.status === "fail").map((c) => ({
      id: c.id,
      fault: c.fault,
      message: c.message,
    })),
  });
}

/** Appends the line to $XDG_STATE_HOME/mlagent/prologue.log; bounded in time (home may be on NFS), best effort. */
export async function appendPrologueLog(env: Env, line: string, timeoutMs = 2000): Promise<string | null> {
  const dir = stateDir(env);
  const path = `${dir}/prologue.log`;
  const r = await within(env, timeoutMs, async () => {
    await env.fs.mkdir(dir, { recursive: true });
    // One write of one line with O_APPEND: concurrent prologues on the node never interleave within a line.
    const f = await env.fs.open(path, { append: true, create: true, write: true, mode: 0o644 });
    try {
      const bytes = new TextEncoder().encode(line + "\n");
      let off = 0;
      while (off < bytes.length) off += await f.write(bytes.subarray(off));
    } finally {
      f.close();
    }
    return path;
  });
  return r.kind === "done" ? r.value : null;
}
