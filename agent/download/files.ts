/** Where a download keeps its parts and records in the local dir (the layout `hf download --local-dir` uses), and reading them. */
import { entriesOr } from "../core/files.ts";
import { sha1Base64 } from "../core/hash.ts";
import type { Env } from "../core/env.ts";
import { hasControlChar } from "./hub.ts";
import { MANIFEST, META_DIR, RECORD_DIR } from "./layout.ts";
import type { ListedFile, Manifest } from "./types.ts";

export { MANIFEST, META_DIR, RECORD_DIR } from "./layout.ts";

export function metadataPath(localDir: string, path: string): string {
  return `${localDir}/${META_DIR}/${path}.metadata`;
}
export function incompletePath(localDir: string, path: string): string {
  return `${localDir}/${META_DIR}/${path}.incomplete`;
}
export function statePath(localDir: string, path: string): string {
  return `${localDir}/${META_DIR}/${path}.incomplete.json`;
}
export const parentOf = (p: string) => p.slice(0, p.lastIndexOf("/"));

/** Pure: why a listed path may not be written under the local dir, or null if it is safe. */
export function hostilePathReason(path: string): string | null {
  if (path === "" || path.includes("\0")) return "is empty or contains a NUL byte";
  if (hasControlChar(path)) return "contains a control character";
  if (path.startsWith("/")) return "is absolute";
  if (path.includes("\\")) return "contains a backslash";
  const parts = path.split("/");
  if (parts.some((p) => p === "..")) return 'contains ".."';
  if (parts.some((p) => p === "" || p === ".")) return "has an empty or '.' component";
  if (path === ".cache/huggingface" || path.startsWith(".cache/huggingface/")) {
    return "would overwrite the download records in .cache/huggingface";
  }
  return null;
}

/**
 * Where huggingface_hub (since PR #4228) downloads a file before moving it into place: beside the record,
 * `<urlsafe-base64(sha1("<name>.metadata"))>.<etag>.incomplete` (_local_folder.py `incomplete_path`).
 */
export function hfPartPath(localDir: string, path: string, etag: string): string {
  const rec = metadataPath(localDir, path);
  const name = rec.slice(rec.lastIndexOf("/") + 1);
  const short = sha1Base64(name).replace(/\+/g, "-").replace(/\//g, "_");
  return `${parentOf(rec)}/${short}.${etag}.incomplete`;
}

/**
 * huggingface_hub's listing of a commit in a local dir, `.cache/huggingface/trees/<commit>.json` (format 1,
 * written by snapshot_download before it fetches: _tree_cache.py @ ee0a4510), or null if there is none or
 * it is not one this reader knows.
 */
export async function readHfTree(
  env: Env,
  localDir: string,
  commit: string,
): Promise<Record<string, ListedFile> | null> {
  return await readHfTreeIn(env, `${localDir}/${RECORD_DIR}`, commit);
}

/**
 * The same listing under `folder` (`<folder>/trees/<commit>.json`): the local dir's `.cache/huggingface`, or a
 * hub-cache repo folder (_snapshot_download.py l.241-242: the tree cache lives in the storage folder there).
 */
export async function readHfTreeIn(
  env: Env,
  folder: string,
  commit: string,
): Promise<Record<string, ListedFile> | null> {
  if (!/^[0-9a-f]{40}$/.test(commit)) return null;
  try {
    const data = JSON.parse(await env.fs.readTextFile(`${folder}/trees/${commit}.json`));
    if (data?.format_version !== 1 || typeof data.files !== "object" || data.files === null) return null;
    const out: Record<string, ListedFile> = {};
    for (const [path, info] of Object.entries(data.files as Record<string, Record<string, unknown>>)) {
      if (!Number.isSafeInteger(info?.size) || typeof info.blob_id !== "string") return null;
      const sha = typeof info.lfs_sha256 === "string" ? info.lfs_sha256 : undefined;
      out[path] = { size: info.size as number, etag: sha ?? info.blob_id, ...(sha ? { sha256: sha } : {}) };
    }
    return out;
  } catch {
    return null;
  }
}

/**
 * Pure-ish: why the record folder `.cache/huggingface` (or a folder on the way to it) cannot be trusted, or
 * null: a symlink that leads out of the local dir would put records, parts and the manifest elsewhere.
 */
export async function recordDirProblem(env: Env, localDir: string): Promise<string | null> {
  let root: string;
  try {
    root = await env.fs.realPath(localDir);
  } catch {
    return null; // No dir yet: nothing in it can be a symlink.
  }
  for (const rel of [".cache", RECORD_DIR, META_DIR]) {
    const full = `${localDir}/${rel}`;
    const lst = await env.fs.lstat(full).catch(() => null);
    if (!lst) return null;
    if (lst.isSymlink) {
      const real = await env.fs.realPath(full).catch(() => null);
      if (!real || (real !== root && !real.startsWith(root + "/"))) {
        return `${full} is a symlink to ${real ?? "a path that does not exist"}, outside ${localDir}`;
      }
    } else if (!lst.isDirectory) {
      return `${full} is not a directory`;
    }
  }
  return null;
}

/** huggingface_hub's local-dir record: three lines, commit hash, etag, timestamp (float seconds). */
export async function readMetadata(
  env: Env,
  localDir: string,
  path: string,
): Promise<{ commit: string; etag: string; timestamp: number } | null> {
  try {
    const [commit, etag, ts] = (await env.fs.readTextFile(metadataPath(localDir, path))).split("\n");
    const timestamp = Number(ts);
    if (!commit || !etag || !Number.isFinite(timestamp)) return null;
    return { commit: commit.trim(), etag: etag.trim(), timestamp };
  } catch {
    return null;
  }
}

export function writeMetadata(
  env: Env,
  localDir: string,
  path: string,
  commit: string,
  etag: string,
  dirs?: Set<string>,
) {
  const p = metadataPath(localDir, path);
  if (!dirs?.has(parentOf(p))) {
    env.fs.mkdirSync(parentOf(p), { recursive: true });
    dirs?.add(parentOf(p));
  }
  // Written in place as huggingface_hub does (a torn record only costs a re-hash), and after the rename, so the
  // timestamp is not older than the file's mtime (huggingface_hub ignores a record older than its file by more
  // than a second). Synchronously: one small page-cache write, cheaper than a trip through the async pool for
  // each of a repo's many small files.
  env.fs.writeTextFileSync(p, `${commit}\n${etag}\n${env.now() / 1000}\n`);
}

export async function writeText(env: Env, path: string, text: string) {
  const tmp = `${path}.tmp-${env.pid}-${Math.floor(env.random() * 1e9)}`;
  await env.fs.writeTextFile(tmp, text);
  await env.fs.rename(tmp, path);
}

export async function readManifest(env: Env, localDir: string): Promise<Manifest | null> {
  return await readManifestAt(env, `${localDir}/${MANIFEST}`);
}

export async function readManifestAt(env: Env, file: string): Promise<Manifest | null> {
  try {
    const m = JSON.parse(await env.fs.readTextFile(file)) as Manifest;
    return m && typeof m.files === "object" ? m : null;
  } catch {
    return null;
  }
}

export async function statOrNull(env: Env, path: string): Promise<Deno.FileInfo | null> {
  try {
    return await env.fs.stat(path);
  } catch {
    return null;
  }
}

/** Relative paths of the files (and symlinks) under `root`, skipping the `skip` subtree. */
export async function scanFiles(env: Env, root: string, skip?: string): Promise<Set<string>> {
  const out = new Set<string>();
  const walk = async (dir: string, prefix: string) => {
    for (const e of await entriesOr(env, dir)) {
      const rel = prefix + e.name;
      if (rel === skip) continue;
      if (e.isDirectory) await walk(`${dir}/${e.name}`, `${rel}/`);
      else out.add(rel);
    }
  };
  await walk(root, "");
  return out;
}
