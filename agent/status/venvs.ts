/** Judging a venv dir from its state file alone (and /proc for a live installer); never throws for a bad file. */
import { readJson } from "../core/atomic.ts";
import type { Env } from "../core/env.ts";
import { bootId, isAlive } from "../core/proc.ts";
import { profileSha256 } from "../profiles/mod.ts";
import type { Profile } from "../profiles/types.ts";
import { stateFileOf, type VenvState } from "../install/state.ts";
import { venvPython } from "../install/venv.ts";
import type { VenvReport } from "./types.ts";
import {
  checkIntegrity,
  describeIntegrity,
  type IntegrityMode,
  pinnedDistributions,
} from "../install/integrity.ts";
import { plural } from "../core/output.ts";

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

export async function exists(env: Env, path: string): Promise<boolean> {
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

export interface InspectOptions {
  /** This boot's id (read once for a listing of many venvs). */
  boot?: string | null;
  /** How deep the integrity check of a ready venv looks (default full). */
  integrity?: IntegrityMode;
  /** Progress of a deep check (files hashed, of total). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Judges one venv dir. `profile` (when known) decides whether its fingerprint is out of date and what the
 * integrity check looks for: `full` (every RECORD file at its size) for a profile a verdict is given for,
 * `listing` (each pinned dist-info at its pin) for the overview of every venv on the node.
 */
export async function inspectVenvState(
  env: Env,
  path: string,
  profile: Profile | null,
  opts: InspectOptions = {},
): Promise<VenvReport> {
  const boot = opts.boot === undefined ? bootId(env) : opts.boot;
  const integrity = opts.integrity ?? "full";
  const base = blankVenvReport(path, profile);
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
  if (!profile) {
    return { ...r, condition: "ready", ready: true, message: `ready (python ${r.python_version})` };
  }
  const check = await checkIntegrity(env, path, pinnedDistributions(profile), integrity, {
    onProgress: opts.onProgress,
  });
  const report = { ...r, integrity: check };
  if (!check.ok) {
    return {
      ...report,
      condition: "damaged",
      message: `damaged: ${
        describeIntegrity(check)
      }; run mlagent install ${profile.name} to reinstall only those`,
    };
  }
  const looked = integrity === "listing"
    ? "pinned packages present"
    : `${plural(check.files, "file")} checked`;
  return {
    ...report,
    condition: "ready",
    ready: true,
    message: `ready (python ${r.python_version}, ${looked})`,
  };
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

/** The report of a venv nothing is known of yet: each verdict starts from it, and a part that timed out ends in it. */
export function blankVenvReport(path: string, profile: Profile | null): VenvReport {
  return {
    name: path.slice(path.lastIndexOf("/") + 1),
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
    integrity: null,
  };
}
