/**
 * TMPDIR and cache placement: TMPDIR exists, is a directory and is writable (else /tmp); whether the cache
 * dir and the venv root sit on a network filesystem; whether they share one, which decides the link mode
 * installs use (hard links across filesystems fail with EXDEV, errno 18).
 */
import { writeProbeProblem } from "../agent/core/atomic.ts";
import { resolveCacheDir } from "../agent/cache/mod.ts";
import type { Env } from "../agent/core/env.ts";
import { MlagentError } from "../agent/core/errors.ts";
import { type Mount, mountForPath, readMounts, sameFilesystem } from "../agent/core/mounts.ts";
import { absolute } from "../agent/core/paths.ts";
import { type CheckContext, type CheckResult, result } from "./types.ts";

export type LinkMode = "hardlink" | "copy";

export interface TmpdirVerdict {
  /** The TMPDIR value, or null when unset. */
  tmpdir: string | null;
  /** The temp dir installs will use. */
  effective: string;
  /** Why TMPDIR was not used, null when it was (or was unset). */
  problem: string | null;
  /** Whether it is safe for a per-user cache (owned by us, or not writable by others without the sticky bit). */
  private_ok: boolean;
}

/** Judges TMPDIR: exists, is a directory, is writable (a real create-and-remove), else falls back to /tmp. */
export async function judgeTmpdir(env: Env): Promise<TmpdirVerdict> {
  const raw = env.vars.TMPDIR;
  if (!raw) {
    return { tmpdir: null, effective: "/tmp", problem: null, private_ok: await privateOk(env, "/tmp") };
  }
  const dir = absolute(env, raw);
  let problem: string | null = null;
  try {
    const st = await env.fs.stat(dir);
    if (!st.isDirectory) problem = "is not a directory";
  } catch (e) {
    problem = e instanceof Deno.errors.NotFound
      ? "does not exist"
      : `cannot be read (${(e as Error).message})`;
  }
  if (!problem) problem = await writeProbeProblem(env, dir);
  if (problem) return { tmpdir: raw, effective: "/tmp", problem, private_ok: await privateOk(env, "/tmp") };
  return { tmpdir: raw, effective: dir, problem: null, private_ok: await privateOk(env, dir) };
}

async function privateOk(env: Env, dir: string): Promise<boolean> {
  try {
    const st = await env.fs.stat(dir);
    const mode = st.mode ?? 0;
    return st.uid === env.uid || (mode & 0o002) === 0 || (mode & 0o1000) !== 0;
  } catch {
    return false;
  }
}

/**
 * The node-local installer cache (issue 4's placement rule): MLAGENT_CACHE_DIR; else under a usable TMPDIR;
 * else under /tmp. Callers that own the cache pass their own dir in CheckContext.cacheDir.
 */
export function defaultCacheDir(env: Env, tmp: TmpdirVerdict): { path: string; reason: string } {
  if (env.vars.MLAGENT_CACHE_DIR) {
    return { path: absolute(env, env.vars.MLAGENT_CACHE_DIR), reason: "MLAGENT_CACHE_DIR" };
  }
  const useTmpdir = tmp.tmpdir !== null && tmp.problem === null && tmp.private_ok;
  const base = useTmpdir ? tmp.effective : "/tmp";
  return {
    path: `${base}/mlagent-cache-${env.uid}`,
    reason: useTmpdir
      ? "under TMPDIR (node-local)"
      : tmp.tmpdir
      ? `under /tmp (TMPDIR ${tmp.problem ?? "is shared without the sticky bit"})`
      : "under /tmp (TMPDIR unset)",
  };
}

/** hardlink when the cache and the venv root share a filesystem, else copy (cross-device links fail with EXDEV). */
export function linkModeFor(cache: Mount | null, venvRoot: Mount | null): LinkMode {
  return sameFilesystem(cache, venvRoot) ? "hardlink" : "copy";
}

const describeMount = (m: Mount | null) => (m ? `${m.fsType} at ${m.mountPoint}` : "unknown filesystem");

/** tmpdir, cache.fs, venv.fs and cache.link_mode. */
export function evaluatePlacement(
  tmp: TmpdirVerdict,
  cache: { path: string; reason: string; mount: Mount | null; problem?: string | null; hint?: string | null },
  venv: { path: string; mount: Mount | null },
  userCaches: { variable: string; path: string; mount: Mount | null }[] = [],
): CheckResult[] {
  const out: CheckResult[] = [];
  const mode = linkModeFor(cache.mount, venv.mount);
  const placement = {
    tmpdir: { value: tmp.tmpdir, effective: tmp.effective, problem: tmp.problem },
    cache: {
      dir: cache.path,
      reason: cache.reason,
      fs_type: cache.mount?.fsType ?? null,
      network: cache.mount?.network ?? null,
    },
    venv_root: { dir: venv.path, fs_type: venv.mount?.fsType ?? null, network: venv.mount?.network ?? null },
    link_mode: mode,
  };
  if (tmp.problem) {
    out.push(result(
      "tmpdir",
      "warn",
      `TMPDIR=${tmp.tmpdir} ${tmp.problem}; falling back to /tmp`,
      `Create it (\`mkdir -p "${tmp.tmpdir}"\`) or unset TMPDIR; builds that honour TMPDIR will otherwise fail`,
      placement,
    ));
  } else {
    out.push(result(
      "tmpdir",
      "pass",
      tmp.tmpdir ? `TMPDIR=${tmp.tmpdir} is a writable directory` : "TMPDIR unset; using /tmp",
      null,
      placement,
    ));
  }
  if (cache.problem) {
    out.push(result(
      "cache.fs",
      "fail",
      cache.problem,
      cache.hint ?? "Set MLAGENT_CACHE_DIR to a directory of your own on a local disk",
    ));
  } else if (cache.mount?.network) {
    out.push(result(
      "cache.fs",
      "warn",
      `installer cache ${cache.path} (${cache.reason}) is on a network filesystem (${
        describeMount(cache.mount)
      }): uv and pip cache locks fail or stall there`,
      "Point MLAGENT_CACHE_DIR at node-local disk (e.g. under /tmp or local scratch)",
    ));
  } else {
    const notes = userCaches.filter((u) => u.mount?.network).map((u) =>
      `${u.variable}=${u.path} is on ${describeMount(u.mount)}, so mlagent uses its node-local cache instead`
    );
    out.push(result(
      "cache.fs",
      "pass",
      `installer cache ${cache.path} (${cache.reason}) is on ${describeMount(cache.mount)}${
        notes.length ? `; ${notes.join("; ")}` : ""
      }`,
    ));
  }
  out.push(result(
    "venv.fs",
    "pass",
    `venv root ${venv.path} is on ${describeMount(venv.mount)}${
      venv.mount?.network
        ? " (network: shared across hosts; installs lock it with leases, and first imports are slower)"
        : ""
    }`,
  ));
  out.push(result(
    "cache.link_mode",
    "pass",
    mode === "hardlink"
      ? "cache and venv root share a filesystem: installs hard-link from the cache"
      : `cache and venv root are on different filesystems (${describeMount(cache.mount)} vs ${
        describeMount(venv.mount)
      }): installs copy from the cache (hard links would fail with EXDEV, errno 18)`,
  ));
  return out;
}

export async function gatherPlacement(ctx: CheckContext) {
  const env = ctx.env;
  const tmp = await judgeTmpdir(env);
  // The cache's own placement rule (agent/cache.ts), looked at without creating anything, so doctor reports
  // the dir installs will use; a dir it would refuse is a failed check here rather than an exit 2.
  let c: { path: string; reason: string; problem?: string | null; hint?: string | null };
  if (ctx.cacheDir) c = { path: ctx.cacheDir, reason: "given by the caller" };
  else {
    try {
      const placed = await resolveCacheDir(env, { create: false });
      c = { path: placed.path, reason: placed.reason };
    } catch (e) {
      if (!(e instanceof MlagentError)) throw e;
      c = { ...defaultCacheDir(env, tmp), problem: e.message, hint: e.hint ?? null };
      if (env.vars.MLAGENT_CACHE_DIR) c.path = absolute(env, env.vars.MLAGENT_CACHE_DIR);
    }
  }
  const mounts = readMounts(env);
  const home = env.vars.HOME;
  const userCaches: { variable: string; path: string; mount: Mount | null }[] = [];
  for (
    const [variable, path] of [
      ["UV_CACHE_DIR", env.vars.UV_CACHE_DIR],
      ["PIP_CACHE_DIR", env.vars.PIP_CACHE_DIR],
      ["~/.cache", home ? `${env.vars.XDG_CACHE_HOME || `${home}/.cache`}` : undefined],
    ] as const
  ) {
    if (path) userCaches.push({ variable, path, mount: mountForPath(env, absolute(env, path), mounts) });
  }
  return {
    tmp,
    cache: { ...c, mount: mountForPath(env, c.path, mounts) },
    venv: { path: ctx.venvRoot, mount: mountForPath(env, ctx.venvRoot, mounts) },
    userCaches,
  };
}

export async function checkPlacement(
  ctx: CheckContext,
): Promise<{ results: CheckResult[]; cacheDir: string }> {
  const g = await gatherPlacement(ctx);
  return { results: evaluatePlacement(g.tmp, g.cache, g.venv, g.userCaches), cacheDir: g.cache.path };
}
