/** Inspecting and clearing locks (lock list / check / clear) and the leftovers of killed lock operations. */
import type { Env } from "../core/env.ts";
import { checkLockPath, readText, writeRecord } from "./files.ts";
import { sameInode } from "./flock.ts";
import { breakClaim, readFence } from "./lease.ts";
import { lockModeFor, settings } from "./settings.ts";
import { judgeState, parseFencingHeader, readLockState } from "./state.ts";
import type { LockInfo, LockMode, LockOptions, LockSpec, LockVerdict } from "./types.ts";

/** Probes the kernel lock without waiting: true when someone holds it. */
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

/** The state of one lock file, judged as an acquirer would. */
export async function inspectLock(env: Env, spec: LockSpec, opts: LockOptions = {}): Promise<LockInfo> {
  const s = settings(env, opts);
  await checkLockPath(env, spec.path);
  const state = await readLockState(env, spec.path);
  const mode: LockMode = state.kind === "lease" ? "lease" : state.kind === "flock" ? "flock" : lockModeFor(
    env,
    spec.path,
    opts.mode,
  );
  let verdict: LockVerdict;
  if (state.kind === "flock") {
    // The kernel has the last word on flock locks; the record says who and whether a command outlived it.
    const kernelHeld = await flockHeld(env, spec.path);
    verdict = judgeState(env, state, s, !kernelHeld);
    if (kernelHeld && verdict.status !== "held" && verdict.status !== "held-remote") {
      verdict = {
        status: "held",
        reason: "the kernel lock is held (owner record not written yet)",
        owner: null,
      };
    }
  } else {
    verdict = judgeState(env, state, s);
  }
  // Named by where it lies, not by what the record claims: the name then works with `lock check`.
  return { name: spec.name, path: spec.path, mode, ...verdict };
}

/** Every lock file mlagent knows: the node-local lock dir and `*.lock` beside venvs under the venv root. */
export async function listLocks(env: Env, dirs: { dir: string; prefix: string }[]): Promise<LockInfo[]> {
  const out: LockInfo[] = [];
  for (const { dir, prefix } of dirs) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...env.fs.readDirSync(dir)];
    } catch {
      continue;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      if (!e.name.endsWith(".lock") || e.name.startsWith(".")) continue;
      const path = `${dir}/${e.name}`;
      if (e.isSymlink || e.isDirectory) {
        out.push({
          name: prefix + e.name.slice(0, -5),
          path,
          mode: "flock",
          status: "stale-no-owner",
          reason: `lock path is a ${e.isSymlink ? "symlink" : "directory"}; refused`,
          owner: null,
        });
        continue;
      }
      const info = await inspectLock(env, { name: prefix + e.name.slice(0, -5), path, purpose: "" });
      if (info.status !== "free") out.push(info);
    }
  }
  return out;
}

/**
 * Removes one stale lock (or, with force, a live remote one), judging it again at the moment of removal.
 * Returns false when it turned out to be held after all.
 */
export async function clearLock(env: Env, info: LockInfo, { force = false } = {}): Promise<boolean> {
  const removable = (v: LockVerdict) => v.status.startsWith("stale") || (force && v.status === "held-remote");
  if (info.mode === "flock") {
    let file: Deno.FsFile;
    try {
      file = await env.fs.open(info.path, { read: true, write: true });
    } catch {
      return false;
    }
    try {
      if (!(await file.tryLock(true))) return false;
      const state = await readLockState(env, info.path);
      const verdict = judgeState(env, state, settings(env, {}), true);
      if (!removable(verdict) && verdict.status !== "free") return false;
      // The counter outlives the lock file, so fencing numbers keep growing after a clear.
      const last = Math.max(
        parseFencingHeader(await readText(env, info.path)),
        await readFence(env, info.path),
        verdict.owner?.fencing ?? 0,
      );
      if (last > 0) await writeRecord(env, `${info.path}.fence`, last);
      await env.fs.remove(`${info.path}.owner`).catch(() => {});
      // Unlinked while locked: waiters on the old inode notice and reopen.
      if (await sameInode(env, info.path, file)) await env.fs.remove(info.path).catch(() => {});
      return true;
    } finally {
      file.close();
    }
  }
  const state = await readLockState(env, info.path);
  if (state.kind !== "lease") return state.kind === "missing";
  const verdict = judgeState(env, state, settings(env, {}));
  if (!removable(verdict)) return false;
  const removed = await breakClaim(env, info.path, settings(env, {}), (text) => text === state.text);
  if (removed && state.owner) {
    const hb = await readText(env, `${info.path}.heartbeat`).catch(() => null);
    if (hb?.includes(state.owner.token)) await env.fs.remove(`${info.path}.heartbeat`).catch(() => {});
  }
  return removed;
}

/** Temp files a lock operation holds for milliseconds: claims, moved-aside claims, record temp files. */
const LEFTOVER =
  /\.lock\.(claim|broken)-.+-\d+-[0-9a-f]{8}$|^\..+\.lock\.(owner|heartbeat|fence)\.tmp-\d+-[0-9a-f]{8}$/;

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
