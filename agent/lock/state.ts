/** What a lock file holds right now (a flock header and sidecar, or a lease claim with its heartbeat), judged. */
import type { Env } from "../core/env.ts";
import { isoTime } from "../core/output.ts";
import { readText } from "./files.ts";
import { judgeRecord, parseOwnerRecord } from "./record.ts";
import { FLOCK_MAGIC, type LockVerdict, type OwnerRecord, type Settings } from "./types.ts";

export interface Heartbeat {
  token: string;
  heartbeat_at: string;
  command_pid: number | null;
  command_start_time: number | null;
}

/** Merges a lease claim with its heartbeat file, when the heartbeat belongs to the same holder. */
async function withHeartbeat(env: Env, path: string, rec: OwnerRecord): Promise<OwnerRecord> {
  const text = await readText(env, `${path}.heartbeat`).catch(() => null);
  if (!text) return rec;
  try {
    const hb = JSON.parse(text) as Heartbeat;
    if (hb.token !== rec.token) return rec;
    // The file's mtime counts too: the watchdog of an orphaned command touches it (see LeaseLock).
    const mtime = (await env.fs.stat(`${path}.heartbeat`).catch(() => null))?.mtime?.getTime() ?? NaN;
    const parsed = Date.parse(hb.heartbeat_at);
    const beat = Number.isNaN(mtime) ? parsed : Number.isNaN(parsed) ? mtime : Math.max(parsed, mtime);
    return {
      ...rec,
      heartbeat_at: !Number.isNaN(beat) && beat > Date.parse(rec.heartbeat_at)
        ? isoTime(beat)
        : rec.heartbeat_at,
      command_pid: typeof hb.command_pid === "number" ? hb.command_pid : rec.command_pid,
      command_start_time: typeof hb.command_start_time === "number"
        ? hb.command_start_time
        : rec.command_start_time,
    };
  } catch {
    return rec;
  }
}

export function parseFencingHeader(text: string | null): number {
  const m = text?.match(/^mlagent-flock fencing=(\d+)/);
  return m ? Number(m[1]) : 0;
}

/** What a lock file holds: a flock header (record in the sidecar) or a lease claim. */
export async function readLockState(
  env: Env,
  path: string,
): Promise<
  { kind: "missing" } | { kind: "flock"; owner: OwnerRecord | null; ownerText: string | null } | {
    kind: "lease";
    owner: OwnerRecord | null;
    text: string;
  }
> {
  const text = await readText(env, path);
  if (text === null) return { kind: "missing" };
  if (text.startsWith(FLOCK_MAGIC) || text === "") {
    const ownerText = await readText(env, `${path}.owner`);
    return { kind: "flock", owner: ownerText ? parseOwnerRecord(ownerText) : null, ownerText };
  }
  const rec = parseOwnerRecord(text);
  return { kind: "lease", owner: rec ? await withHeartbeat(env, path, rec) : null, text };
}

export function judgeState(
  env: Env,
  state: Awaited<ReturnType<typeof readLockState>>,
  s: Settings,
  kernelLockFree = false,
): LockVerdict {
  if (state.kind === "missing") return { status: "free", reason: "no lock file", owner: null };
  if (state.kind === "flock" && !state.owner) {
    return state.ownerText
      ? { status: "stale-no-owner", reason: "owner record is unreadable", owner: null }
      : { status: "free", reason: "no owner record", owner: null };
  }
  return judgeRecord(env, state.owner, s.ttlMs, { kernelLockFree: kernelLockFree && state.kind === "flock" });
}
