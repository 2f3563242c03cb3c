/**
 * Where one download puts its files, parts and records: a local dir laid out as `hf download --local-dir`
 * leaves it, or the Hugging Face hub cache laid out as `hf download` (and `from_pretrained`) leave and read
 * it. Everything else in the engine (listing, transfer, verification, locks) is the same for both.
 *
 * The hub cache, as huggingface_hub @ ee0a4510 writes it (file_download.py docstring l.855-877 and
 * `_hf_hub_download_to_cache_dir` l.1040-1257):
 *   <HF_HUB_CACHE>/models--ORG--NAME/          repo_folder_name, l.720-728 ("--" joins type and id parts)
 *     blobs/<etag>                               the bytes, named by the sha256 (LFS) or git blob sha1
 *     blobs/<etag>.incomplete                    a part being fetched (mlagent, and hf before PR #4228)
 *     snapshots/<commit>/<path>                  relative symlink to ../../blobs/<etag> (l.606-697)
 *     refs/<revision>                            the commit a branch or tag named, no newline (l.700-717)
 *     trees/<commit>.json                        the commit's listing (_tree_cache.py, written before fetching)
 * mlagent adds its lock and its per-commit manifest under `.cache/huggingface/` of the repo folder, which
 * huggingface_hub's cache scan never reads (utils/_cache_manager.py l.731-800 reads snapshots/ and refs/).
 */
import type { Env } from "../core/env.ts";
import { absolute, hubCacheDir } from "../core/paths.ts";
import type { HubFile } from "./hub.ts";

export type LayoutKind = "local-dir" | "hub-cache";

export interface Layout {
  kind: LayoutKind;
  /** The local dir, or the repo's folder in the hub cache (`models--ORG--NAME`). */
  root: string;
}

export const RECORD_DIR = ".cache/huggingface";
export const META_DIR = ".cache/huggingface/download";
export const MANIFEST = ".cache/huggingface/mlagent_manifest.json";
/** mlagent's manifests in a hub-cache repo folder, one per commit (a cache holds several revisions). */
export const CACHE_MANIFEST_DIR = ".cache/huggingface/mlagent";

/** Pure: huggingface_hub's folder name for a model repo, `models--ORG--NAME` (repo_folder_name, l.720-728). */
export function repoFolderName(repo: string): string {
  return ["models", ...repo.split("/")].join("--");
}

/** The repo's folder in the hub cache: `cacheDir` (default HF_HUB_CACHE, see hubCacheDir) + models--ORG--NAME. */
export function hubCacheRepoDir(env: Env, repo: string, cacheDir?: string): string {
  return `${cacheDir ? absolute(env, cacheDir) : hubCacheDir(env)}/${repoFolderName(repo)}`;
}

/** Pure: the blob a listed file is stored as in the hub cache: its sha256 if LFS, else its git blob sha1. */
export const blobName = (f: HubFile) => f.lfsSha256 ?? f.oid;

/** Pure: where the files of `commit` appear: the local dir itself, or the commit's snapshot folder. */
export function filesDir(l: Layout, commit: string): string {
  return l.kind === "local-dir" ? l.root : `${l.root}/snapshots/${commit}`;
}

/** Pure: the part a file is fetched into (per path in a local dir; per blob in the hub cache). */
export function partPath(l: Layout, f: HubFile): string {
  return l.kind === "local-dir"
    ? `${l.root}/${META_DIR}/${f.path}.incomplete`
    : `${l.root}/blobs/${blobName(f)}.incomplete`;
}

/** Pure: mlagent's record of a part's ranges, beside the part. */
export function partStatePath(l: Layout, f: HubFile): string {
  return `${partPath(l, f)}.json`;
}

export function blobPath(l: Layout, f: HubFile): string {
  return `${l.root}/blobs/${blobName(f)}`;
}

/** Pure: mlagent's manifest of `commit`. */
export function manifestPath(l: Layout, commit: string): string {
  return l.kind === "local-dir" ? `${l.root}/${MANIFEST}` : `${l.root}/${CACHE_MANIFEST_DIR}/${commit}.json`;
}

/**
 * Pure: the relative target of a snapshot's symlink to its blob, as `os.path.relpath(blob, pointer's dir)`
 * gives it (file_download.py l.641-644): one `..` per folder of the path, plus two out of snapshots/<commit>.
 */
export function pointerTarget(path: string, blob: string): string {
  return `${"../".repeat(path.split("/").length + 1)}blobs/${blob}`;
}
