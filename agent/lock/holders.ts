/**
 * Shared holders' records: one file per holder in `X.lock.shared/` (`HOST-PID-TOKEN.json`, with a
 * `.heartbeat` beside it in lease mode), each an owner record with `shared: true`, judged like an owner.
 *
 * In lease mode a directory listing cannot be trusted to show a file another host just created (SFTP and NFS
 * clients cache listings for seconds), so holders also register their id in `X.lock.shared/index` while
 * holding the lock's claim (shared.ts); whoever holds the claim reads the index and opens each record by
 * name, which those clients always answer fresh. The listing is read too, and the union taken.
 */
import type { Env } from "../core/env.ts";
import { readText } from "./files.ts";
import { describeOwner, parseOwnerRecord, type ProcScan } from "./record.ts";
import { judgeOwner, withHeartbeat } from "./state.ts";
import type { LockVerdict, OwnerRecord, Settings } from "./types.ts";

export const sharedDirOf = (lockPath: string) => `${lockPath}.shared`;
export const INDEX_FILE = "index";

export interface Holder {
  id: string;
  /** The record file. */
  path: string;
  text: string;
  owner: OwnerRecord | null;
  signature: string;
}

export interface JudgedHolder extends Holder {
  verdict: LockVerdict;
}

/** The record file name for a holder: who and which acquisition, one safe path component. */
export function holderId(env: Env, token: string): string {
  return `${env.hostname().replace(/[^A-Za-z0-9.-]/g, "_")}-${env.pid}-${token.slice(0, 12)}`;
}

/** The ids listed in the index (lease mode). */
export async function readIndex(env: Env, lockPath: string): Promise<string[]> {
  const text = await readText(env, `${sharedDirOf(lockPath)}/${INDEX_FILE}`).catch(() => null);
  return (text ?? "").split("\n").map((l) => l.trim()).filter((l) => /^[A-Za-z0-9._-]+$/.test(l));
}

/** The ids whose record files a directory listing shows; none when the directory is missing. */
export function listedIds(env: Env, lockPath: string): string[] {
  const out: string[] = [];
  try {
    for (const e of env.fs.readDirSync(sharedDirOf(lockPath))) {
      if (e.isFile && e.name.endsWith(".json") && !e.name.startsWith(".")) out.push(e.name.slice(0, -5));
    }
  } catch { /* no shared holders ever */ }
  return out;
}

/** Every shared holder's record found by listing or index, read fresh by name. Missing ones are skipped. */
export async function readHolders(env: Env, lockPath: string, { index = true } = {}): Promise<Holder[]> {
  const ids = new Set(listedIds(env, lockPath));
  if (index) { for (const id of await readIndex(env, lockPath)) ids.add(id); }
  const out: Holder[] = [];
  for (const id of [...ids].sort()) {
    const path = `${sharedDirOf(lockPath)}/${id}.json`;
    const text = await readText(env, path).catch(() => null);
    if (text === null) continue;
    const rec = parseOwnerRecord(text);
    if (!rec) {
      out.push({ id, path, text, owner: null, signature: text });
      continue;
    }
    const { owner, heartbeat } = await withHeartbeat(env, path, rec);
    out.push({ id, path, text, owner, signature: `${text}\0${heartbeat}` });
  }
  return out;
}

/** Judges each holder: same host by its processes, another host by how long this host saw it unchanged. */
export function judgeHolders(env: Env, holders: Holder[], s: Settings, procs?: ProcScan): JudgedHolder[] {
  return holders.map((h) => ({
    ...h,
    // Records are replaced by rename, never written in place: an unreadable one is garbage, not half-written.
    verdict: judgeOwner(env, h.path, h.owner, h.signature, s.ttlMs, { procs }),
  }));
}

export const isHeld = (v: LockVerdict) => v.status === "held" || v.status === "held-remote";

/** Removes a holder's record (and its heartbeat) if it still reads as judged. */
export async function removeHolder(env: Env, h: Holder): Promise<void> {
  if ((await readText(env, h.path).catch(() => null)) !== h.text) return;
  await env.fs.remove(h.path).catch(() => {});
  await env.fs.remove(`${h.path}.heartbeat`).catch(() => {});
}

/** "3 shared holders: gpu-1 pid 11 for 5s (run yolo), gpu-2 pid 40 for 1s (run yolo), ..." */
export function describeHolders(env: Env, holders: (OwnerRecord | null)[]): string {
  const shown = holders.slice(0, 5).map((o) => describeOwner(env, o)).join(", ");
  const more = holders.length > 5 ? `, and ${holders.length - 5} more` : "";
  return `${holders.length} shared holder${holders.length === 1 ? "" : "s"}: ${shown}${more}`;
}

/** The verdict for a lock whose exclusive side is free: held while any shared holder is, else stale if any record is left. */
export function sharedVerdict(judged: JudgedHolder[]): LockVerdict | null {
  const live = judged.filter((h) => isHeld(h.verdict));
  if (live.length) {
    const remote = live.every((h) => h.verdict.status === "held-remote");
    return {
      status: remote ? "held-remote" : "held",
      reason: `held shared by ${live.length} holder${live.length === 1 ? "" : "s"}`,
      owner: null,
    };
  }
  if (!judged.length) return null;
  return {
    status: judged.some((h) => h.verdict.status === "stale-dead")
      ? "stale-dead"
      : judged.some((h) => h.verdict.status === "stale-expired")
      ? "stale-expired"
      : "stale-no-owner",
    reason: `${judged.length} shared holder record${judged.length === 1 ? "" : "s"} left behind (${
      judged[0].verdict.reason
    })`,
    owner: null,
  };
}
