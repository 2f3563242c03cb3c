/**
 * `mlagent fleet`: each node writes its `status --json` and `health --json` to a shared directory
 * (`--output DIR/`, atomically, as HOST.json and HOST.health.json); this merges them into one cluster
 * report. Reads only; a bad node file is reported on its node's row, never fatal.
 */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { absolute } from "../core/paths.ts";
import { mergeFleet, parseNodeFile } from "./merge.ts";
import { readNodeDir, stdinNodeFiles } from "./read.ts";
import type { FleetReport, RawNodeFile } from "./types.ts";

export { NODE_FILE_SUFFIX, nodeFilePath } from "./paths.ts";
export { nodeProblems, renderFleetPrometheus, renderFleetText } from "./render.ts";
export { mergeFleet, nodeFromFileName, parseNodeFile } from "./merge.ts";
export { splitDocuments } from "./read.ts";
export type { FleetReport, NodeRow, ProfileRow } from "./types.ts";

export interface FleetOptions {
  /** A directory, or "-" for documents on stdin. */
  source: string;
  maxAgeMs: number;
  maxSkewMs: number;
}

/** Reads every node file and merges them. A missing or unreadable directory is bad input. */
export async function gatherFleet(env: Env, opts: FleetOptions): Promise<FleetReport> {
  const started = env.now();
  let files: RawNodeFile[];
  let source = opts.source;
  if (opts.source === "-") {
    files = stdinNodeFiles(await env.fs.readTextFile("/dev/stdin"));
    source = "stdin";
  } else {
    source = absolute(env, opts.source);
    try {
      files = readNodeDir(env, source);
    } catch (e) {
      throw badInput(
        `fleet: cannot read ${source}: ${e instanceof Error ? e.message : e}`,
        "name the shared directory the nodes write to (status --json --output DIR/), or - for stdin",
      );
    }
  }
  const report = mergeFleet(files.map(parseNodeFile), {
    now: env.now(),
    maxAgeMs: opts.maxAgeMs,
    maxSkewMs: opts.maxSkewMs,
    source,
  });
  return { ...report, duration_ms: env.now() - started };
}
