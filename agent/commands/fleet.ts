/** `mlagent fleet`: one cluster report from the nodes' status and health files. */
import type { Command } from "../cli.ts";
import { writeFileAtomic } from "../core/atomic.ts";
import type { Env } from "../core/env.ts";
import { exitFor, failed, usageError } from "../core/errors.ts";
import { type Outcome, SCHEMA_VERSION } from "../core/output.ts";
import { absolute } from "../core/paths.ts";
import { gatherFleet, renderFleetPrometheus, renderFleetText } from "../fleet/mod.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";

const HELP = `Usage: mlagent fleet [DIR|-] [--json] [--format text|json|prometheus] [--max-age SECONDS]
                     [--max-skew SECONDS] [--output FILE]

Merges the files the nodes write to a shared directory into one cluster report:
  each node, from cron:        mlagent status --json --output DIR/          (DIR/HOST.json)
  each node, health hook:      mlagent health --output DIR/                 (DIR/HOST.health.json)
Reports, per profile, the nodes whose venv is ready, damaged, outdated, missing or otherwise; nodes whose
driver is too old for a profile's CUDA wheels; nodes with corrupt caches; health verdicts, drains and GPU
faults per node; and every file that is stale (older than --max-age), cut short, unreadable, from a newer
mlagent, from a clock far off (--max-skew), or a second report for the same node. Reads only.

Arguments and options:
  DIR              the shared directory (default MLAGENT_FLEET_DIR); - reads the documents from stdin
                   (\`cat DIR/*.json | mlagent fleet -\`)
  --format F       text (default: a compact table), json, or prometheus (a node label on every series)
  --json           same as --format json
  --max-age S      a report older than this is stale (default 3600)
  --max-skew S     a report this far ahead of this clock, or off its file's write time, comes from a clock
                   far off (default 300)
  --output FILE    write the report there atomically instead of stdout (a textfile-collector .prom)

Exit codes: 0 every node current and healthy, 1 some node needs attention, 2 bad input (no such DIR).`;

export const fleetCommand: Command = {
  name: "fleet",
  help: HELP,
  run: runFleetCommand,
};

async function runFleetCommand(env: Env, argv: string[]): Promise<Outcome> {
  const { values, positionals } = parseCommandArgs("fleet", argv, {
    format: { type: "string" },
    "max-age": { type: "string" },
    "max-skew": { type: "string" },
    output: { type: "string" },
  });
  const format = values.format ?? (values.json ? "json" : "text");
  if (!["text", "json", "prometheus"].includes(format)) {
    throw usageError(`fleet: unknown --format "${format}"`, "use --format text, json or prometheus");
  }
  if (values.json && format === "prometheus" && !values.output) {
    throw usageError(
      "fleet: --json and --format prometheus both want stdout",
      "add --output FILE for the metrics",
    );
  }
  if (positionals.length > 1) {
    throw usageError(`fleet: one DIR, got ${positionals.length}`, "see: mlagent fleet --help");
  }
  const source = positionals[0] ?? env.vars.MLAGENT_FLEET_DIR;
  if (!source) {
    throw usageError(
      "fleet: no directory given",
      "name the shared directory (or set MLAGENT_FLEET_DIR), or - for stdin",
    );
  }
  const maxAge = parseNumberFlag("fleet", "max-age", values["max-age"], { min: 1 }) ?? 3600;
  const maxSkew = parseNumberFlag("fleet", "max-skew", values["max-skew"], { min: 0 }) ?? 300;
  const report = await gatherFleet(env, { source, maxAgeMs: maxAge * 1000, maxSkewMs: maxSkew * 1000 });
  const exitCode = exitFor(report.ok);
  const json = { ...report } as Record<string, unknown>;
  // With --json and no --output, main.ts renders `json` itself: no need to build the same text twice.
  const body = values.json && !values.output
    ? ""
    : format === "prometheus"
    ? renderFleetPrometheus(report)
    : format === "json"
    ? JSON.stringify({ schema_version: SCHEMA_VERSION, ...json }, null, 2) + "\n"
    : renderFleetText(report) + "\n";
  if (values.output) {
    const path = absolute(env, values.output);
    try {
      await writeFileAtomic(env, path, body);
    } catch (e) {
      throw failed(
        `fleet: cannot write ${path}: ${e instanceof Error ? e.message : e}`,
        "point --output at a writable place",
      );
    }
    return { exitCode, json: { ...json, output: path }, text: `wrote ${format} fleet report to ${path}` };
  }
  return { exitCode, json, text: body.trimEnd() };
}
