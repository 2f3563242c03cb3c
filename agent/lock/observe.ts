/**
 * What this host has seen of lock records over time.
 *
 * A record written on another host is never aged by the times inside it: that host's clock may run fast (its
 * heartbeat then lies in the future and would look fresh forever) or slow (a live holder would look expired).
 * Instead a record is judged by how long this host has watched it stay unchanged (its content, and the
 * heartbeat written beside it), measured on this host's clock through env.now(). A live holder rewrites its
 * heartbeat every few seconds, so it never stays unchanged for a TTL; a dead one does, whatever its clock said.
 *
 * Sightings live in memory per Env. One-shot commands (lock list/check/clear, status, cache heal) also keep
 * them in a small file in the node-local lock dir, so that successive runs (cron) accumulate evidence; a
 * waiter starting later picks up what they saw. Losing that file only delays a verdict of "stale".
 */
import type { Env } from "../core/env.ts";
import { localLockDir } from "../core/paths.ts";
import { replaceText } from "./files.ts";

/** [signature hash, first seen at (ms, this host), last seen at (ms, this host)] */
type Stored = [string, number, number];

interface Sightings {
  seen: Map<string, { sig: string; since: number }>;
  stored: Map<string, Stored> | null;
  dirty: boolean;
}

const STORE = ".mlagent-sightings.json";
/** Sightings not renewed for this long are forgotten (their locks are gone or no longer looked at). */
const FORGET_MS = 24 * 3600_000;
const MAX_STORED = 100_000;

const byEnv = new WeakMap<Env, Sightings>();

function sightingsOf(env: Env): Sightings {
  let s = byEnv.get(env);
  if (!s) byEnv.set(env, s = { seen: new Map(), stored: null, dirty: false });
  return s;
}

function storedOf(env: Env, s: Sightings): Map<string, Stored> {
  if (s.stored) return s.stored;
  s.stored = new Map();
  try {
    const doc = JSON.parse(env.fs.readTextFileSync(`${localLockDir(env)}/${STORE}`));
    for (const [path, v] of Object.entries(doc?.sightings ?? {})) {
      if (
        Array.isArray(v) && typeof v[0] === "string" && Number.isFinite(v[1]) && Number.isFinite(v[2])
      ) s.stored.set(path, v as Stored);
    }
  } catch { /* none yet, or unreadable: start afresh */ }
  return s.stored;
}

/** A short, stable hash of a signature (cyrb53): sightings compare signatures, they never need them back. */
export function hashSignature(text: string): string {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

/**
 * How long (ms, this host's clock) the record at `path` has shown `signature`: 0 the first time it is seen or
 * whenever it changed. A clock that stepped backwards counts as no time at all, never as negative.
 */
export function quietFor(env: Env, path: string, signature: string): number {
  const s = sightingsOf(env);
  const now = env.now();
  const sig = hashSignature(signature);
  const mine = s.seen.get(path);
  if (mine && mine.sig === sig) return Math.max(0, now - mine.since);
  let since = now;
  const stored = storedOf(env, s).get(path);
  if (stored && stored[0] === sig && stored[1] <= now) since = stored[1];
  s.seen.set(path, { sig, since });
  s.dirty = true;
  return now - since;
}

/** Forgets what was seen (tests; a process that wants fresh evidence). */
export function forgetSightings(env: Env): void {
  byEnv.delete(env);
}

/**
 * Writes this process's sightings to the node-local store, merged with what is there. Best effort: a
 * read-only or missing lock dir just means the next run starts afresh.
 */
export async function saveSightings(env: Env): Promise<void> {
  const s = byEnv.get(env);
  if (!s?.dirty) return;
  const now = env.now();
  // Re-read: another one-shot run may have saved meanwhile. The later writer wins, which only loses evidence.
  s.stored = null;
  const merged = storedOf(env, s);
  for (const [path, v] of s.seen) {
    const old = merged.get(path);
    merged.set(path, [v.sig, old && old[0] === v.sig ? Math.min(old[1], v.since) : v.since, now]);
  }
  let entries = [...merged].filter(([, v]) => now - v[2] < FORGET_MS && v[2] <= now + FORGET_MS);
  if (entries.length > MAX_STORED) entries = entries.sort((a, b) => b[1][2] - a[1][2]).slice(0, MAX_STORED);
  const dir = localLockDir(env);
  try {
    if (!env.fs.statSync(dir).isDirectory) return;
    const doc = { mlagent_sightings: 1, sightings: Object.fromEntries(entries) };
    await replaceText(env, `${dir}/${STORE}`, JSON.stringify(doc) + "\n");
    s.dirty = false;
  } catch { /* best effort */ }
}
