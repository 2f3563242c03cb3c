/** Where a download keeps its parts and records in the local dir (the layout `hf download --local-dir` uses), and reading them. */
import type { Env } from "../core/env.ts";
import type { Manifest } from "./types.ts";

export const META_DIR = ".cache/huggingface/download";
export const MANIFEST = ".cache/huggingface/mlagent_manifest.json";

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

export async function writeMetadata(
  env: Env,
  localDir: string,
  path: string,
  commit: string,
  etag: string,
  dirs?: Set<string>,
) {
  const p = metadataPath(localDir, path);
  if (!dirs?.has(parentOf(p))) {
    await env.fs.mkdir(parentOf(p), { recursive: true });
    dirs?.add(parentOf(p));
  }
  // Written in place as huggingface_hub does (a torn record only costs a re-hash). Written after the rename, so the timestamp is not older than the file's mtime (huggingface_hub ignores
  // a record older than its file by more than a second).
  await env.fs.writeTextFile(p, `${commit}\n${etag}\n${env.now() / 1000}\n`);
}

export async function writeText(env: Env, path: string, text: string) {
  const tmp = `${path}.tmp-${env.pid}-${Math.floor(env.random() * 1e9)}`;
  await env.fs.writeTextFile(tmp, text);
  await env.fs.rename(tmp, path);
}

export async function readManifest(env: Env, localDir: string): Promise<Manifest | null> {
  try {
    const m = JSON.parse(await env.fs.readTextFile(`${localDir}/${MANIFEST}`)) as Manifest;
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
    const entries: Deno.DirEntry[] = [];
    try {
      for await (const e of env.fs.readDir(dir)) entries.push(e);
    } catch {
      return;
    }
    for (const e of entries) {
      const rel = prefix + e.name;
      if (rel === skip) continue;
      if (e.isDirectory) await walk(`${dir}/${e.name}`, `${rel}/`);
      else out.add(rel);
    }
  };
  await walk(root, "");
  return out;
}
