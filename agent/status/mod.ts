/**
 * One readable, machine-checkable picture of the node: the venvs under the root and what state each is in,
 * the named profiles' models, the installer cache, locks, and the last doctor verdict. Reads only: nothing
 * here runs an installer or the network, and a corrupt state file is reported, never thrown.
 */
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import { cacheLockSpec, inspectLock, listLocks, type LockInfo } from "../lock/mod.ts";
import { localLockDir, venvDir as venvDirOf, venvRoot } from "../core/paths.ts";
import { bootId, schedulerJob } from "../core/proc.ts";
import { loadProfile } from "../profiles/mod.ts";
import type { Profile } from "../profiles/types.ts";
import { inspectCache } from "./cache.ts";
import { readDoctorSummary } from "./doctor.ts";
import { inspectModels } from "./models.ts";
import type { CacheReport, ProfileReport, StatusOptions, StatusReport } from "./types.ts";
import { exists, inspectVenvState, listVenvDirs } from "./venvs.ts";
import { requireTrustedDir } from "../core/trust.ts";

export { inspectModels } from "./models.ts";
export type { ModelReport, StatusReport, VenvReport } from "./types.ts";
export { inspectVenvState, listVenvDirs } from "./venvs.ts";

/** Gathers the whole status. Every part is independent and read side by side. */
export async function gatherStatus(env: Env, opts: StatusOptions): Promise<StatusReport> {
  const started = env.now();
  const root = venvRoot(env, opts.root);
  requireTrustedDir(env, root, "venv root");
  const boot = bootId(env);
  const job = schedulerJob(env);
  const named = new Map(opts.profiles.map((p) => [p.name, p]));

  const venvsP = listVenvDirs(env, root).then((dirs) =>
    Promise.all(dirs.map(async (d) => {
      const name = d.slice(d.lastIndexOf("/") + 1);
      const profile = named.get(name);
      // A profile asked about by name gets the full check; the overview of every venv the cheap one.
      return profile
        ? await inspectVenvState(env, d, profile, { boot, integrity: "full" })
        : await inspectVenvState(env, d, await knownProfile(env, name), { boot, integrity: "listing" });
    }))
  );
  const profilesP = Promise.all(opts.profiles.map(async (p): Promise<ProfileReport> => {
    const dir = venvDirOf(env, p.name, opts.root);
    const [venv, models] = await Promise.all([
      // The listing above already judged this dir against the same profile; a missing venv is not listed.
      venvsP.then((vs) => vs.find((v) => v.path === dir) ?? inspectVenvState(env, dir, p, { boot })),
      inspectModels(env, p),
    ]);
    return { name: p.name, ready: venv.ready && models.every((m) => m.complete), venv, models };
  }));
  const [venvs, profiles, cache, locks, doctor] = await Promise.all([
    venvsP,
    profilesP,
    inspectCache(env).catch((e): CacheReport => ({
      path: "",
      exists: false,
      filesystem: null,
      network: null,
      bytes: null,
      entries: null,
      corrupt_entries: null,
      last_heal_at: null,
      problem: e instanceof Error ? e.message : String(e),
    })),
    listLocks(env, [{ dir: localLockDir(env), prefix: "" }, { dir: root, prefix: "venv:" }]).catch(
      (): LockInfo[] => [],
    ),
    readDoctorSummary(env),
  ]);
  // The cache's lock sits beside the cache (often in /tmp, among other programs' lock files): look at that one.
  if (cache.path) {
    const spec = cacheLockSpec(env, cache.path, "");
    if (await exists(env, spec.path)) {
      const info = await inspectLock(env, spec).catch(() => null);
      if (info && info.status !== "free") locks.push(info);
    }
  }
  return {
    ok: profiles.every((p) => p.ready),
    generated_at: new Date(started).toISOString(),
    root,
    node: {
      host: env.hostname(),
      boot_id: boot,
      scheduler: job?.scheduler ?? null,
      job_id: job?.job_id ?? null,
    },
    venvs,
    profiles,
    cache,
    locks,
    doctor,
    duration_ms: env.now() - started,
  };
}

/** The profile a venv dir is named after, when it can be loaded; unknown ones are judged without it. */
async function knownProfile(env: Env, name: string): Promise<Profile | null> {
  try {
    return await loadProfile(env, name);
  } catch (e) {
    if (e instanceof MlagentError) return null;
    throw e;
  }
}
