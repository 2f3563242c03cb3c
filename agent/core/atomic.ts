/** Final paths are reached by rename from a temp name in the same directory, so readers never see half a file. */
import type { Env } from "./env.ts";

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

/** Reads JSON; returns {kind:"missing"} or {kind:"corrupt"} instead of throwing for expected problems. */
export async function readJson<T = unknown>(
  env: Env,
  path: string,
): Promise<{ kind: "ok"; value: T } | { kind: "missing" } | { kind: "corrupt"; error: string }> {
  let text: string;
  try {
    text = await env.fs.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { kind: "missing" };
    return { kind: "corrupt", error: e instanceof Error ? e.message : String(e) };
  }
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
