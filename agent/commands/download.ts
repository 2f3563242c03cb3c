/** `mlagent download REPO`: a Hugging Face repo into a local dir, resumably and verified. */
import type { Command } from "../cli.ts";
import type { Env } from "../core/env.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import {
  downloadRepo,
  type DownloadReport,
  validateRepoId,
  validateRevision,
  verifyLocalModel,
  type VerifyResult,
} from "../download/mod.ts";
import { exitFor, usageError } from "../core/errors.ts";
import { formatBytes, formatDuration } from "../core/output.ts";
import { modelsRoot } from "../core/paths.ts";

const HELP =
  `Usage: mlagent download REPO [--revision REV] [--include GLOB]... [--exclude GLOB]... [--local-dir DIR | --cache]
                        [--parallel N] [--stall-timeout S] [--verify [--deep]] [--json] [-q]

Downloads a Hugging Face model repo (owner/name) into a local dir that \`hf download --local-dir\` also
understands (or, with --cache, into the Hugging Face hub cache that \`hf download\` and
\`from_pretrained("owner/name")\` read), and prints that dir on stdout (so \`dir=$(mlagent download REPO)\`
works, as with \`hf download\`); the summary goes to stderr. A cut or killed download resumes from the bytes already on disk; every file is
checked against its size and hash before it is put in place. Two jobs downloading into one dir take turns
(the second finds the files done).

Options:
  --revision REV        branch, tag or commit (default: main)
  --include GLOB        only files matching GLOB (repeatable; * matches across /)
  --exclude GLOB        skip files matching GLOB (repeatable)
  --local-dir DIR       target dir (default: $MLAGENT_MODELS_DIR/OWNER/NAME)
  --cache               the hub cache instead: $HF_HUB_CACHE (default $HF_HOME/hub)/models--OWNER--NAME,
                        blobs/ named by hash, snapshots/COMMIT/ linking to them, refs/REV; prints the
                        snapshot dir
  --parallel N          files fetched at once (default 8)
  --stall-timeout S     seconds without a byte before a transfer is aborted and resumed (default 60)
  --verify              only check what is on disk (offline), the same check status and prologue make:
                        every listed file there, at its size, with its hash on record; list what is not
  --deep                with --verify: also re-hash every file (sha256, or git blob sha1 for small files)
  --json                one JSON document on stdout
  -q, --quiet           no summary; errors only

Environment:
  HF_ENDPOINT           the Hub (default https://huggingface.co)
  HF_TOKEN              access token (else the file HF_TOKEN_PATH, default $HF_HOME/token, cleaned as hf
                        cleans it); sent only to the Hub host, never printed
  HF_HUB_OFFLINE=1      no network: verify what is present and list what is missing
  HF_HUB_CACHE, HF_HOME where --cache puts the model (as huggingface_hub places its cache)
  MLAGENT_MODELS_DIR, MLAGENT_STALL_TIMEOUT_S, MLAGENT_DOWNLOAD_BACKOFF_MS, MLAGENT_DOWNLOAD_RANGE_MIN_MIB

Exit codes: 0 done (or complete, with --verify); 1 failed, or files missing or unproven (--verify, offline);
2 bad repo id, revision, flag or token, a hostile listing or redirect target, a target that is a file, a
.cache that leads out of the dir.`;

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
      deep: { type: "boolean" },
      cache: { type: "boolean" },
    });
    if (positionals.length !== 1) {
      throw usageError("download: give exactly one REPO (owner/name)", "see: mlagent download --help");
    }
    const repo = positionals[0];
    const bad = validateRepoId(repo);
    if (bad) throw usageError(`download: ${bad}`, "a repo id looks like tencent/HunyuanVideo-I2V");
    const badRev = values.revision === undefined ? null : validateRevision(values.revision);
    if (badRev) throw usageError(`download: ${badRev}`, "a revision is a branch, a tag or a commit hash");
    if (values.deep && !values.verify) {
      throw usageError("download: --deep goes with --verify", "mlagent download REPO --verify --deep");
    }
    const parallel = parseNumberFlag("download", "parallel", values.parallel, { min: 1, integer: true });
    const stall = parseNumberFlag("download", "stall-timeout", values["stall-timeout"], { min: 1 });
    if (values.cache && values["local-dir"] !== undefined) {
      throw usageError(
        "download: --cache and --local-dir name two different targets",
        "give one: --local-dir DIR for a plain dir, --cache for the hub cache",
      );
    }
    const layout = values.cache ? "hub-cache" as const : "local-dir" as const;
    const localDir = values.cache ? undefined : values["local-dir"] ?? `${modelsRoot(env)}/${repo}`;
    if (values.verify) {
      const v = await verifyLocalModel(env, {
        repo,
        revision: values.revision,
        layout,
        localDir,
        include: values.include,
        exclude: values.exclude,
        deep: values.deep ?? false,
      });
      return { exitCode: exitFor(v.complete), json: { ok: v.complete, ...v }, text: renderVerify(v) };
    }
    const report = await downloadRepo(env, {
      repo,
      revision: values.revision,
      include: values.include,
      exclude: values.exclude,
      layout,
      localDir,
      parallel,
      stallTimeoutMs: stall === undefined ? undefined : stall * 1000,
    });
    summarize(env, report);
    // stdout carries the result a script uses: the dir, and only when it holds what was asked for.
    const dir = report.ok ? report.local_dir : "";
    return { exitCode: exitFor(report.ok), json: { ...report }, text: dir, quietText: dir || undefined };
  },
};

function renderVerify(v: Required<VerifyResult>): string {
  return [
    `${v.complete ? "complete" : "INCOMPLETE"}: ${v.repo} in ${v.local_dir} (${v.files} files, ${
      formatBytes(v.bytes)
    }${v.hashed_files ? `, ${v.hashed_files} hashed` : ""})`,
    ...(v.reason ? [`  ${v.reason}`] : []),
    ...v.missing.map((m) => `  missing     ${m}`),
    ...v.partial.map((m) => `  partial     ${m}`),
    ...v.corrupt.map((m) => `  corrupt     ${m}`),
    ...v.unverified.map((m) => `  unverified  ${m}`),
  ].join("\n");
}

/** The summary for people, on stderr: what was fetched, what was reused and what was resumed, in words. */
function summarize(env: Env, r: DownloadReport) {
  if (r.offline) {
    const lines = [
      `${
        r.ok ? "complete" : "INCOMPLETE"
      } (offline, HF_HUB_OFFLINE is set): ${r.repo} in ${r.local_dir}, ${r.files} files`,
      ...(r.reason ? [`  ${r.reason}`] : []),
      ...r.missing.map((m) => `  missing  ${m}`),
      ...r.partial.map((m) => `  partial  ${m}`),
    ];
    if (r.ok) env.log.info(lines.join("\n"));
    else {
      env.log.error(
        [
          ...lines,
          "hint: run it without HF_HUB_OFFLINE where the Hub can be reached to fetch what is missing",
        ]
          .join("\n"),
      );
    }
    return;
  }
  const rate = r.fetched_bytes ? `, ${formatBytes(r.throughput_bytes_per_s)}/s` : "";
  const parts = [
    `fetched ${r.files_fetched} of ${r.files} files (${formatBytes(r.fetched_bytes)} over the network)`,
    r.files_reused
      ? `${r.files_reused} already complete and reused (${formatBytes(r.reused_bytes - r.resumed_bytes)})`
      : "",
    r.files_resumed
      ? `${r.files_resumed} resumed from an earlier run's partial download (${
        formatBytes(r.resumed_bytes)
      } kept, not fetched again)`
      : "",
  ].filter(Boolean);
  env.log.info(
    [
      `downloaded ${r.repo}@${r.revision} (${r.commit?.slice(0, 12)}) into ${r.local_dir}`,
      `  ${parts.join("; ")}`,
      `  ${formatBytes(r.total_bytes)} in all, ${r.retries} ${r.retries === 1 ? "retry" : "retries"}, ${
        formatDuration(r.duration_ms)
      }${rate}`,
    ].join("\n"),
  );
}
