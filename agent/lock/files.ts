/** The lock's files on disk: its directory, refusing links, and small records written without tearing. */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { describeFsError } from "../core/files.ts";
import { localLockDir } from "../core/paths.ts";
import { requireTrustedDir } from "../core/trust.ts";
import { newToken } from "./record.ts";
import { CACHE_LOCK_DIR } from "./specs.ts";

export function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/** How a message names a lock dir: the private one by its variable when that is where it came from. */
function lockDirRole(env: Env, dir: string): string {
  if (dir !== localLockDir(env)) return "lock directory";
  return env.vars.MLAGENT_LOCK_DIR ? "lock directory (MLAGENT_LOCK_DIR)" : "node-local lock directory";
}

/**
 * Refuses (exit 2, naming the path and what is wrong) the node-local lock dir when it is a file, lies under a
 * file, cannot be reached, or it or a parent is another user's or writable by others without the sticky bit
 * (core/trust.ts): anyone who can rename entries there can swap our lock files. Creates nothing, so `lock
 * list` can ask too; a dir that does not exist yet is judged by the parents that will hold it.
 */
export function checkPrivateLockDir(env: Env, dir: string): void {
  const role = lockDirRole(env, dir);
  const hint = "set MLAGENT_LOCK_DIR to a directory of your own (it is created mode 0700)";
  for (let p = dir;; p = dirOf(p)) {
    let st: Deno.FileInfo;
    try {
      st = env.fs.statSync(p);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        if (p === "/") break;
        continue;
      }
      throw badInput(`the ${role} ${dir} cannot be used: ${describeFsError(e)} (${p})`, hint, { path: dir });
    }
    if (!st.isDirectory) {
      const what = p === dir ? "is a file, not a directory" : `lies under ${p}, which is a file`;
      throw badInput(`the ${role} ${dir} ${what}`, hint, { path: dir });
    }
    // Judged by its mode even for root, who could write anyway: a lock dir made read-only was meant so.
    if (p === dir && st.uid === env.uid && ((st.mode ?? 0o700) & 0o200) === 0) {
      throw badInput(
        `the ${role} ${dir} is not writable (mode ${((st.mode ?? 0) & 0o7777).toString(8)})`,
        `chmod 700 ${dir}, or set MLAGENT_LOCK_DIR to a directory you can write`,
        { path: dir },
      );
    }
    break;
  }
  requireTrustedDir(env, dir, role);
}

/**
 * Creates the lock's directory. The node-local lock dir and a cache's lock dir are private (0700, ours); any
 * lock dir writable by everyone without the sticky bit is refused, since anyone could swap our lock files there.
 */
export async function ensureLockDir(env: Env, dir: string): Promise<void> {
  const isLocal = dir === localLockDir(env);
  const isPrivate = isLocal || dir.endsWith(`/${CACHE_LOCK_DIR}`);
  const role = lockDirRole(env, dir);
  if (isLocal) checkPrivateLockDir(env, dir);
  try {
    await env.fs.mkdir(dir, { recursive: true, mode: isPrivate ? 0o700 : 0o755 });
  } catch (e) {
    if (!isLocal || e instanceof Deno.errors.AlreadyExists) throw e;
    throw badInput(
      `cannot create the ${role} ${dir}: ${describeFsError(e)}`,
      "set MLAGENT_LOCK_DIR to a directory you can write (it is created mode 0700)",
      { path: dir },
    );
  }
  const st = await env.fs.lstat(dir);
  if (st.isSymlink && isPrivate) {
    throw badInput(`the ${role} is a symlink: ${dir}`, "remove it; mlagent creates it (mode 0700)");
  }
  const real = st.isSymlink ? await env.fs.stat(dir) : st;
  if (!real.isDirectory) throw badInput(`the ${role} is not a directory: ${dir}`);
  const mode = real.mode ?? 0o700;
  const sticky = (mode & 0o1000) !== 0;
  if (isPrivate) {
    if (real.uid !== null && real.uid !== env.uid) {
      throw badInput(
        `the ${role} ${dir} is owned by uid ${real.uid}, not by you (uid ${env.uid})`,
        "set MLAGENT_LOCK_DIR to a directory of your own, or remove this one",
      );
    }
    if ((mode & 0o022) !== 0 && !sticky) {
      throw badInput(
        `the ${role} ${dir} is writable by others (mode ${(mode & 0o7777).toString(8)})`,
        `chmod 700 ${dir}`,
      );
    }
    if ((mode & 0o200) === 0) {
      throw badInput(
        `the ${role} ${dir} is not writable (mode ${(mode & 0o7777).toString(8)})`,
        `chmod 700 ${dir}, or set MLAGENT_LOCK_DIR to a directory you can write`,
        { path: dir },
      );
    }
    if ((mode & 0o077) !== 0) await env.fs.chmod(dir, 0o700);
  } else if ((mode & 0o002) !== 0 && !sticky) {
    throw badInput(
      `the ${role} ${dir} is writable by everyone without the sticky bit (mode ${
        (mode & 0o7777).toString(8)
      })`,
      `chmod o-w ${dir} (or chmod +t ${dir})`,
    );
  }
}

/** Refuses a lock path that is a symlink or a directory (exit 2 naming it). Returns its inode, if present. */
export async function checkLockPath(env: Env, path: string): Promise<{ dev: number; ino: number } | null> {
  let st: Deno.FileInfo;
  try {
    st = await env.fs.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  if (st.isSymlink) {
    throw badInput(
      `lock path is a symlink: ${path}`,
      "remove it; lock files are never followed through links",
    );
  }
  if (st.isDirectory) throw badInput(`lock path is a directory: ${path}`, "remove or rename it");
  return { dev: st.dev, ino: st.ino ?? 0 };
}

/** Creates `path` with `text`; fails if it exists. */
export async function writeNew(env: Env, path: string, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  const file = await env.fs.open(path, { write: true, createNew: true, mode: 0o644 });
  try {
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
  } finally {
    file.close();
  }
}

/**
 * Replaces a small record atomically (temp name, then rename) so readers see the old or the new one, never
 * half. Deliberately no fsync: it cost milliseconds per hand-off, and after a crash the records are judged
 * stale by boot id and pid anyway.
 */
export async function writeRecord(env: Env, path: string, value: unknown): Promise<void> {
  await replaceText(env, path, JSON.stringify(value, null, 2) + "\n");
}

/** Replaces `path` with `text` by rename from a temp name beside it (readers see old or new, never half). */
export async function replaceText(env: Env, path: string, text: string): Promise<void> {
  const tmp = `${dirOf(path)}/.${path.slice(dirOf(path).length + 1)}.tmp-${env.pid}-${
    newToken().slice(0, 8)
  }`;
  await writeNew(env, tmp, text);
  try {
    await env.fs.rename(tmp, path);
  } catch (e) {
    await env.fs.remove(tmp).catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Reading what is on disk

/** The same as readText, without a trip through the thread pool (listing thousands on a local disk). */
export function readTextSync(env: Env, path: string): string | null {
  try {
    return env.fs.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    if (e instanceof Deno.errors.IsADirectory) throw badInput(`lock path is a directory: ${path}`);
    return "";
  }
}

export async function readText(env: Env, path: string): Promise<string | null> {
  try {
    return await env.fs.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    if (e instanceof Deno.errors.IsADirectory) throw badInput(`lock path is a directory: ${path}`);
    return "";
  }
}
