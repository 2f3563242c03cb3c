/**
 * One readable, machine-checkable picture of the node: the venvs under the root and what state each is in,
 * the named profiles' models, the installer cache, locks, and the last doctor verdict. Reads only: nothing
 * here runs an installer or the network, and a corrupt state file is reported, never thrown.
 */
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import { cacheLockSpec, inspectLock, listLocks, type LockInfo } from "../lock/mod.ts";
import { pathAnswers } from "../core/mounts.ts";
import { localLockDir, venvDir as venvDirOf, venvRoot } from "../core/paths.ts";
import { bootId, schedulerJob } from "../core/proc.ts";
import { resolveProfile } from "../install/recorded.ts";
import type { Profile } from "../profiles/types.ts";
import { inspectCache, unreadCache } from "./cache.ts";
import { blankDoctorSummary, readDoctorSummary } from "./doctor.ts";
import { inspectModels } from "./models.ts";
import type {
  DoctorSummary,
  ModelReport,
  ProfileReport,
  StatusOptions,
  StatusReport,
  VenvReport,
} from "./types.ts";
import { blankVenvReport, exists, inspectVenvState, listVenvDirs } from "./venvs.ts";
import { requireTrustedDir } from "../core/trust.ts";
import { within } from "../core/deadline.ts";

export { inspectModels } from "./models.ts";
export type { ModelReport, StatusReport, VenvReport } from "./types.ts";
export { inspectVenvState, listVenvDirs } from "./venvs.ts";

/**
 * Gathers the whole status. Every part is independent and read side by side, each under the overall
 * deadline: a state file on a hung mount makes its part "timed out", never the whole command hang.
 */
export async function gatherStatus(env: Env, opts: StatusOptions): Promise<StatusReport> {
  const started = env.now();
  const deadline = started + (opts.timeoutMs ?? 10_000);
  const timedOut: string[] = [];
  /** `f` within what is left of the deadline; `late()` stands in for it (and the part is named) when it is not. */
  const bounded = async <T>(part: string, f: () => Promise<T>, late: (ms: number) => T): Promise<T> => {
    const r = await within(env, Math.max(1, deadline - env.now()), f);
    if (r.kind === "done") return r.value;
    if (r.kind === "error") throw r.error;
    timedOut.push(part);
    return late(r.ms);
  };
  const root = venvRoot(env, opts.root);
  // The trust check stats the root and its parents on this thread, where no deadline reaches: a `stat` child
  // asks first, so a dead mount is a part that timed out, not a command hung in the kernel. The parts that
  // do not read under the root start meanwhile.
  const rootLeft = Math.max(1, deadline - env.now());
  const rootAnswered = within(env, rootLeft, () => pathAnswers(env, root, rootLeft)).then((r) => {
    const answered = r.kind === "done" && r.value;
    if (answered) requireTrustedDir(env, root, "venv root");
    else timedOut.push("venv root");
    return answered;
  });
  const boot = bootId(env);
  const job = schedulerJob(env);
  const named = new Map(opts.profiles.map((p) => [p.name, p]));

  const venvsP = rootAnswered.then((answered) =>
    answered ? bounded("venv root", () => listVenvDirs(env, root), () => []) : []
  ).then((dirs) =>
    Promise.all(dirs.map((d) => {
      const name = d.slice(d.lastIndexOf("/") + 1);
      const profile = named.get(name);
      // A profile asked about by name gets the full check; the overview of every venv the cheap one.
      return bounded(
        `venv ${name}`,
        async () =>
          profile
            ? await inspectVenvState(env, d, profile, { boot, integrity: "full" })
            : await inspectVenvState(env, d, await knownProfile(env, name, root), {
              boot,
              integrity: "listing",
            }),
        (ms) => unreadableVenv(d, profile ?? null, ms),
      );
    }))
  );
  const profilesP = Promise.all(opts.profiles.map(async (p): Promise<ProfileReport> => {
    const dir = venvDirOf(env, p.name, opts.root);
    const [venv, models] = await Promise.all([
      // The listing above already judged this dir against the same profile; a missing venv is not listed.
      Promise.all([venvsP, rootAnswered]).then(([vs, answered]) =>
        vs.find((v) => v.path === dir) ??
          (answered
            ? bounded(`venv ${p.name}`, () =>
              inspectVenvState(env, dir, p, { boot }), (ms) =>
              unreadableVenv(dir, p, ms))
            : unreadableVenv(dir, p, env.now() - started))
      ),
      bounded(
        `models of ${p.name}`,
        () => inspectModels(env, p),
        (ms) => p.models.map((m) => unreadableModel(m.repo, m.revision ?? null, ms)),
      ),
    ]);
    return { name: p.name, ready: venv.ready && models.every((m) => m.complete), venv, models };
  }));
  const cacheP = bounded(
    "cache",
    () => inspectCache(env),
    (ms) => unreadCache(`reading the cache did not finish within ${ms} ms (a hung filesystem?)`),
  )
    .catch((e) => unreadCache(e instanceof Error ? e.message : String(e)));
  // The cache's lock lives inside the cache (cacheLockSpec): looked at once the cache is known, beside the
  // other parts, not after the slowest of them (a hung venv would leave it no time before the deadline).
  const cacheLockP = cacheP.then((cache) => {
    if (!cache.path) return null;
    const spec = cacheLockSpec(env, cache.path, "");
    return bounded(
      "cache lock",
      async () => (await exists(env, spec.path)) ? await inspectLock(env, spec) : null,
      () => null,
    )
      .catch(() => null);
  });
  const [venvs, profiles, cache, locks, doctor, cacheLock] = await Promise.all([
    venvsP,
    profilesP,
    cacheP,
    rootAnswered.then((answered) =>
      bounded(
        "locks",
        () =>
          listLocks(env, [
            { dir: localLockDir(env), prefix: "" },
            ...(answered ? [{ dir: root, prefix: "venv:" }] : []),
          ]),
        () => [],
      )
    )
      .catch((): LockInfo[] => []),
    bounded("doctor", () => readDoctorSummary(env), (ms): DoctorSummary => ({
      ...blankDoctorSummary(""),
      state: "corrupt",
      problem: `reading the last verdict did not finish within ${ms} ms (a hung filesystem?)`,
    })),
    cacheLockP,
  ]);
  if (cacheLock && cacheLock.status !== "free") locks.push(cacheLock);
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
    timed_out: timedOut,
    duration_ms: env.now() - started,
  };
}

function unreadableVenv(path: string, profile: Profile | null, ms: number): VenvReport {
  return {
    ...blankVenvReport(path, profile),
    condition: "unreadable",
    message: `reading its state did not finish within ${ms} ms (a hung filesystem?)`,
  };
}

function unreadableModel(repo: string, revision: string | null, ms: number): ModelReport {
  return {
    repo,
    revision,
    local_dir: "",
    complete: false,
    files: 0,
    bytes: 0,
    missing: [],
    partial: [],
    corrupt: [],
    reason: `checking it did not finish within ${ms} ms (a hung filesystem?)`,
  };
}

/** The profile a venv dir is named after, when it can be loaded; unknown ones are judged without it. */
async function knownProfile(env: Env, name: string, root: string): Promise<Profile | null> {
  try {
    return (await resolveProfile(env, name, root)).profile;
  } catch (e) {
    if (e instanceof MlagentError) return null;
    throw e;
  }
}

/** Pure: what is wrong with a model, in words: its reason, then the first `shown` files of each kind. */
export function modelProblemWords(m: ModelReport, shown: number): string {
  const some = (files: string[]) =>
    `${files.slice(0, shown).join(", ")}${files.length > shown ? ", ..." : ""}`;
  return [
    m.reason,
    m.missing.length ? `missing ${some(m.missing)}` : "",
    m.partial.length ? `partial ${some(m.partial)}` : "",
    m.corrupt.length ? `corrupt ${some(m.corrupt)}` : "",
  ].filter(Boolean).join("; ");
}
