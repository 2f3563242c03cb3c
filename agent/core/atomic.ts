/** Final paths are reached by rename from a temp name in the same directory, so readers never see half a file. */
import type { Env } from "./env.ts";
import { readBoundedText } from "./files.ts";

export async function writeFileAtomic(
  env: Env,
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const tmp = `${dir}/.${path.slice(dir.length + 1)}.tmp-${env.pid}-${Math.floor(env.random() * 1e9)}`;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const file = await env.fs.open(tmp, { write: true, createNew: true, mode });
  try {
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
    await file.sync();
  } catch (e) {
    file.close();
    await env.fs.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  try {
    await env.fs.rename(tmp, path);
  } catch (e) {
    await env.fs.remove(tmp).catch(() => {});
    throw e;
  }
}

export async function writeJsonAtomic(env: Env, path: string, value: unknown, mode = 0o644): Promise<void> {
  await writeFileAtomic(env, path, JSON.stringify(value, null, 2) + "\n", mode);
}

/** State and record files mlagent writes are small; a bigger one was not written by mlagent. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;

/**
 * Reads JSON; returns {kind:"missing"} or {kind:"corrupt"} instead of throwing for expected problems. A FIFO
 * or device planted where a state file belongs is corrupt, never opened (opening a FIFO blocks forever).
 */
export async function readJson<T = unknown>(
  env: Env,
  path: string,
): Promise<{ kind: "ok"; value: T } | { kind: "missing" } | { kind: "corrupt"; error: string }> {
  const r = await readBoundedText(env, path, MAX_JSON_BYTES);
  if (r.kind === "missing") return { kind: "missing" };
  if (r.kind === "refused") return { kind: "corrupt", error: `it ${r.why}` };
  const text = r.text;
  try {
    return { kind: "ok", value: JSON.parse(text) as T };
  } catch (e) {
    return { kind: "corrupt", error: e instanceof Error ? e.message : String(e) };
  }
}

/** Why a file cannot be created in `dir` ("is not writable (...)"), found by a real create and remove; null when it can. */
export async function writeProbeProblem(env: Env, dir: string): Promise<string | null> {
  try {
    const f = await env.fs.makeTempFile({ dir, prefix: ".mlagent-probe-" });
    await env.fs.remove(f);
    return null;
  } catch (e) {
    return `is not writable (${
      e instanceof Deno.errors.PermissionDenied ? "permission denied" : (e as Error).message
    })`;
  }
}
