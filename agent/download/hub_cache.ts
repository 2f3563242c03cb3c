/**
 * The records huggingface_hub keeps in a hub-cache repo folder, written as it writes them (file_download.py,
 * _snapshot_download.py and _tree_cache.py @ ee0a4510), so `hf`, `from_pretrained("org/name")` and
 * `snapshot_download(local_files_only=True)` find what mlagent fetched, and mlagent reads what they fetched.
 */
import type { Env } from "../core/env.ts";
import { parentOf } from "./files.ts";
import type { HubFile } from "./hub.ts";
import { blobName, filesDir, type Layout, pointerTarget } from "./layout.ts";

/** Pure: why `revision` cannot name a file under refs/ (it would leave the folder), or null. */
export function refProblem(revision: string): string | null {
  if (revision.startsWith("/")) return "starts with /";
  const parts = revision.split("/");
  if (parts.some((p) => p === "" || p === "." || p === "..")) return 'has an empty, "." or ".." component';
  return null;
}

/** Pure: whether `name` can be a blob's file name: the git blob sha1 or the sha256 the Hub lists. */
export const isBlobName = (name: string) => /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(name);

/** The commit `refs/<revision>` names, or null (no such ref, or not a commit hash). */
export async function readRef(env: Env, root: string, revision: string): Promise<string | null> {
  if (refProblem(revision)) return null;
  try {
    // hf writes the bare hash and reads the whole file (l.1121-1124): a newline would make it another name.
    const text = (await env.fs.readTextFile(`${root}/refs/${revision}`)).trim();
    return /^[0-9a-f]{40}$/.test(text) ? text : null;
  } catch {
    return null;
  }
}

/** The same, synchronously (a plan is made without awaiting: one small read of a page-cached file). */
export function readRefSync(env: Env, root: string, revision: string): string | null {
  if (refProblem(revision)) return null;
  try {
    const text = env.fs.readTextFileSync(`${root}/refs/${revision}`).trim();
    return /^[0-9a-f]{40}$/.test(text) ? text : null;
  } catch {
    return null;
  }
}

/**
 * `refs/<revision>` := commit, only when it changes, through a temporary name and a rename so a reader never
 * sees half a hash (`_cache_commit_hash_for_specific_revision`, l.700-717). A commit hash needs no ref.
 */
export async function writeRef(env: Env, root: string, revision: string, commit: string) {
  if (revision === commit) return;
  const ref = `${root}/refs/${revision}`;
  if ((await env.fs.readTextFile(ref).catch(() => null)) === commit) return;
  await env.fs.mkdir(parentOf(ref), { recursive: true });
  const tmp = `${ref}.${Math.floor(env.random() * 0xffffffff).toString(16).padStart(8, "0")}.tmp`;
  await env.fs.writeTextFile(tmp, commit);
  await env.fs.rename(tmp, ref);
}

/**
 * `trees/<commit>.json` in format 1, as write_tree_cache writes it (_tree_cache.py l.123-146: keys sorted,
 * `json.dump(..., indent=1)`, temp file and rename), before any byte is fetched as snapshot_download does
 * (l.384-398): hf then skips the listing call, and `local_files_only` runs know which files are missing.
 * An existing one is kept (a commit's listing never changes).
 */
export async function writeTree(env: Env, root: string, commit: string, listed: HubFile[]) {
  const path = `${root}/trees/${commit}.json`;
  if (await env.fs.stat(path).then(() => true, () => false)) return;
  const files: Record<string, Record<string, unknown>> = {};
  for (const f of [...listed].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    files[f.path] = {
      size: f.size,
      blob_id: f.oid,
      ...(f.lfsSha256 ? { lfs_sha256: f.lfsSha256, lfs_size: f.size } : {}),
    };
  }
  await env.fs.mkdir(parentOf(path), { recursive: true });
  const tmp = `${path}.${env.pid}-${Math.floor(env.random() * 1e9)}.tmp`;
  await env.fs.writeTextFile(tmp, pythonJsonIndent1({ format_version: 1, files }));
  await env.fs.rename(tmp, path);
}

/** Pure: JSON as Python's `json.dump(obj, f, indent=1)` writes it (", " is "," at line ends; ": " between). */
export function pythonJsonIndent1(value: unknown): string {
  // JSON.stringify with an indent uses the same separators; it differs from Python only in escaping non-ASCII
  // (Python's ensure_ascii), which a reader of either does not care about.
  return JSON.stringify(value, null, 1).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

const CACHEDIR_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n" +
  "# This file is a cache directory tag created by huggingface_hub.\n" +
  "# For information about cache directory tags, see:\n" +
  "#\thttps://bford.info/cachedir/\n";

/** CACHEDIR.TAG in the hub cache, so backup tools skip it, as hf writes it (l.1199-1200, _local_folder.py l.64-69). */
export async function tagCacheDir(env: Env, cacheDir: string) {
  const tag = `${cacheDir}/CACHEDIR.TAG`;
  if (await env.fs.stat(tag).then(() => true, () => false)) return;
  await env.fs.writeTextFile(tag, CACHEDIR_TAG).catch(() => {});
}

/**
 * Makes `snapshots/<commit>/<path>` the relative symlink to the file's blob, unless it already is one: a new
 * link under a temporary name renamed over the old entry, so a reader sees the old pointer or the new one
 * (hf removes, then links: l.633-676). Returns whether it wrote one.
 */
export function linkPointer(
  env: Env,
  layout: Layout,
  commit: string,
  f: HubFile,
  dirs?: Set<string>,
): boolean {
  const pointer = `${filesDir(layout, commit)}/${f.path}`;
  const target = pointerTarget(f.path, blobName(f));
  try {
    if (env.fs.readLinkSync(pointer) === target) return false;
  } catch { /* missing, or not a symlink: (re)made below */ }
  const dir = parentOf(pointer);
  if (!dirs?.has(dir)) {
    env.fs.mkdirSync(dir, { recursive: true });
    dirs?.add(dir);
  }
  const tmp = `${pointer}.mlagent-${env.pid}-${Math.floor(env.random() * 1e9)}.tmp`;
  env.fs.symlinkSync(target, tmp);
  try {
    env.fs.renameSync(tmp, pointer);
  } catch (e) {
    try {
      env.fs.removeSync(tmp);
    } catch { /* gone */ }
    throw e;
  }
  return true;
}
