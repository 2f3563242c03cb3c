/** Where the node-local cache lives: MLAGENT_CACHE_DIR, else a private dir under a usable TMPDIR, else /tmp; the one rule doctor and install share. */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { mountForPath, readMounts } from "../core/mounts.ts";
import { absolute } from "../core/paths.ts";
import { writeProbeProblem } from "../core/atomic.ts";
import { describeFsError } from "../core/files.ts";

export interface CachePlacement {
  path: string;
  /** Why this path, in words. */
  reason: string;
  fs_type: string | null;
  network: boolean;
  /** Candidates passed over and why (TMPDIR not owned by us, ...). */
  rejected: { path: string; reason: string }[];
  /** The user's configured installer caches that sit on a network filesystem, and why mlagent ignores them. */
  notices: string[];
}

export interface ResolveOptions {
  /** Create the dir (mode 0700) when missing (default true). `cache info` only looks. */
  create?: boolean;
}

/** The rule alone, before the chosen dir is checked: where the cache goes and why, and what was passed over. */
export async function placeCache(
  env: Env,
): Promise<{ path: string; reason: string; rejected: { path: string; reason: string }[] }> {
  if (env.vars.MLAGENT_CACHE_DIR) {
    return { path: absolute(env, env.vars.MLAGENT_CACHE_DIR), reason: "MLAGENT_CACHE_DIR", rejected: [] };
  }
  const raw = env.vars.TMPDIR;
  const why = raw ? await judgeTmpdirForCache(env, absolute(env, raw)) : null;
  if (raw && why === null) {
    return {
      path: `${absolute(env, raw)}/mlagent-cache-${env.uid}`,
      reason: "under TMPDIR (node-local, yours)",
      rejected: [],
    };
  }
  return {
    path: `/tmp/mlagent-cache-${env.uid}`,
    reason: raw ? `under /tmp (TMPDIR ${why})` : "under /tmp (TMPDIR unset)",
    rejected: raw && why ? [{ path: absolute(env, raw), reason: why }] : [],
  };
}

/** The installer caches a user may have configured for themselves (they are never used, only judged). */
export function configuredUserCaches(env: Env): { variable: string; path: string }[] {
  const home = env.vars.HOME;
  const candidates: [string, string | undefined][] = [
    ["UV_CACHE_DIR", env.vars.UV_CACHE_DIR],
    ["PIP_CACHE_DIR", env.vars.PIP_CACHE_DIR],
    ["~/.cache", env.vars.XDG_CACHE_HOME || (home ? `${home}/.cache` : undefined)],
  ];
  return candidates.flatMap(([variable, path]) => path ? [{ variable, path: absolute(env, path) }] : []);
}

/**
 * Picks the node-local cache: MLAGENT_CACHE_DIR; else under TMPDIR when it is a directory, writable, ours,
 * and not writable by others without the sticky bit; else under /tmp. Throws bad input (exit 2) naming the
 * path when the chosen dir is a file, a symlink to someone else's dir, owned by someone else, or unwritable.
 */
export async function resolveCacheDir(env: Env, opts: ResolveOptions = {}): Promise<CachePlacement> {
  const { path, reason, rejected } = await placeCache(env);
  await checkCacheDir(env, path, opts.create ?? true);
  const mounts = readMounts(env);
  const mount = mountForPath(env, path, mounts);
  const notices: string[] = [];
  for (const { variable, path: dir } of configuredUserCaches(env)) {
    const m = mountForPath(env, dir, mounts);
    if (m?.network) {
      notices.push(
        `${variable} (${dir}) is on ${m.fsType} (network): installers' locks and atomic renames are unreliable ` +
          `there and every read crosses the network; mlagent uses the node-local cache ${path} instead`,
      );
    }
  }
  if (mount?.network) {
    notices.push(
      `the cache ${path} itself is on ${mount.fsType} (network); set MLAGENT_CACHE_DIR to a local disk`,
    );
  }
  return {
    path,
    reason,
    fs_type: mount?.fsType ?? null,
    network: mount?.network ?? false,
    rejected,
    notices,
  };
}

/** Why TMPDIR cannot hold a per-user cache, or null when it can. */
async function judgeTmpdirForCache(env: Env, dir: string): Promise<string | null> {
  let st: Deno.FileInfo;
  try {
    st = await env.fs.stat(dir);
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? "does not exist" : `cannot be read (${(e as Error).message})`;
  }
  if (!st.isDirectory) return "is not a directory";
  if (st.uid !== null && st.uid !== env.uid) {
    const mode = st.mode ?? 0;
    // Someone else's dir: only a sticky, world-writable one (a site /scratch) is safe to create ours under.
    if ((mode & 0o002) === 0 || (mode & 0o1000) === 0) return `is owned by uid ${st.uid}, not by you`;
  }
  const mode = st.mode ?? 0;
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) return "is writable by others without the sticky bit";
  return await writeProbeProblem(env, dir);
}

/** Refuses a cache path that is a file, someone else's (directly or through a symlink), or unwritable. */
async function checkCacheDir(env: Env, path: string, create: boolean): Promise<void> {
  const hint = "set MLAGENT_CACHE_DIR to a directory of your own on a local disk, or remove this one";
  let lst: Deno.FileInfo | null = null;
  try {
    lst = await env.fs.lstat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw badInput(`cache dir ${path} cannot be read: ${describeFsError(e)}`, hint);
    }
  }
  if (lst === null) {
    if (!create) return;
    try {
      await env.fs.mkdir(path, { recursive: true, mode: 0o700 });
      await env.fs.chmod(path, 0o700);
    } catch (e) {
      throw badInput(`cannot create the cache dir ${path}: ${describeFsError(e)}`, hint);
    }
    lst = await env.fs.lstat(path);
  }
  let st = lst;
  if (lst.isSymlink) {
    try {
      st = await env.fs.stat(path);
    } catch {
      throw badInput(`cache dir ${path} is a dangling symlink`, hint);
    }
    if (st.uid !== null && st.uid !== env.uid) {
      throw badInput(
        `cache dir ${path} is a symlink to a directory owned by uid ${st.uid}, not by you (uid ${env.uid})`,
        hint,
      );
    }
  }
  if (!st.isDirectory) throw badInput(`cache dir ${path} is not a directory`, hint);
  if (st.uid !== null && st.uid !== env.uid) {
    throw badInput(`cache dir ${path} is owned by uid ${st.uid}, not by you (uid ${env.uid})`, hint);
  }
  const unwritable = await writeProbeProblem(env, path);
  if (unwritable) throw badInput(`cache dir ${path} ${unwritable}`, hint);
}

/** The installers' caches under the root. */
export function cacheSubdirs(path: string): { uv: string; pip: string } {
  return { uv: `${path}/uv`, pip: `${path}/pip` };
}

/** The root for a dir an install passes (the root itself, or its `uv`/`pip` subdir). */
export function cacheRootOf(dir: string, installer?: "uv" | "pip"): string {
  const d = dir.replace(/\/+$/, "");
  for (const sub of installer ? [installer] : ["uv", "pip"]) {
    if (d.endsWith(`/${sub}`)) return d.slice(0, -sub.length - 1) || "/";
  }
  return d;
}
