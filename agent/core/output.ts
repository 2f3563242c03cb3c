/** Reports -> JSON or text. Commands return an Outcome; main.ts hands it here. The only writer to stdout. */
import type { Env } from "./env.ts";

export const SCHEMA_VERSION = 1;

export interface Outcome {
  exitCode: number;
  /** The JSON document (without schema_version; added here). Keys are snake_case, units as suffixes. */
  json: Record<string, unknown>;
  /** The same records rendered for people. Written to stdout without --json. */
  text: string;
  /**
   * With --quiet, the value a script captures (download's local dir), printed on stdout even then;
   * everything else is silent when all is well.
   */
  quietText?: string;
  /** With --quiet and a non-zero exit: what went wrong, for stderr (default: the text). */
  errorText?: string;
}

export async function render(env: Env, outcome: Outcome, asJson: boolean, quiet = false): Promise<void> {
  if (quiet && !asJson) {
    // A cron line that worked prints nothing (no mail); one that did not says only what went wrong.
    if (outcome.exitCode !== 0) {
      for (const line of (outcome.errorText ?? outcome.text).split("\n")) if (line) env.log.error(line);
    } else if (outcome.quietText) {
      await env.writeStdout(outcome.quietText.endsWith("\n") ? outcome.quietText : outcome.quietText + "\n");
    }
    return;
  }
  if (asJson) {
    await env.writeStdout(
      JSON.stringify({ schema_version: SCHEMA_VERSION, ...outcome.json }, null, 2) + "\n",
    );
  } else if (outcome.text) {
    await env.writeStdout(outcome.text.endsWith("\n") ? outcome.text : outcome.text + "\n");
  }
}

/** Formats a byte count for people (binary units). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Formats a duration like 6m12s. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, "0")}m`;
}

/** ISO-8601 UTC. */
export const isoTime = (ms: number) => new Date(ms).toISOString();

const MARK: Record<string, string> = { pass: "ok  ", warn: "WARN", fail: "FAIL", skip: "skip" };

/** One line per check-like record: `FAIL gpu.driver  message` and an indented remedy. */
export function renderStatusLines(
  rows: { id: string; status: string; message: string; remedy?: string | null }[],
): string {
  const width = Math.max(0, ...rows.map((r) => r.id.length));
  const out: string[] = [];
  for (const r of rows) {
    out.push(`${MARK[r.status] ?? r.status} ${r.id.padEnd(width)}  ${r.message}`);
    if (r.remedy && (r.status === "fail" || r.status === "warn")) {
      out.push(`     ${" ".repeat(width)}  fix: ${r.remedy}`);
    }
  }
  return out.join("\n");
}

/** "1 warning", "2 warnings", "0 files": counts agree in number. */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

/** Output quoted under a message (a traceback, an installer's last lines): indented, so it reads as one block. */
export function indentBlock(text: string, by = "    "): string {
  return text.split("\n").map((l) => (l ? `${by}${l}` : l)).join("\n");
}
