/** What a lock file holds right now (a flock header and sidecar, or a lease claim with its heartbeat), judged. */
import type { Env } from "../core/env.ts";
import { formatDuration, isoTime } from "../core/output.ts";
import { recordedClaimMethod } from "./claim.ts";
import { dirOf, readText, readTextSync } from "./files.ts";
import { quietFor } from "./observe.ts";
import { isRemoteRecord, judgeRecord, parseOwnerRecord, type ProcScan } from "./record.ts";
import { FLOCK_MAGIC, type LockVerdict, type OwnerRecord, type Settings } from "./types.ts";

export interface Heartbeat {
  token: string;
  heartbeat_at: string;
  command_pid: number | null;
  command_start_time: number | null;
}

export type LockState =
  | { kind: "missing"; path: string }
  | {
    kind: "flock";
    path: string;
    owner: OwnerRecord | null;
    ownerText: string | null;
    /** What an observer compares over time (the owner record as written). */
    signature: string;
  }
  | {
    kind: "lease";
    path: string;
    owner: OwnerRecord | null;
    text: string;
    /** The claim and its heartbeat as written: a live holder changes it every heartbeat. */
    signature: string;
    /** Unreadable, in a directory whose claims are made by exclusive create: possibly still being written. */
    incomplete: boolean;
  };

/**
 * Reads a record with its heartbeat file `${path}.heartbeat` merged in, when the heartbeat carries the same
 * token (a heartbeat left by an earlier holder says nothing about this one). Also returns the heartbeat's
 * text, which belongs in the record's signature.
 */
export async function withHeartbeat(
  env: Env,
  path: string,
  rec: OwnerRecord,
  read: (path: string) => Promise<string | null> | string | null = (p) => readText(env, p),
): Promise<{ owner: OwnerRecord; heartbeat: string }> {
  const text = await Promise.resolve().then(() => read(`${path}.heartbeat`)).catch(() => null);
  if (!text) return { owner: rec, heartbeat: "" };
  try {
    const hb = JSON.parse(text) as Heartbeat;
    if (hb.token !== rec.token) return { owner: rec, heartbeat: "" };
    // Both stamps come from the holder's clock: comparing them with each other is fair.
    const beat = Date.parse(hb.heartbeat_at);
    return {
      owner: {
        ...rec,
        heartbeat_at: !Number.isNaN(beat) && beat > Date.parse(rec.heartbeat_at)
          ? isoTime(beat)
          : rec.heartbeat_at,
        command_pid: typeof hb.command_pid === "number" ? hb.command_pid : rec.command_pid,
        command_start_time: typeof hb.command_start_time === "number"
          ? hb.command_start_time
          : rec.command_start_time,
      },
      heartbeat: text,
    };
  } catch {
    return { owner: rec, heartbeat: "" };
  }
}

export function parseFencingHeader(text: string | null): number {
  const m = text?.match(/^mlagent-flock fencing=(\d+)/);
  return m ? Number(m[1]) : 0;
}

/** Whether leases in `path`'s directory are claimed by exclusive create (so a claim may be briefly empty). */
function exclusiveDir(env: Env, path: string): boolean {
  return recordedClaimMethod(env, dirOf(path), { fresh: true }) === "exclusive";
}

/**
 * What a lock file holds: a flock header (record in the sidecar) or a lease claim. `listed` says which
 * sidecars a directory listing just showed, so a listing of thousands reads no sidecar that is not there;
 * `sync` reads without the thread pool (fastest for many small files on a local disk).
 */
export async function readLockState(
  env: Env,
  path: string,
  { listed, sync = false }: { listed?: (suffix: string) => boolean; sync?: boolean } = {},
): Promise<LockState> {
  const read = (p: string) => sync ? readTextSync(env, p) : readText(env, p);
  const text = await read(path);
  if (text === null) return { kind: "missing", path };
  if (text.startsWith(FLOCK_MAGIC) || (text === "" && !exclusiveDir(env, path))) {
    const ownerText = !listed || listed(".owner") ? await read(`${path}.owner`) : null;
    return {
      kind: "flock",
      path,
      owner: ownerText ? parseOwnerRecord(ownerText) : null,
      ownerText,
      signature: ownerText ?? "",
    };
  }
  const rec = parseOwnerRecord(text);
  if (!rec) {
    const incomplete = exclusiveDir(env, path);
    // Two unreadable claims may read alike; the file's identity tells a new one from an old one.
    const st = incomplete ? await env.fs.lstat(path).catch(() => null) : null;
    const id = st ? `${st.ino}:${st.size}:${st.mtime?.getTime()}` : "";
    return { kind: "lease", path, owner: null, text, signature: `${text}\0${id}`, incomplete };
  }
  const { owner, heartbeat } = !listed || listed(".heartbeat")
    ? await withHeartbeat(env, path, rec, read)
    : { owner: rec, heartbeat: "" };
  return { kind: "lease", path, owner, text, signature: `${text}\0${heartbeat}`, incomplete: false };
}

/**
 * Judges a lock's state as an acquirer would. A record from another host is judged by how long this host
 * has seen it unchanged (observe.ts), so judging also records the sighting.
 */
export function judgeState(
  env: Env,
  state: LockState,
  s: Settings,
  { kernelLockFree = false, procs }: { kernelLockFree?: boolean; procs?: ProcScan } = {},
): LockVerdict {
  if (state.kind === "missing") return { status: "free", reason: "no lock file", owner: null };
  if (state.kind === "flock" && !state.owner) {
    return state.ownerText
      ? { status: "stale-no-owner", reason: "owner record is unreadable", owner: null }
      : { status: "free", reason: "no owner record", owner: null };
  }
  if (state.kind === "lease" && !state.owner && state.incomplete) {
    const quiet = quietFor(env, state.path, state.signature);
    if (quiet > s.ttlMs) {
      return {
        status: "stale-no-owner",
        reason: `claim unreadable and unchanged for ${
          formatDuration(quiet)
        } as seen here (abandoned mid-write)`,
        owner: null,
        quietMs: quiet,
      };
    }
    return {
      status: "held",
      reason: `a claim is being written (unreadable for ${formatDuration(quiet)} as seen here)`,
      owner: null,
      quietMs: quiet,
    };
  }
  return judgeOwner(env, state.path, state.owner, state.signature, s.ttlMs, {
    kernelLockFree: kernelLockFree && state.kind === "flock",
    procs,
  });
}

/** Judges one record found at `path` (a claim, an owner sidecar, a shared holder's record). */
export function judgeOwner(
  env: Env,
  path: string,
  owner: OwnerRecord | null,
  signature: string,
  ttlMs: number,
  opts: { kernelLockFree?: boolean; procs?: ProcScan } = {},
): LockVerdict {
  const quietMs = owner && isRemoteRecord(env, owner) ? quietFor(env, path, signature) : undefined;
  return judgeRecord(env, owner, ttlMs, { ...opts, quietMs });
}
