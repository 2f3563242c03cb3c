/** `mlagent download REPO`: a Hugging Face repo into a local dir, resumably and verified. */
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import { downloadRepo, type DownloadReport, verifyLocalModel } from "../download/mod.ts";
import { validateRepoId } from "../download/hub.ts";
import { exitFor } from "../core/errors.ts";
import { usageError } from "../core/errors.ts";
import { formatBytes, formatDuration } from "../core/output.ts";
import { modelsRoot } from "../core/paths.ts";

const HELP = `Usage: mlagent download REPO [options]

Downloads a Hugging Face model repo (owner/name) into a local dir that \`hf download --local-dir\` also
understands. A cut or killed download resumes from the bytes already on disk; every file is checked against
its size and every LFS file against its sha256 before it is put in place. Two jobs downloading into one dir
take turns (the second finds the files done).

Options:
  --revision REV        branch, tag or commit (default: main)
  --include GLOB        only files matching GLOB (repeatable; * matches across /)
  --exclude GLOB        skip files matching GLOB (repeatable)
  --local-dir DIR       target dir (default: $MLAGENT_MODELS_DIR/OWNER/NAME)
  --parallel N          files fetched at once (default 8)
  --stall-timeout S     seconds without a byte before a transfer is aborted and resumed (default 60)
  --verify              only check what is on disk (offline), list what is missing
  --json                one JSON document on stdout

Environment:
  HF_ENDPOINT           the Hub (default https://huggingface.co)
  HF_TOKEN              access token (else $HF_HOME/token); sent only to the Hub host, never printed
  HF_HUB_OFFLINE=1      no network: verify what is present and list what is missing
  MLAGENT_STALL_TIMEOUT_S, MLAGENT_DOWNLOAD_BACKOFF_MS, MLAGENT_DOWNLOAD_RANGE_MIN_MIB

Exit codes: 0 done, 1 failed (or files missing offline), 2 bad repo id / flag / hostile listing / target is a file.`;

export const downloadCommand: Command = {
  name: "download",
  help: HELP,
  async run(env, argv) {
    const { values, positionals } = parseCommandArgs("download", argv, {
      revision: { type: "string" },
      include: { type: "string", multiple: true },
      exclude: { type: "string", multiple: true },
      "local-dir": { type: "string" },
      parallel: { type: "string" },
      "stall-timeout": { type: "string" },
      verify: { type: "boolean" },
    });
    if (positionals.length !== 1) {
      throw usageError("download: give exactly one REPO (owner/name)", "see: mlagent download --help");
    }
    const repo = positionals[0];
    const bad = validateRepoId(repo);
    if (bad) throw usageError(`download: ${bad}`, "a repo id looks like tencent/HunyuanVideo-I2V");
    const parallel = parseNumberFlag("download", "parallel", values.parallel, { min: 1, integer: true });
    const stall = parseNumberFlag("download", "stall-timeout", values["stall-timeout"], { min: 1 });
    const localDir = values["local-dir"] ?? `${modelsRoot(env)}/${repo}`;
    if (values.verify) {
      const v = await verifyLocalModel(env, {
        repo,
        revision: values.revision,
        localDir,
        include: values.include,
        exclude: values.exclude,
        deep: true,
      });
      const lines = [
        `${v.complete ? "complete" : "INCOMPLETE"}: ${repo} in ${v.local_dir} (${v.files} files, ${
          formatBytes(v.bytes)
        })`,
        ...(v.reason ? [`  ${v.reason}`] : []),
        ...v.missing.map((m) => `  missing  ${m}`),
        ...v.partial.map((m) => `  partial  ${m}`),
        ...v.corrupt.map((m) => `  corrupt  ${m}`),
      ];
      return {
        exitCode: exitFor(v.complete),
        json: { ok: v.complete, ...v },
        text: lines.join("\n"),
      };
    }
    const report = await downloadRepo(env, {
      repo,
      revision: values.revision,
      include: values.include,
      exclude: values.exclude,
      localDir,
      parallel,
      stallTimeoutMs: stall === undefined ? undefined : stall * 1000,
    });
    return { exitCode: exitFor(report.ok), json: { ...report }, text: renderReport(report) };
  },
};

function renderReport(r: DownloadReport): string {
  if (r.offline) {
    const head = `${
      r.ok ? "complete" : "INCOMPLETE"
    } (offline): ${r.repo} in ${r.local_dir}, ${r.files} files`;
    return [head, ...r.missing.map((m) => `  missing  ${m}`), ...r.partial.map((m) => `  partial  ${m}`)]
      .join("\n");
  }
  const rate = r.fetched_bytes ? `, ${formatBytes(r.throughput_bytes_per_s)}/s` : "";
  return [
    `downloaded ${r.repo}@${r.revision} (${r.commit?.slice(0, 12)}) into ${r.local_dir}`,
    `  ${r.files} files, ${formatBytes(r.total_bytes)}: fetched ${r.files_fetched} (${
      formatBytes(r.fetched_bytes)
    }), ` +
    `already there ${r.files_reused}, resumed ${r.files_resumed} (${formatBytes(r.reused_bytes)} reused), ` +
    `${r.retries} retries, ${formatDuration(r.duration_ms)}${rate}`,
  ].join("\n");
}
