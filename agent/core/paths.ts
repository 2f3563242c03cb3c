/** Every on-disk location, derived in one place from flags, MLAGENT_* and XDG variables. */
import type { Env } from "./env.ts";
import { badInput } from "./errors.ts";
import { userById } from "./users.ts";

/**
 * The user's home: HOME, else the password database's entry (LSF pre-exec and Slurm prologs run without
 * HOME). Never a guessable shared path: another local user could have created it first.
 */
export function home(env: Env): string {
  if (env.vars.HOME) return absolute(env, env.vars.HOME);
  const entry = userById(env, env.uid);
  if (entry?.home) return entry.home;
  throw badInput(
    `HOME is unset and uid ${env.uid} has no entry in ${env.etcRoot}/passwd, so mlagent has no home to keep its files in`,
    "set HOME, or MLAGENT_ROOT, MLAGENT_MODELS_DIR and MLAGENT_STATE_DIR",
  );
}

const saidRelative = new Set<string>();

/** A path from a variable, made absolute; a relative one is resolved once against the cwd and said so. */
function fromVariable(env: Env, name: string, value: string): string {
  const abs = absolute(env, value);
  if (!value.startsWith("/") && !saidRelative.has(name)) {
    saidRelative.add(name);
    env.log.warn(`${name}=${value} is relative; using ${abs} (set an absolute path to silence this)`);
  }
  return abs;
}

/** Where venvs live: --root, MLAGENT_ROOT, else $XDG_DATA_HOME/mlagent/venvs. */
export function venvRoot(env: Env, flag?: string): string {
  if (flag !== undefined) return absolute(env, flag);
  if (env.vars.MLAGENT_ROOT) return fromVariable(env, "MLAGENT_ROOT", env.vars.MLAGENT_ROOT);
  return absolute(env, `${env.vars.XDG_DATA_HOME || `${home(env)}/.local/share`}/mlagent/venvs`);
}

/** The venv for one profile. Profile names are validated to be safe path components. */
export function venvDir(env: Env, profileName: string, rootFlag?: string): string {
  return `${venvRoot(env, rootFlag)}/${profileName}`;
}

/** Logs and the last doctor verdict: $XDG_STATE_HOME/mlagent. */
export function stateDir(env: Env): string {
  if (env.vars.MLAGENT_STATE_DIR) return fromVariable(env, "MLAGENT_STATE_DIR", env.vars.MLAGENT_STATE_DIR);
  return absolute(env, `${env.vars.XDG_STATE_HOME || `${home(env)}/.local/state`}/mlagent`);
}

/** Default download location for profile models: MLAGENT_MODELS_DIR, else $XDG_DATA_HOME/mlagent/models. */
export function modelsRoot(env: Env): string {
  if (env.vars.MLAGENT_MODELS_DIR) {
    return fromVariable(env, "MLAGENT_MODELS_DIR", env.vars.MLAGENT_MODELS_DIR);
  }
  return absolute(env, `${env.vars.XDG_DATA_HOME || `${home(env)}/.local/share`}/mlagent/models`);
}

/**
 * Where a profile's model goes: `local_dir` below the models root, else `<models root>/<repo>`. A local_dir
 * that would leave the models root (`../../etc`, an absolute path elsewhere) is bad input: a profile from
 * someone else must not make mlagent write outside the place it was given.
 */
export function modelDir(env: Env, repo: string, localDir?: string): string {
  const root = modelsRoot(env);
  const dir = localDir ? absolute({ ...env, cwd: root }, localDir) : absolute(env, `${root}/${repo}`);
  if (!dir.startsWith(`${root}/`)) {
    throw badInput(
      `model ${repo}: local_dir ${
        JSON.stringify(localDir ?? repo)
      } resolves to ${dir}, outside the models root ${root}`,
      "give local_dir relative to the models root (MLAGENT_MODELS_DIR), without '..'",
    );
  }
  return dir;
}

/** The Hugging Face home: HF_HOME, else $XDG_CACHE_HOME/huggingface. */
export function hfHome(env: Env): string {
  return absolute(env, env.vars.HF_HOME ?? `${env.vars.XDG_CACHE_HOME || `${home(env)}/.cache`}/huggingface`);
}

/**
 * The Hugging Face hub cache, as huggingface_hub places it (constants.py @ ee0a4510 l.157-182): HF_HUB_CACHE,
 * else the older HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub; a leading `~` is the home, as expanduser makes it.
 * An empty variable counts as unset.
 */
export function hubCacheDir(env: Env): string {
  const set = env.vars.HF_HUB_CACHE || env.vars.HUGGINGFACE_HUB_CACHE;
  if (!set) return `${hfHome(env)}/hub`;
  return absolute(env, set === "~" || set.startsWith("~/") ? `${home(env)}${set.slice(1)}` : set);
}

/** Node-local, per-user lock directory for locks that do not sit beside their resource. */
export function localLockDir(env: Env): string {
  const base = env.vars.MLAGENT_LOCK_DIR ?? `${env.vars.XDG_RUNTIME_DIR || `/tmp`}/mlagent-locks-${env.uid}`;
  return absolute(env, base);
}

export function absolute(env: Env, p: string): string {
  if (p.includes("\0")) throw badInput(`path contains a NUL byte: ${JSON.stringify(p)}`);
  const joined = p.startsWith("/") ? p : `${env.cwd}/${p}`;
  return normalize(joined);
}

/** Collapses "." and ".." and repeated slashes without touching the filesystem. */
export function normalize(p: string): string {
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

/** "/a/b/c" -> ["/a/b/c", "/a/b", "/a", "/"]: a path and every parent up to the root. */
export function selfAndParents(path: string): string[] {
  const out = [path];
  for (let p = path; p !== "/";) {
    p = p.slice(0, p.lastIndexOf("/")) || "/";
    out.push(p);
  }
  return out;
}
