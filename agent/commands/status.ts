/** `mlagent status`: venvs, models, cache, locks and the last doctor verdict; JSON or Prometheus for cron. */
import { writeFileAtomic } from "../core/atomic.ts";
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import type { Env } from "../core/env.ts";
import { exitFor, failed, usageError } from "../core/errors.ts";
import { formatBytes, formatDuration, type Outcome, plural } from "../core/output.ts";
import { NODE_FILE_SUFFIX, nodeFilePath } from "../fleet/paths.ts";
import { resolveProfile } from "../install/recorded.ts";
import { statusMetrics } from "../status/prometheus.ts";
import { gatherStatus, modelProblemWords, type StatusReport, type VenvReport } from "../status/mod.ts";

const HELP =
  `Usage: mlagent status [PROFILE...] [--root DIR] [--json] [--format text|json|prometheus] [--output FILE|DIR/]

Reports, without changing anything and without the network:
  node      host, boot id, scheduler job id (LSB_JOBID / SLURM_JOB_ID)
  venvs     every venv under the root: ready, installing (owner alive), installing-dead-owner, failed,
            outdated (its profile changed since it was built), interpreter-gone, corrupt-state, no-state,
            damaged (a pinned package gone, at another version, or missing files); the overview checks each
            pinned package's dist-info only ("listing"), a PROFILE named checks every file its RECORD lists
  profiles  for each PROFILE named: its venv and its models (complete, or which files are missing/partial)
  cache     the installer cache: path, filesystem, size, last heal
  locks     held and stale locks (node-local lock dir and beside the venvs)
  doctor    the last \`mlagent doctor\` verdict on this node and when it ran

Options:
  --root DIR          venv root (default MLAGENT_ROOT, else $XDG_DATA_HOME/mlagent/venvs)
  --timeout S         deadline for the whole report (default 10): a part on a hung filesystem is reported
                      as timed out (venv condition "unreadable") instead of hanging the command
  --json              one JSON document (same as --format json)
  --format F          text (default), json, or prometheus: node_exporter textfile-collector metrics
                      (mlagent_venv_ready{profile}, mlagent_gpu_count, mlagent_gpu_healthy, ECC and remapped-row
                      gauges from the last doctor run, mlagent_cache_bytes, mlagent_cache_corrupt_entries,
                      mlagent_locks_stale, mlagent_cache_last_heal_timestamp_seconds, ...)
  --output FILE       write the report there atomically (temp file + rename) instead of stdout; for
                      --format prometheus point it into the textfile collector dir, e.g.
                      /var/lib/node_exporter/textfile/mlagent.prom. A directory (or FILE ending in /)
                      gets HOST.json (HOST.prom) inside, for \`mlagent fleet DIR\`; {host} in FILE
                      becomes this host's name

Environment: MLAGENT_ROOT, MLAGENT_STATE_DIR (last doctor verdict), MLAGENT_CACHE_DIR, MLAGENT_MODELS_DIR,
MLAGENT_LOCK_DIR, MLAGENT_PROFILE_PATH.

Exit codes: 0 every PROFILE named is ready (venv ready for the current profile, models complete; always 0
when none is named), 1 one is not, 2 bad input (unknown profile, bad flag).`;

export const statusCommand: Command = {
  name: "status",
  help: HELP,
  run: runStatusCommand,
};

async function runStatusCommand(env: Env, argv: string[]): Promise<Outcome> {
  const { values, positionals } = parseCommandArgs("status", argv, {
    root: { type: "string" },
    format: { type: "string" },
    output: { type: "string" },
    timeout: { type: "string" },
  });
  const format = values.format ?? (values.json ? "json" : "text");
  if (!["text", "json", "prometheus"].includes(format)) {
    throw usageError(`status: unknown --format "${format}"`, "use --format text, json or prometheus");
  }
  if (values.json && format === "prometheus" && !values.output) {
    throw usageError(
      "status: --json and --format prometheus both want stdout",
      "add --output FILE for the metrics",
    );
  }
  const profiles = [];
  for (const name of positionals) profiles.push((await resolveProfile(env, name, values.root)).profile);
  const timeoutS = parseNumberFlag("status", "timeout", values.timeout, { min: 0.1 }) ?? 10;
  const report = await gatherStatus(env, {
    profiles,
    root: values.root,
    timeoutMs: Math.round(timeoutS * 1000),
  });
  const json = reportJson(report);
  const exitCode = exitFor(report.ok);
  const body = format === "prometheus"
    ? statusMetrics(report)
    : format === "json"
    ? JSON.stringify({ schema_version: 1, ...json }, null, 2) + "\n"
    : renderText(report);
  if (values.output) {
    const path = await nodeFilePath(
      env,
      values.output,
      format === "prometheus" ? NODE_FILE_SUFFIX.prometheus : NODE_FILE_SUFFIX.status,
    );
    try {
      await writeFileAtomic(env, path, body);
    } catch (e) {
      throw failed(
        `status: cannot write ${path}: ${e instanceof Error ? e.message : e}`,
        "create the directory first, or point --output at a writable place (the textfile collector's dir)",
      );
    }
    return { exitCode, json: { ...json, output: path }, text: `wrote ${format} status to ${path}` };
  }
  // --json is rendered by main.ts from `json`; prometheus and text go out as text.
  return { exitCode, json, text: format === "json" ? body.trimEnd() : body };
}

/** The JSON document: the report as gathered, with lock owners cut to what a reader acts on. */
export function reportJson(r: StatusReport): Record<string, unknown> {
  return {
    ok: r.ok,
    generated_at: r.generated_at,
    duration_ms: r.duration_ms,
    root: r.root,
    node: r.node,
    venvs: r.venvs,
    profiles: r.profiles,
    cache: r.cache,
    locks: r.locks.map((l) => ({
      name: l.name,
      path: l.path,
      mode: l.mode,
      status: l.status,
      reason: l.reason,
      owner: l.owner
        ? { host: l.owner.host, pid: l.owner.pid, purpose: l.owner.purpose, acquired_at: l.owner.acquired_at }
        : null,
    })),
    doctor: { ...r.doctor, facts: undefined },
    timed_out: r.timed_out,
  };
}

const MARK: Record<string, string> = {
  ready: "ok  ",
  installing: "... ",
  outdated: "WARN",
  "no-state": "??  ",
  missing: "--  ",
};

function venvLine(v: VenvReport): string {
  return `  ${MARK[v.condition] ?? "FAIL"} ${v.name.padEnd(24)} ${v.condition.padEnd(22)} ${v.message}`;
}

function renderText(r: StatusReport): string {
  const out: string[] = [];
  const n = r.node;
  out.push(
    `node ${n.host}${n.boot_id ? ` boot ${n.boot_id.slice(0, 8)}` : ""}${
      n.job_id ? ` ${n.scheduler} job ${n.job_id}` : ""
    }`,
  );
  out.push(`venvs under ${r.root}:`);
  if (r.venvs.length === 0) out.push("  (none)");
  for (const v of r.venvs) out.push(venvLine(v));
  for (const p of r.profiles) {
    out.push(`profile ${p.name}: ${p.ready ? "ready" : "NOT READY"}`);
    if (!r.venvs.some((v) => v.path === p.venv.path)) out.push(venvLine(p.venv));
    for (const m of p.models) {
      const what = m.complete
        ? `complete (${plural(m.files, "file")}, ${formatBytes(m.bytes)})`
        : modelProblemWords(m, 5);
      out.push(`  ${m.complete ? "ok  " : "FAIL"} model ${m.repo}  ${what}  ${m.local_dir}`);
    }
  }
  const c = r.cache;
  out.push(
    `cache ${c.path || "(unknown)"}: ${c.exists ? "present" : "not created yet"}${
      c.filesystem ? ` on ${c.filesystem}${c.network ? " (network filesystem)" : ""}` : ""
    }${c.bytes !== null ? `, ${formatBytes(c.bytes)}` : ""}${
      c.corrupt_entries ? `, ${c.corrupt_entries} corrupt entries` : ""
    }${c.last_heal_at ? `, last heal ${c.last_heal_at}` : ""}${c.problem ? ` (${c.problem})` : ""}`,
  );
  const stale = r.locks.filter((l) => l.status.startsWith("stale"));
  out.push(`locks: ${r.locks.length - stale.length} held, ${stale.length} stale`);
  for (const l of r.locks) {
    out.push(
      `  ${l.status.padEnd(14)} ${l.name}${
        l.owner ? `  ${l.owner.host} pid ${l.owner.pid}` : ""
      }  [${l.reason}]`,
    );
  }
  const d = r.doctor;
  if (d.state === "missing" || d.state === "corrupt") out.push(`doctor: ${d.problem}`);
  else {
    out.push(
      `doctor: ${d.ok ? "ok" : "FAILED"} (mlagent doctor) ${d.checked_at}${
        d.age_ms !== null ? ` (${formatDuration(d.age_ms)} ago)` : ""
      }${d.failed.length ? `; failed: ${d.failed.join(", ")}` : ""}${
        d.warned.length ? `; warnings: ${d.warned.join(", ")}` : ""
      }`,
    );
  }
  return out.join("\n");
}
