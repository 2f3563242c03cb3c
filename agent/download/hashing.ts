/** Hashing files: the sha256 of an LFS file, the git blob sha1 of a regular one, with progress for many. */
import { loadNodeCrypto } from "../core/hash.ts";
import type { Env } from "../core/env.ts";
import { formatBytes, formatDuration } from "../core/output.ts";
import type { VerifyResult } from "./types.ts";

export async function hashFile(
  env: Env,
  path: string,
  algo: "sha256" | "git-sha1",
  signal?: AbortSignal,
  onRead?: (bytes: number) => void,
): Promise<string> {
  const { createHash } = await loadNodeCrypto();
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
      onRead?.(n);
    }
  } finally {
    file.close();
  }
  return h.digest("hex");
}

export const isSha256 = (s: string | undefined) => !!s && /^[0-9a-f]{64}$/.test(s);
export const isSha1 = (s: string | undefined) => !!s && /^[0-9a-f]{40}$/.test(s);

/** Pure: the hash an etag is (sha256 of an LFS file, git blob sha1 of a regular one), or null if neither. */
export const algoOf = (etag: string | undefined): "sha256" | "git-sha1" | null =>
  isSha256(etag) ? "sha256" : isSha1(etag) ? "git-sha1" : null;

/** One file to hash: where it is, the listed path it stands for, and the hash it must have. */
export interface ToHash {
  path: string;
  file: string;
  size: number;
  etag: string;
  algo: "sha256" | "git-sha1";
}

/** Hashes the files that need it, with a progress row. */
export async function hashAll(
  env: Env,
  where: string,
  files: ToHash[],
  result: Required<VerifyResult>,
  deep: boolean,
) {
  if (files.length === 0) return;
  const total = files.reduce((a, f) => a + f.size, 0);
  const t0 = env.now();
  let done = 0;
  let index = 0;
  if (deep) env.log.info(`re-hashing ${files.length} files (${formatBytes(total)}) in ${where}`);
  // On the board (core/progress.ts): redrawn on a terminal, a line every 10% or 30 s in a log.
  const row = env.progress.row("hashing");
  const stop = env.every(1000, () =>
    row.update(
      `${index}/${files.length} files, ${formatBytes(done)} of ${formatBytes(total)}: ${
        files[index]?.path ?? ""
      }`,
      total ? done / total : index / files.length,
    ));
  try {
    for (const f of files) {
      const got = await hashFile(env, f.file, f.algo, undefined, (n) => (done += n));
      index++;
      result.hashed_files++;
      if (got !== f.etag) result.corrupt.push(f.path);
    }
  } finally {
    stop();
    row.done();
  }
  if (deep) {
    env.log.info(
      `hashed ${files.length} files (${formatBytes(total)}) in ${formatDuration(env.now() - t0)}: ${
        result.corrupt.length ? `${result.corrupt.length} do not match` : "all match"
      }`,
    );
  }
}
