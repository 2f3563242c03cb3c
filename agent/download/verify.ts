/** Hashing files and judging a local model dir against its records, without the network. */
import { createHash } from "node:crypto";
import type { Env } from "../core/env.ts";
import { absolute } from "../core/paths.ts";
import {
  hostilePathReason,
  incompletePath,
  META_DIR,
  readManifest,
  readMetadata,
  scanFiles,
  statOrNull,
} from "./files.ts";
import { filterPaths } from "./glob.ts";
import type { VerifyOptions, VerifyResult } from "./types.ts";

export async function hashFile(
  env: Env,
  path: string,
  algo: "sha256" | "git-sha1",
  signal?: AbortSignal,
): Promise<string> {
  const h = createHash(algo === "sha256" ? "sha256" : "sha1");
  const file = await env.fs.open(path, { read: true });
  try {
    if (algo === "git-sha1") h.update(`blob ${(await file.stat()).size}\0`);
    const buf = new Uint8Array(4 << 20);
    while (true) {
      if (signal?.aborted) throw signal.reason;
      const n = await file.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return h.digest("hex");
}

export const isSha256 = (s: string | undefined) => !!s && /^[0-9a-f]{64}$/.test(s);
export const isSha1 = (s: string | undefined) => !!s && /^[0-9a-f]{40}$/.test(s);

// ---------------------------------------------------------------------------------------------- verify

/**
 * Offline: is `localDir` a finished download of `repo` (at `revision`)? Uses mlagent's manifest (sizes and
 * sha256 checked at download time; a file whose size or mtime changed since is re-hashed), else the
 * `.metadata` records huggingface_hub writes. Never touches the network.
 */
export async function verifyLocalModel(env: Env, opts: VerifyOptions): Promise<VerifyResult> {
  const localDir = absolute(env, opts.localDir);
  const result: VerifyResult = {
    complete: false,
    repo: opts.repo,
    commit: null,
    local_dir: localDir,
    files: 0,
    bytes: 0,
    missing: [],
    partial: [],
    corrupt: [],
    reason: null,
  };
  const manifest = await readManifest(env, localDir);
  const expected = new Map<string, { size?: number; etag?: string; sha256?: string; mtime_ms?: number }>();
  if (manifest) {
    result.commit = manifest.commit;
    if (manifest.repo !== opts.repo) result.reason = `the dir holds ${manifest.repo}, not ${opts.repo}`;
    else if (opts.revision && opts.revision !== manifest.revision && opts.revision !== manifest.commit) {
      result.reason = `the dir holds revision ${manifest.revision} (${
        manifest.commit.slice(0, 12)
      }), not ${opts.revision}`;
    }
    const all = manifest.listing ?? manifest.files;
    for (const p of filterPaths(Object.keys(all), opts.include, opts.exclude)) {
      // Not in `files`: listed but never fetched here; no mtime, so the checks below treat it as unverified.
      expected.set(p, manifest.files[p] ?? all[p]);
    }
  } else {
    // Downloaded by `hf download --local-dir`: trust its records (commit and etag), check what we can.
    for (const p of filterPaths(await listRecords(env, localDir), opts.include, opts.exclude)) {
      const rec = await readMetadata(env, localDir, p);
      if (!rec) continue;
      result.commit ??= rec.commit;
      expected.set(p, { etag: rec.etag, ...(isSha256(rec.etag) ? { sha256: rec.etag } : {}) });
    }
    if (expected.size === 0 && !(opts.requiredFiles?.length)) {
      result.reason = "nothing has been downloaded there";
    }
  }
  for (const r of opts.requiredFiles ?? []) if (!expected.has(r)) expected.set(r, {});
  for (const [path, want] of [...expected].sort(([a], [b]) => a.localeCompare(b))) {
    result.files++;
    if (hostilePathReason(path)) {
      result.missing.push(path);
      continue;
    }
    const st = await statOrNull(env, `${localDir}/${path}`);
    if (!st || !st.isFile) {
      if (await statOrNull(env, incompletePath(localDir, path))) result.partial.push(path);
      else result.missing.push(path);
      continue;
    }
    if (!(await readMetadata(env, localDir, path))) {
      // A file without a record was not finished by either tool (or was copied in): not trusted.
      result.missing.push(path);
      continue;
    }
    if (want.size !== undefined && st.size !== want.size) {
      result.partial.push(path);
      continue;
    }
    result.bytes += st.size;
    const changed = want.mtime_ms === undefined || (st.mtime?.getTime() ?? 0) !== want.mtime_ms;
    if (want.sha256 && (opts.deep || (manifest && changed))) {
      if ((await hashFile(env, `${localDir}/${path}`, "sha256")) !== want.sha256) result.corrupt.push(path);
    }
  }
  result.complete = result.reason === null && result.missing.length === 0 && result.partial.length === 0 &&
    result.corrupt.length === 0;
  return result;
}

/** Paths that have a `.metadata` record under the dir. */
async function listRecords(env: Env, localDir: string): Promise<string[]> {
  return [...await scanFiles(env, `${localDir}/${META_DIR}`)]
    .filter((p) => p.endsWith(".metadata"))
    .map((p) => p.slice(0, -".metadata".length));
}
