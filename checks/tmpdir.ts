/**
 * TMPDIR and cache placement: TMPDIR exists, is a directory and is writable (else /tmp); whether the cache
 * dir and the venv root sit on a network filesystem; whether they share one, which decides the link mode
 * installs use (hard links across filesystems fail with EXDEV, errno 18).
 */
import { writeProbeProblem } from "../agent/core/atomic.ts";
import { configuredUserCaches, placeCache, resolveCacheDir } from "../agent/cache/placement.ts";
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
}

/** Judges TMPDIR: exists, is a directory, is writable (a real create-and-remove), else falls back to /tmp. */
export async function judgeTmpdir(env: Env): Promise<TmpdirVerdict> {
  const raw = env.vars.TMPDIR;
  if (!raw) return { tmpdir: null, effective: "/tmp", problem: null };
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
  if (problem) return { tmpdir: raw, effective: "/tmp", problem };
  return { tmpdir: raw, effective: dir, problem: null };
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
      `create it (\`mkdir -p "${tmp.tmpdir}"\`) or unset TMPDIR; builds that honour TMPDIR will otherwise fail`,
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
      cache.hint ?? "set MLAGENT_CACHE_DIR to a directory of your own on a local disk",
    ));
  } else if (cache.mount?.network) {
    out.push(result(
      "cache.fs",
      "warn",
      `installer cache ${cache.path} (${cache.reason}) is on a network filesystem (${
        describeMount(cache.mount)
      }): uv and pip cache locks fail or stall there`,
      "point MLAGENT_CACHE_DIR at node-local disk (e.g. under /tmp or local scratch)",
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
  // The cache's own placement rule (agent/cache/placement.ts), looked at without creating anything, so
  // doctor reports the dir installs will use; a dir it would refuse is a failed check here, not an exit 2.
  let c: { path: string; reason: string; problem?: string | null; hint?: string | null };
  if (ctx.cacheDir) c = { path: ctx.cacheDir, reason: "given by the caller" };
  else {
    try {
      const placed = await resolveCacheDir(env, { create: false });
      c = { path: placed.path, reason: placed.reason };
    } catch (e) {
      if (!(e instanceof MlagentError)) throw e;
      const placed = await placeCache(env);
      c = { path: placed.path, reason: placed.reason, problem: e.message, hint: e.hint ?? null };
    }
  }
  const mounts = readMounts(env);
  const userCaches = configuredUserCaches(env).map((u) => ({
    ...u,
    mount: mountForPath(env, u.path, mounts),
  }));
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
