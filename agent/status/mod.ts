/**
 * One readable, machine-checkable picture of the node: the venvs under the root and what state each is in,
 * the named profiles' models, the installer cache, locks, and the last doctor verdict. Reads only: nothing
 * here runs an installer or the network, and a corrupt state file is reported, never thrown.
 */
import { readJson } from "../core/atomic.ts";
import { verifyLocalModel, type VerifyResult } from "../download/mod.ts";
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import { cacheLockSpec, inspectLock, listLocks, type LockInfo } from "../lock/mod.ts";
import { BOOK_FILE, resolveCacheDir } from "../cache/mod.ts";
import {
  absolute,
  localLockDir,
  modelsRoot,
  stateDir,
  venvDir as venvDirOf,
  venvRoot,
} from "../core/paths.ts";
import { bootId, isAlive, schedulerJob } from "../core/proc.ts";
import { loadProfile, profileSha256 } from "../profiles/mod.ts";
import type { Profile } from "../profiles/types.ts";
import { stateFileOf, type VenvState } from "../install/state.ts";
import { venvPython } from "../install/venv.ts";

/** A venv's state as status sees it. Only "ready" means a job can use it. */
export type VenvCondition =
  | "ready"
  | "installing"
  | "installing-dead-owner"
  | "failed"
  /** Ready, but for an older version of its profile: `mlagent install` will update it. */
  | "outdated"
  /** Ready, but bin/python no longer resolves (its base interpreter was removed or moved). */
  | "interpreter-gone"
  | "corrupt-state"
  /** A directory without mlagent's state (a venv made by hand, or an install that died before writing any). */
  | "no-state"
  | "missing";

export interface VenvReport {
  name: string;
  path: string;
  condition: VenvCondition;
  ready: boolean;
  /** Why it is in this condition, in words. */
  message: string;
  profile: string | null;
  fingerprint: string | null;
  profile_sha256: string | null;
  /** The current profile's hash, when the profile could be loaded. */
  current_profile_sha256: string | null;
  python_version: string | null;
  cuda_variant: string | null;
  installer: string | null;
  updated_at: string | null;
  finished_at: string | null;
  owner: { host: string; pid: number; alive: boolean | null } | null;
  error: { stage: string | null; kind: string; message: string } | null;
}

/** verifyLocalModel's verdict, naming the revision the profile asks for rather than the commit on disk. */
export type ModelReport = Omit<VerifyResult, "commit"> & { revision: string | null };

export interface ProfileReport {
  name: string;
  ready: boolean;
  venv: VenvReport;
  models: ModelReport[];
}

export interface CacheReport {
  path: string;
  exists: boolean;
  filesystem: string | null;
  network: boolean | null;
  bytes: number | null;
  entries: number | null;
  corrupt_entries: number | null;
  last_heal_at: string | null;
  problem: string | null;
}

export interface DoctorSummary {
  state: "ok" | "failed" | "missing" | "corrupt";
  ok: boolean | null;
  checked_at: string | null;
  age_ms: number | null;
  profile: string | null;
  failed: string[];
  warned: string[];
  problem: string | null;
  /** The facts the doctor gathered (GPU devices, ECC, remapped rows), for metrics. */
  facts: Record<string, unknown> | null;
}

export interface StatusReport {
  ok: boolean;
  generated_at: string;
  root: string;
  node: { host: string; boot_id: string | null; scheduler: string | null; job_id: string | null };
  venvs: VenvReport[];
  profiles: ProfileReport[];
  cache: CacheReport;
  locks: LockInfo[];
  doctor: DoctorSummary;
  duration_ms: number;
}

export interface StatusOptions {
  profiles: Profile[];
  root?: string;
}

const KNOWN_STATUS = new Set(["ready", "installing", "failed"]);

/** Checks the parts of a state file status relies on; a file that parses but lacks them is corrupt too. */
function stateProblem(v: unknown): string | null {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return "not a JSON object";
  const s = v as Partial<VenvState>;
  if (typeof s.status !== "string" || !KNOWN_STATUS.has(s.status)) {
    return `unknown status ${JSON.stringify(s.status)}`;
  }
  if (typeof s.fingerprint !== "string") return "no fingerprint";
  if (!s.plan || typeof s.plan !== "object") return "no plan";
  return null;
}

async function exists(env: Env, path: string): Promise<boolean> {
  try {
    await env.fs.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Is the recorded installer still running? Same host and boot: by pid and start time; elsewhere unknown. */
function ownerAlive(env: Env, owner: VenvState["owner"] | undefined, boot: string | null): boolean | null {
  if (!owner || typeof owner.pid !== "number") return false;
  if (owner.host !== env.hostname()) return null;
  if (owner.boot_id && boot && owner.boot_id !== boot) return false;
  return isAlive(env, owner.pid, owner.pid_start_time);
}

/** Judges one venv dir. `profile` (when known) decides whether its fingerprint is out of date. */
export async function inspectVenvState(
  env: Env,
  path: string,
  profile: Profile | null,
  boot: string | null = bootId(env),
): Promise<VenvReport> {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const base: VenvReport = {
    name,
    path,
    condition: "missing",
    ready: false,
    message: "",
    profile: profile?.name ?? null,
    fingerprint: null,
    profile_sha256: null,
    current_profile_sha256: profile ? profileSha256(profile) : null,
    python_version: null,
    cuda_variant: null,
    installer: null,
    updated_at: null,
    finished_at: null,
    owner: null,
    error: null,
  };
  const st = await readJson<VenvState>(env, stateFileOf(path));
  if (st.kind === "missing") {
    if (!(await exists(env, path))) return { ...base, message: `no venv at ${path}` };
    return {
      ...base,
      condition: "no-state",
      message: `${
        stateFileOf(path)
      } is missing: not installed by mlagent, or an install died before starting`,
    };
  }
  if (st.kind === "corrupt") {
    return { ...base, condition: "corrupt-state", message: `${stateFileOf(path)} is corrupt: ${st.error}` };
  }
  const problem = stateProblem(st.value);
  if (problem) {
    return { ...base, condition: "corrupt-state", message: `${stateFileOf(path)} is corrupt: ${problem}` };
  }
  const s = st.value;
  const alive = s.status === "installing" ? ownerAlive(env, s.owner, boot) : null;
  const r: VenvReport = {
    ...base,
    profile: typeof s.profile === "string" ? s.profile : base.profile,
    fingerprint: s.fingerprint,
    profile_sha256: typeof s.plan.profile_sha256 === "string" ? s.plan.profile_sha256 : null,
    python_version: s.plan.python_version ?? null,
    cuda_variant: s.plan.cuda_variant ?? null,
    installer: s.plan.installer ?? null,
    updated_at: s.updated_at ?? null,
    finished_at: s.finished_at ?? null,
    owner: s.owner && typeof s.owner.pid === "number"
      ? { host: String(s.owner.host), pid: s.owner.pid, alive: s.status === "installing" ? alive : null }
      : null,
    error: s.error ?? null,
  };
  if (s.status === "installing") {
    if (alive === false) {
      return {
        ...r,
        condition: "installing-dead-owner",
        message:
          `install by pid ${s.owner?.pid} on ${s.owner?.host} died before finishing; run mlagent install to repair`,
      };
    }
    return {
      ...r,
      condition: "installing",
      message: `being installed by ${s.owner?.host} pid ${s.owner?.pid}${
        alive === null ? " (another host)" : ""
      }`,
    };
  }
  if (s.status === "failed") {
    const e = s.error;
    return {
      ...r,
      condition: "failed",
      message: `install failed${e?.stage ? ` in stage ${e.stage}` : ""}${
        e ? ` (${e.kind}): ${e.message}` : ""
      }`,
    };
  }
  // Ready on record: still usable only if its interpreter resolves and the profile has not changed since.
  if (!(await exists(env, venvPython(path)))) {
    return {
      ...r,
      condition: "interpreter-gone",
      message: `${
        venvPython(path)
      } no longer resolves (was ${s.plan.python_executable}); run mlagent install --force`,
    };
  }
  if (r.current_profile_sha256 && r.profile_sha256 !== r.current_profile_sha256) {
    return {
      ...r,
      condition: "outdated",
      message:
        `built for an older version of profile ${r.profile}; run mlagent install ${r.profile} to update`,
    };
  }
  return { ...r, condition: "ready", ready: true, message: `ready (python ${r.python_version})` };
}

/** The venv dirs under the root (directories only; lock files and hidden entries are not venvs). */
export async function listVenvDirs(env: Env, root: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of env.fs.readDir(root)) {
      if (e.isDirectory && !e.name.startsWith(".")) out.push(`${root}/${e.name}`);
    }
  } catch { /* no root yet: no venvs */ }
  return out.sort();
}

/** A profile's models as verifyLocalModel finds them (offline, no hashing of unchanged files). */
export async function inspectModels(env: Env, profile: Profile): Promise<ModelReport[]> {
  const mroot = modelsRoot(env);
  return await Promise.all(profile.models.map(async (m) => {
    const localDir = m.local_dir ? absolute({ ...env, cwd: mroot }, m.local_dir) : `${mroot}/${m.repo}`;
    try {
      const v = await verifyLocalModel(env, {
        repo: m.repo,
        revision: m.revision,
        localDir,
        requiredFiles: m.required_files,
        include: m.include,
        exclude: m.exclude,
      });
      return {
        repo: m.repo,
        revision: m.revision ?? null,
        local_dir: v.local_dir,
        complete: v.complete,
        files: v.files,
        bytes: v.bytes,
        missing: v.missing,
        partial: v.partial,
        corrupt: v.corrupt,
        reason: v.reason,
      };
    } catch (e) {
      return {
        repo: m.repo,
        revision: m.revision ?? null,
        local_dir: localDir,
        complete: false,
        files: 0,
        bytes: 0,
        missing: [],
        partial: [],
        corrupt: [],
        reason: e instanceof Error ? e.message : String(e),
      };
    }
  }));
}

/** The last doctor verdict (written by `mlagent doctor` to the state dir). */
export async function readDoctorSummary(env: Env): Promise<DoctorSummary> {
  const path = `${stateDir(env)}/last-doctor.json`;
  const empty: DoctorSummary = {
    state: "missing",
    ok: null,
    checked_at: null,
    age_ms: null,
    profile: null,
    failed: [],
    warned: [],
    problem: null,
    facts: null,
  };
  const r = await readJson<Record<string, unknown>>(env, path);
  if (r.kind === "missing") {
    return { ...empty, problem: "mlagent doctor has not run on this node (for this user)" };
  }
  if (r.kind === "corrupt") return { ...empty, state: "corrupt", problem: `${path} is corrupt: ${r.error}` };
  const v = r.value;
  if (!v || typeof v !== "object" || typeof v.ok !== "boolean" || !Array.isArray(v.checks)) {
    return { ...empty, state: "corrupt", problem: `${path} is corrupt: not a doctor report` };
  }
  const checks = v.checks as { id?: unknown; status?: unknown }[];
  const ids = (s: string) => checks.filter((c) => c?.status === s).map((c) => String(c.id));
  const at = typeof v.checked_at === "string" ? v.checked_at : null;
  const t = at ? Date.parse(at) : NaN;
  return {
    state: v.ok ? "ok" : "failed",
    ok: v.ok,
    checked_at: at,
    age_ms: Number.isFinite(t) ? Math.max(0, env.now() - t) : null,
    profile: typeof v.profile === "string" ? v.profile : null,
    failed: ids("fail"),
    warned: ids("warn"),
    problem: null,
    facts: v.facts && typeof v.facts === "object" ? v.facts as Record<string, unknown> : null,
  };
}

/**
 * The installer cache: where agent/cache.ts puts it, on what filesystem, and the numbers its own record
 * (`.mlagent-cache.json`, updated by every scan and heal) keeps. Never walks the tree: a cache of 100k
 * files would cost seconds on every status call; `mlagent cache info` does the walk.
 */
export async function inspectCache(env: Env): Promise<CacheReport> {
  const placement = await resolveCacheDir(env, { create: false });
  const path = placement.path;
  const report: CacheReport = {
    path,
    exists: await exists(env, path),
    filesystem: placement.fs_type,
    network: placement.network,
    bytes: null,
    entries: null,
    corrupt_entries: null,
    last_heal_at: null,
    problem: null,
  };
  if (!report.exists) return report;
  const book = await readJson<Record<string, unknown>>(env, `${path}/${BOOK_FILE}`);
  if (book.kind === "corrupt") report.problem = `cache record ${path}/${BOOK_FILE} is corrupt: ${book.error}`;
  if (book.kind === "ok" && book.value && typeof book.value === "object") {
    const b = book.value;
    const num = (k: string) => (typeof b[k] === "number" ? b[k] as number : null);
    report.bytes = num("bytes");
    report.entries = num("entries");
    report.corrupt_entries = num("corrupt_entries");
    report.last_heal_at = typeof b.last_heal_at === "string" ? b.last_heal_at : null;
  }
  return report;
}

/** Gathers the whole status. Every part is independent and read side by side. */
export async function gatherStatus(env: Env, opts: StatusOptions): Promise<StatusReport> {
  const started = env.now();
  const root = venvRoot(env, opts.root);
  const boot = bootId(env);
  const job = schedulerJob(env);
  const named = new Map(opts.profiles.map((p) => [p.name, p]));

  const venvsP = listVenvDirs(env, root).then((dirs) =>
    Promise.all(dirs.map(async (d) => {
      const name = d.slice(d.lastIndexOf("/") + 1);
      return await inspectVenvState(env, d, named.get(name) ?? await knownProfile(env, name), boot);
    }))
  );
  const profilesP = Promise.all(opts.profiles.map(async (p): Promise<ProfileReport> => {
    const dir = venvDirOf(env, p.name, opts.root);
    const [venv, models] = await Promise.all([
      // The listing above already judged this dir against the same profile; a missing venv is not listed.
      venvsP.then((vs) => vs.find((v) => v.path === dir) ?? inspectVenvState(env, dir, p, boot)),
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
