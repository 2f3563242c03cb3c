/** Where each node's files go in the shared fleet directory, so `mlagent fleet` finds one file per node. */
import type { Env } from "../core/env.ts";
import { absolute } from "../core/paths.ts";

/** File suffixes per kind of node file. */
export const NODE_FILE_SUFFIX = { status: ".json", health: ".health.json", prometheus: ".prom" } as const;

/**
 * The path for an `--output` value: `{host}` becomes this host's name; a value ending in "/" or naming an
 * existing directory gets `<host><suffix>` inside it (`status --json --output /shared/fleet/` writes
 * /shared/fleet/gpu-17.json).
 */
export async function nodeFilePath(env: Env, output: string, suffix: string): Promise<string> {
  const host = env.hostname();
  const expanded = absolute(env, output.replaceAll("{host}", host));
  if (output.endsWith("/")) return `${expanded.replace(/\/+$/, "")}/${host}${suffix}`;
  try {
    if ((await env.fs.stat(expanded)).isDirectory) return `${expanded}/${host}${suffix}`;
  } catch { /* not there yet: a file path */ }
  return expanded;
}
