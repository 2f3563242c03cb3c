/** Inspecting and clearing locks (lock list / check / clear, cache heal) and the leftovers of killed lock operations. */
import type { Env } from "../core/env.ts";
import { mountForPath } from "../core/mounts.ts";
import { localLockDir, venvRoot } from "../core/paths.ts";
import { recordedClaimMethod, tryClaim } from "./claim.ts";
import { readFence } from "./fence.ts";
import { checkLockPath, dirOf, readText, writeRecord } from "./files.ts";
import { retireLockFile, sameInode } from "./flock.ts";
import {
  type Holder,
  isHeld,
  judgeHolders,
  readHolders,
  removeHolder,
  sharedDirOf,
  sharedVerdict,
} from "./holders.ts";
import { breakClaim, removeClaimIf } from "./lease.ts";
import { saveSightings } from "./observe.ts";
import { makeRecord, newToken, parseOwnerRecord, ProcScan } from "./record.ts";
import { lockModeFor, settings } from "./settings.ts";
import { judgeState, parseFencingHeader, readLockState } from "./state.ts";
import type { LockInfo, LockMode, LockOptions, LockSpec, LockVerdict, Settings } from "./types.ts";

/** A directory of locks, and the prefix its lock names get (`venv:` for the locks beside venvs). */
export interface LockDir {
  dir: string;
  prefix: string;
}

/** The directories mlagent keeps locks in: the node-local lock dir, and beside the venvs under the root. */
export function knownLockDirs(env: Env, root?: string): LockDir[] {
  return [{ dir: localLockDir(env), prefix: "" }, { dir: venvRoot(env, root), prefix: "venv:" }];
}

/** Probes the kernel lock without waiting: true when someone holds it (shared or exclusive). */
async function flockHeld(env: Env, path: string): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await env.fs.open(path, { read: true });
  } catch {
    return false;
  }
  try {
    const got = await file.tryLock(true);
    if (got) await file.unlock();
    return !got;
  } catch {
    return false;
  } finally {
    file.close();
  }
}

interface InspectContext {
  procs?: ProcScan;
  /** Names in the lock's directory, when the caller listed it: sidecars not among them are not read. */
  siblings?: Set<string>;
  /** Read without the thread pool (a local disk). */
  sync?: boolean;
}

/** The state of one lock file and its shared holders, judged as an acquirer would. */
export async function inspectLock(
  env: Env,
  spec: LockSpec,
  opts: LockOptions = {},
  ctx: InspectContext = {},
): Promise<LockInfo> {
  const info = await inspectOne(env, spec, settings(env, opts), opts, ctx);
  if (ctx.procs === undefined) await saveSightings(env);
  return info;
}

async function inspectOne(
  env: Env,
  spec: LockSpec,
  s: Settings,
  opts: LockOptions,
  ctx: InspectContext,
): Promise<LockInfo> {
  const base = spec.path.slice(spec.path.lastIndexOf("/") + 1);
  const listed = ctx.siblings;
  if (!listed) await checkLockPath(env, spec.path);
  const procs = ctx.procs ?? new ProcScan(env);
  const state = await readLockState(env, spec.path, {
    listed: listed && ((suffix) => listed.has(base + suffix)),
    sync: ctx.sync,
  });
  const mode: LockMode = state.kind === "lease" ? "lease" : state.kind === "flock" ? "flock" : lockModeFor(
    env,
    spec.path,
    opts.mode,
  );
  let verdict = judgeState(env, state, s, { procs });
  // The kernel has the last word on flock locks while the record says held (its owner may have let go) or
  // says nothing (an acquirer about to write it, or shared holders); a dead owner's record is stale anyway.
  const kernelHeld = state.kind === "flock" && (isHeld(verdict) || verdict.status === "free") &&
    await flockHeld(env, spec.path);
  if (state.kind === "flock" && !kernelHeld) {
    verdict = judgeState(env, state, s, { kernelLockFree: true, procs });
  }
  const hasShared = listed ? listed.has(`${base}.shared`) : await env.fs.lstat(sharedDirOf(spec.path)).then(
    () => true,
    () => false,
  );
  let holders: LockVerdict[] = [];
  if (hasShared) {
    const judged = judgeHolders(
      env,
      await readHolders(env, spec.path, { index: mode === "lease" }),
      s,
      procs,
    );
    holders = judged.map((h) => h.verdict);
    const sv = sharedVerdict(judged);
    if (sv && !isHeld(verdict) && (isHeld(sv) || verdict.status === "free")) verdict = sv;
  }
  if (kernelHeld && !isHeld(verdict)) {
    verdict = {
      status: "held",
      reason: "the kernel lock is held (owner record not written yet)",
      owner: null,
    };
  }
  const claim = mode === "lease"
    ? (state.kind !== "missing" && state.owner?.claim) || recordedClaimMethod(env, dirOf(spec.path))
    : null;
  // Named by where it lies, not by what the record claims: the name then works with `lock check`.
  return { name: spec.name, path: spec.path, mode, claim: claim || null, holders, ...verdict };
}

/** Runs `fn` over `items` with at most `n` at a time (file operations run on a thread pool). */
async function mapPool<T, R>(items: T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/**
 * Every lock that is not free in the given directories (`*.lock`, and `*.lock.shared` holders whose lock
 * file is gone), sorted by name. Judges many at once, against one snapshot of this host's processes, and
 * reads only the sidecars the directory listing shows: 20,000 records list in about a second on a local disk.
 */
export async function listLocks(
  env: Env,
  dirs: LockDir[],
  opts: LockOptions = {},
  procs: ProcScan = new ProcScan(env),
): Promise<LockInfo[]> {
  const s = settings(env, opts);
  const out: LockInfo[] = [];
  for (const { dir, prefix } of dirs) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...env.fs.readDirSync(dir)];
    } catch {
      continue;
    }
    const locks = new Map<string, Deno.DirEntry | null>();
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      if (e.name.endsWith(".lock")) locks.set(e.name, e);
      else if (e.name.endsWith(".lock.shared") && e.isDirectory) {
        const base = e.name.slice(0, -7);
        if (!locks.has(base)) locks.set(base, null);
      }
    }
    const names = [...locks.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const siblings = new Set(entries.map((e) => e.name));
    // On a local disk, reading in place beats handing 20,000 small reads to the thread pool; on a network
    // filesystem each read waits on the server, so many go at once.
    const sync = !mountForPath(env, dir)?.network;
    const infos = await mapPool(names, 32, async (file): Promise<LockInfo | null> => {
      const path = `${dir}/${file}`;
      const name = prefix + file.slice(0, -5);
      const e = locks.get(file);
      if (e && (e.isSymlink || e.isDirectory)) {
        return {
          name,
          path,
          mode: "flock",
          claim: null,
          holders: [],
          status: "stale-no-owner",
          reason: `lock path is a ${e.isSymlink ? "symlink" : "directory"}; refused`,
          owner: null,
        };
      }
      const info = await inspectOne(env, { name, path, purpose: "" }, s, opts, { procs, siblings, sync })
        .catch(
          () => null,
        );
      return info && info.status !== "free" ? info : null;
    });
    for (const i of infos) if (i) out.push(i);
  }
  await saveSightings(env);
  return out;
}

const refused = (l: LockInfo) => l.reason.endsWith("; refused");

/**
 * Removes one stale lock (or, with force, a live remote one), judging it again at the moment of removal,
 * with its shared holders' records. Returns false when it turned out to be held after all.
 */
export async function clearLock(
  env: Env,
  info: LockInfo,
  { force = false, procs = new ProcScan(env) }: { force?: boolean; procs?: ProcScan } = {},
): Promise<boolean> {
  const s = settings(env, {});
  // Only what was judged: a record that changed since (a new holder) is not this clear's to remove.
  const listedToken = info.owner?.token;
  const removable = (v: LockVerdict) =>
    (v.status.startsWith("stale") || (force && v.status === "held-remote")) &&
    (!v.owner || v.owner.shared || !listedToken || v.owner.token === listedToken);
  // Owners are checked live at removal; the snapshot's token carriers stay valid for records already dead in it.
  procs = procs.freshPids();
  if (info.mode === "flock") return await clearFlockLock(env, info.path, s, removable, procs);
  const state = await readLockState(env, info.path);
  let removed = false;
  if (state.kind === "lease") {
    const verdict = judgeState(env, state, s, { procs });
    if (isHeld(verdict) && !removable(verdict)) return false;
    if (verdict.status !== "free") {
      removed = await breakClaim(env, info.path, s, (text) => text === state.text);
      if (!removed) return false;
      const hb = state.owner ? await readText(env, `${info.path}.heartbeat`).catch(() => null) : null;
      if (state.owner && hb?.includes(state.owner.token)) {
        await env.fs.remove(`${info.path}.heartbeat`).catch(() => {});
      }
    }
  } else if (state.kind === "flock") return false;
  const holders = await readHolders(env, info.path);
  if (!holders.length) return removed || state.kind === "missing";
  return await clearLeaseHolders(env, info.path, s, removable, procs) || removed;
}

async function clearFlockLock(
  env: Env,
  path: string,
  s: Settings,
  removable: (v: LockVerdict) => boolean,
  procs: ProcScan,
): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await env.fs.open(path, { read: true, write: true });
  } catch {
    return false;
  }
  try {
    // Held LOCK_EX: no one holds it, shared or not; a record can only be held by a command outliving its mlagent.
    if (!(await file.tryLock(true)) || !(await sameInode(env, path, file))) return false;
    const verdict = judgeState(env, await readLockState(env, path), s, { kernelLockFree: true, procs });
    if (!removable(verdict) && verdict.status !== "free") return false;
    const holders = judgeHolders(env, await readHolders(env, path, { index: false }), s, procs);
    if (holders.some((h) => isHeld(h.verdict) && !removable(h.verdict))) return false;
    for (const h of holders) await removeHolder(env, h);
    // The counter outlives the lock file, so fencing numbers keep growing after a clear.
    const last = Math.max(
      parseFencingHeader(await readText(env, path)),
      await readFence(env, path),
      verdict.owner?.fencing ?? 0,
    );
    await env.fs.remove(`${path}.owner`).catch(() => {});
    if (await retireLockFile(env, path, file, last)) return true;
    // No floor here (another user's directory?): keep the number beside the lock instead.
    if (last > 0) await writeRecord(env, `${path}.fence`, last);
    // Unlinked while locked: waiters on the old inode notice and reopen.
    if (await sameInode(env, path, file)) await env.fs.remove(path).catch(() => {});
    return true;
  } finally {
    file.close();
  }
}

/** Removes stale shared holders' records of a lease lock, under its claim taken without waiting. */
async function clearLeaseHolders(
  env: Env,
  path: string,
  s: Settings,
  removable: (v: LockVerdict) => boolean,
  procs: ProcScan,
): Promise<boolean> {
  const token = newToken();
  const record = makeRecord(
    env,
    { name: "clear", path, purpose: "lock clear" },
    "lease",
    token,
    0,
    s,
    undefined,
  );
  if (!(await tryClaim(env, path, JSON.stringify(record, null, 2) + "\n"))) return false;
  try {
    const judged = judgeHolders(env, await readHolders(env, path), s, procs);
    const stale: Holder[] = judged.filter((h) => removable(h.verdict));
    for (const h of stale) await removeHolder(env, h);
    if (stale.length === judged.length) {
      await env.fs.remove(sharedDirOf(path), { recursive: true }).catch(() => {});
    }
    return stale.length > 0;
  } finally {
    await removeClaimIf(env, path, (t) => parseOwnerRecord(t)?.token === token);
  }
}

export interface ClearResult {
  /** Stale locks (and with force, live remote ones) found. */
  candidates: LockInfo[];
  /** Removed (empty on a dry run). */
  removed: LockInfo[];
  /** Found held again when rechecked at removal. */
  kept: LockInfo[];
  /** Locks left alone: held, or refused (a symlink or directory where a lock file should be). */
  held: LockInfo[];
}

/**
 * Clears stale locks in bulk (`lock clear --yes`, `cache heal`): lists the directories once, then removes
 * each stale lock, judging it again at the moment of removal. `force` also removes live locks of other
 * hosts; `dryRun` only reports. A lock whose removal fails is kept and logged, never thrown.
 */
export async function clearStaleLocks(
  env: Env,
  dirs: LockDir[],
  { force = false, dryRun = false }: { force?: boolean; dryRun?: boolean } = {},
): Promise<ClearResult> {
  // One snapshot of /proc serves the listing and every removal.
  const procs = new ProcScan(env);
  const locks = await listLocks(env, dirs, {}, procs);
  const candidates = locks.filter((l) =>
    !refused(l) && (l.status.startsWith("stale") || (force && l.status === "held-remote"))
  );
  const held = locks.filter((l) => !candidates.includes(l));
  if (dryRun) return { candidates, removed: [], kept: [], held };
  const outcomes = await mapPool(candidates, 16, async (l) => {
    try {
      return await clearLock(env, l, { force, procs });
    } catch (e) {
      env.log.warn(`cannot clear stale lock ${l.path}: ${e instanceof Error ? e.message : e}`);
      return false;
    }
  });
  return {
    candidates,
    removed: candidates.filter((_, i) => outcomes[i]),
    kept: candidates.filter((_, i) => !outcomes[i]),
    held,
  };
}

/** Temp files a lock operation holds for milliseconds: claims, moved-aside claims, record temp files, probes. */
const LEFTOVER = new RegExp(
  [
    String.raw`\.lock(\.break)?\.(claim|broken)-.+-\d+-[0-9a-f]{8}$`,
    String.raw`^\..+\.tmp-\d+-[0-9a-f]{8}$`,
    String.raw`^\.mlagent\.claim-probe-.+-\d+-[0-9a-f]{8}(-link)?$`,
  ].join("|"),
);

/**
 * Leftovers of lock operations killed mid-way (SIGKILL between creating a temp file and renaming or
 * removing it). Nothing legitimate keeps one for more than moments, so anything older than `minAgeMs` goes.
 */
export async function findLeftovers(env: Env, dirs: string[], minAgeMs = 10 * 60_000): Promise<string[]> {
  const out: string[] = [];
  for (const dir of dirs) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...env.fs.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.isFile || !LEFTOVER.test(e.name)) continue;
      const st = await env.fs.lstat(`${dir}/${e.name}`).catch(() => null);
      const age = env.now() - (st?.mtime?.getTime() ?? env.now());
      if (age >= minAgeMs) out.push(`${dir}/${e.name}`);
    }
  }
  return out.sort();
}
