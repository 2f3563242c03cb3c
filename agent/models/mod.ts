/**
 * The model directories under the models root: what each holds (repo, revision, commit), its size, whether
 * it is complete, and which profiles use it; and removing one safely.
 *
 * Completeness is verifyLocalModel's judgement (the one status, verify, prologue and install share), asked
 * with each using profile's own selection (revision, include/exclude, required files). A dir no profile
 * uses is judged against what was downloaded there: the files of its last finished download, or, when
 * that download did not finish, the whole listing it recorded.
 */
import type { Env } from "../core/env.ts";
import { badInput, failed, MlagentError } from "../core/errors.ts";
import { asideLeftovers, removeDirAside, treeBytes } from "../core/files.ts";
import { absolute, modelDir, modelsRoot, venvDir as venvDirOf, venvRoot } from "../core/paths.ts";
import { describeUid } from "../core/users.ts";
import { readManifest, RECORD_DIR } from "../download/files.ts";
import { verifyLocalModel } from "../download/mod.ts";
import { resolveProfile } from "../install/recorded.ts";
import { acquire, downloadLockSpec } from "../lock/mod.ts";
import { listProfiles } from "../profiles/mod.ts";
import type { ModelSpec, Profile } from "../profiles/types.ts";
import { inspectVenvState, listVenvDirs } from "../status/mod.ts";

/** A profile that names a model dir. */
export interface ModelUser {
  profile: string;
  /** "builtin:NAME" or the profile's file. */
  source: string;
  /** A venv for it exists under the venv root. */
  installed: boolean;
  /** Its venv is ready (state and pinned packages: the overview's check). */
  ready: boolean;
  /** The dir is complete for this profile's selection of files; null when the dir does not exist. */
  complete: boolean | null;
  reason: string | null;
}

export interface ModelDirInfo {
  local_dir: string;
  /** Relative to the models root. */
  name: string;
  exists: boolean;
  repo: string | null;
  revision: string | null;
  commit: string | null;
  bytes: number;
  /** Every user's selection complete (or, with no user, what was downloaded there); false when absent. */
  complete: boolean;
  reason: string | null;
  profiles: ModelUser[];
}

interface Use {
  profile: Profile;
  source: string;
  spec: ModelSpec;
}

/** Every profile mlagent knows (the search path, built-ins, and those installed from files) by the dir of each model. */
export async function modelUses(env: Env, root?: string): Promise<Map<string, Use[]>> {
  const names = new Set<string>();
  for (const e of await listProfiles(env).catch(() => [])) if (!e.shadowed_by && !e.error) names.add(e.name);
  for (const d of await listVenvDirs(env, venvRoot(env, root))) names.add(d.slice(d.lastIndexOf("/") + 1));
  const uses = new Map<string, Use[]>();
  for (const name of [...names].sort()) {
    let resolved;
    try {
      resolved = await resolveProfile(env, name, root);
    } catch (e) {
      if (e instanceof MlagentError) continue;
      throw e;
    }
    for (const spec of resolved.profile.models) {
      // A hub-cache model lives in huggingface_hub's cache, shared with hf itself, not under the models root.
      if (spec.layout === "hub-cache") continue;
      let dir: string;
      try {
        dir = modelDir(env, spec.repo, spec.local_dir);
      } catch {
        continue;
      }
      const list = uses.get(dir) ?? [];
      list.push({ profile: resolved.profile, source: resolved.source, spec });
      uses.set(dir, list);
    }
  }
  return uses;
}

/** Dirs under the models root that hold a download (a `.cache/huggingface` record dir), to a depth of 4. */
export async function findModelDirs(env: Env): Promise<string[]> {
  const root = modelsRoot(env);
  const found: string[] = [];
  const walk = async (dir: string, depth: number) => {
    const subdirs: string[] = [];
    try {
      for await (const e of env.fs.readDir(dir)) {
        // Hidden entries: record dirs, and dirs being removed (`.NAME.removing-...`).
        if (e.isDirectory && !e.name.startsWith(".")) subdirs.push(`${dir}/${e.name}`);
      }
    } catch {
      return;
    }
    for (const sub of subdirs.sort()) {
      if (await isDir(env, `${sub}/${RECORD_DIR}`)) found.push(sub);
      // On below a model dir too: a profile may put one model inside another's (text encoders in ckpts/).
      if (depth < 4) await walk(sub, depth + 1);
    }
  };
  await walk(root, 1);
  return found;
}

/**
 * Every model dir with what it holds, its size, completeness and users; also the dirs installed profiles
 * name but lack (built-in profiles never installed here are not listed for theirs).
 */
export async function listModels(env: Env, root?: string): Promise<ModelDirInfo[]> {
  const uses = await modelUses(env, root);
  const installed = new Set(
    (await listVenvDirs(env, venvRoot(env, root))).map((d) => d.slice(d.lastIndexOf("/") + 1)),
  );
  const named = [...uses].filter(([, us]) => us.some((u) => installed.has(u.profile.name))).map(([d]) => d);
  const dirs = new Set([...await findModelDirs(env), ...named]);
  const readyCache = new Map<string, { installed: boolean; ready: boolean }>();
  const venvOf = async (p: Profile) => {
    const hit = readyCache.get(p.name);
    if (hit) return hit;
    const dir = venvDirOf(env, p.name, root);
    const v = await inspectVenvState(env, dir, p, { integrity: "listing" });
    const r = { installed: v.condition !== "missing", ready: v.ready };
    readyCache.set(p.name, r);
    return r;
  };
  const out: ModelDirInfo[] = [];
  for (const dir of [...dirs].sort()) out.push(await describeModelDir(env, dir, uses.get(dir) ?? [], venvOf));
  return out;
}

async function describeModelDir(
  env: Env,
  dir: string,
  uses: Use[],
  venvOf: (p: Profile) => Promise<{ installed: boolean; ready: boolean }>,
): Promise<ModelDirInfo> {
  const root = modelsRoot(env);
  const exists = await isDir(env, dir);
  const manifest = exists ? await readManifest(env, dir) : null;
  const name = dir.slice(root.length + 1);
  const profiles: ModelUser[] = [];
  for (const u of uses) {
    const v = exists
      ? await verifyLocalModel(env, {
        repo: u.spec.repo,
        revision: u.spec.revision,
        localDir: dir,
        requiredFiles: u.spec.required_files,
        include: u.spec.include,
        exclude: u.spec.exclude,
      })
      : null;
    profiles.push({
      profile: u.profile.name,
      source: u.source,
      ...await venvOf(u.profile),
      complete: v ? v.complete : null,
      reason: v ? v.reason : `${dir} does not exist`,
    });
  }
  let complete = exists && profiles.every((p) => p.complete);
  let reason = exists ? profiles.find((p) => !p.complete)?.reason ?? null : `${dir} does not exist`;
  let commit = manifest?.commit ?? null;
  if (exists && !uses.length) {
    // No profile says which files it needs: judge what was asked of the last download there.
    const finished = manifest?.completed_at ? Object.keys(manifest.files) : undefined;
    const v = await verifyLocalModel(env, {
      repo: manifest?.repo ?? name,
      revision: manifest?.revision,
      localDir: dir,
      include: finished?.length ? finished : undefined,
    });
    complete = v.complete;
    reason = v.reason;
    commit ??= v.commit;
  }
  return {
    local_dir: dir,
    name,
    exists,
    repo: manifest?.repo ?? uses[0]?.spec.repo ?? null,
    revision: manifest?.revision ?? uses[0]?.spec.revision ?? null,
    commit,
    bytes: exists ? await treeBytes(env, dir) : 0,
    complete,
    reason,
    profiles,
  };
}

/**
 * The model dir MODEL names: a repo id or a path relative to the models root (as `models list` shows it),
 * or an absolute path inside the models root. Anything that would leave the root is bad input.
 */
export function resolveModelRef(env: Env, ref: string, known: ModelDirInfo[]): ModelDirInfo {
  const root = modelsRoot(env);
  // deno-lint-ignore no-control-regex
  if (ref === "" || /[\x00-\x1f\x7f]/.test(ref)) throw badInput(`bad model name ${JSON.stringify(ref)}`);
  const dir = ref.startsWith("/") ? absolute(env, ref) : absolute({ ...env, cwd: root }, ref);
  if (!dir.startsWith(`${root}/`) || ref.split("/").includes("..")) {
    throw badInput(
      `model ${JSON.stringify(ref)} is not a directory inside the models root ${root}`,
      "name it as `mlagent models list` shows it (a repo id or a path under the models root)",
    );
  }
  const byDir = known.find((k) => k.local_dir === dir && k.exists);
  if (byDir) return byDir;
  const byRepo = known.filter((k) => k.repo === ref && k.exists);
  if (byRepo.length === 1) return byRepo[0];
  if (byRepo.length > 1) {
    throw badInput(
      `${byRepo.length} model dirs hold ${ref}: ${byRepo.map((k) => k.name).join(", ")}`,
      "name one of them by its path under the models root",
    );
  }
  throw badInput(`no model dir ${ref} under ${root}`, "see: mlagent models list");
}

/** How long to wait for a holder of a lock, or not at all (noWait: exit 3 naming it). */
export interface WaitOptions {
  noWait?: boolean;
  timeoutMs?: number;
}

export interface RemovedModel {
  local_dir: string;
  bytes: number;
  removed: boolean;
  /** Leftovers of earlier removals killed half-way, deleted too. */
  leftovers: string[];
}

/** Refuses (bad input, exit 2) a dir that another user owns: it is theirs to remove. */
export function requireOwnDir(env: Env, dir: string, what: string): void {
  let uid: number | null = null;
  try {
    uid = env.fs.statSync(dir).uid;
  } catch {
    return;
  }
  if (uid !== null && uid !== env.uid) {
    throw badInput(
      `refusing to remove ${what} ${dir}: it belongs to ${describeUid(env, uid)}, not to you (${
        describeUid(env, env.uid)
      })`,
      "ask its owner to remove it (mlagent remove / mlagent models rm as that user)",
      { path: dir, owner_uid: uid },
    );
  }
}

/**
 * Removes a model dir under its download lock taken exclusively (a download, or a `run` using it, is waited
 * for; opts.noWait refuses), renamed aside first so no reader sees half of it as the model.
 */
export async function removeModelDir(
  env: Env,
  dir: string,
  purpose: string,
  opts: WaitOptions,
): Promise<RemovedModel> {
  requireOwnDir(env, dir, "model dir");
  const leftovers = await asideLeftovers(env, dir);
  let bytes = 0;
  for (const l of leftovers) {
    bytes += await treeBytes(env, l);
    await env.fs.remove(l, { recursive: true });
  }
  if (!(await isDir(env, dir))) return { local_dir: dir, bytes, removed: false, leftovers };
  const lock = await acquire(env, downloadLockSpec(dir, purpose), opts);
  try {
    if (!(await isDir(env, dir))) return { local_dir: dir, bytes, removed: false, leftovers };
    bytes += await treeBytes(env, dir);
    await removeDirAside(env, dir);
  } catch (e) {
    if (e instanceof MlagentError) throw e;
    throw failed(`cannot remove ${dir}: ${e instanceof Error ? e.message : e}`);
  } finally {
    await lock.release();
  }
  // An org dir left empty (models root/ORG/NAME) goes too; the root stays.
  const parent = dir.slice(0, dir.lastIndexOf("/"));
  if (parent !== modelsRoot(env)) await env.fs.remove(parent).catch(() => {});
  return { local_dir: dir, bytes, removed: true, leftovers };
}

async function isDir(env: Env, path: string): Promise<boolean> {
  try {
    return (await env.fs.stat(path)).isDirectory;
  } catch {
    return false;
  }
}
