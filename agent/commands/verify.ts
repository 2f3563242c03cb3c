/** `mlagent verify PROFILE`: is the profile's venv whole, do its verify steps pass, are its models complete. */
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import { exitFor, usageError } from "../core/errors.ts";
import { formatBytes, type Outcome, plural, renderStatusLines } from "../core/output.ts";
import { resolveProfile } from "../install/recorded.ts";
import { verifyProfile, type VerifyReport } from "../verify.ts";
import { modelProblemWords } from "../status/mod.ts";

const HELP = `Usage: mlagent verify PROFILE [--deep] [--root DIR] [--timeout S] [--json]

Proves that the venv and the models mlagent installed for PROFILE are still what it installed, without
changing anything. Each part is reported, and none is skipped because another failed:
  venv      ready for the current profile, and every pinned package present at its pin with every file
            its RECORD lists at its recorded size (with --deep: also at its recorded sha256)
  steps     the profile's verify steps, run in the venv (GPU steps only where a GPU is present)
  models    every expected file of each model present at its size (with --deep: re-hashed, git blob sha1
            for small files, sha256 for large ones)

Run it from cron to find damage before a job does; \`mlagent install PROFILE\` repairs a damaged venv by
reinstalling only the damaged packages, and fetches what a model lacks.

Options:
  --deep        hash every file (minutes for a large venv or model: progress on stderr)
  --root DIR    venv root (default MLAGENT_ROOT, else $XDG_DATA_HOME/mlagent/venvs)
  --timeout S   how long to wait for nvidia-smi when a verify step needs a GPU (default 15)
  --json        one JSON document on stdout

Environment: MLAGENT_ROOT, MLAGENT_MODELS_DIR, MLAGENT_PROFILE_PATH.

Exit codes: 0 all hold, 1 something does not (each part says what), 2 unknown profile or bad flag.`;

export const verifyCommand: Command = {
  name: "verify",
  help: HELP,
  async run(env, argv): Promise<Outcome> {
    const { values, positionals } = parseCommandArgs("verify", argv, {
      deep: { type: "boolean" },
      root: { type: "string" },
      timeout: { type: "string" },
    });
    if (positionals.length !== 1) {
      throw usageError("verify: give exactly one PROFILE", "see: mlagent verify --help");
    }
    const timeoutS = parseNumberFlag("verify", "timeout", values.timeout, { min: 0.1 }) ?? 15;
    const { profile } = await resolveProfile(env, positionals[0], values.root);
    let lastShown = -1;
    const report = await verifyProfile(env, profile, {
      root: values.root,
      deep: values.deep ?? false,
      probeTimeoutMs: Math.round(timeoutS * 1000),
      onProgress: (what, done, total) => {
        // A percent at a time: a cron log shows life, a terminal is not flooded.
        const pct = total ? Math.floor((100 * done) / total) : 100;
        if (pct === lastShown) return;
        lastShown = pct;
        if (pct % 10 === 0) {
          env.log.info(`verify ${profile.name}: hashing ${what}: ${pct}% (${done}/${total})`);
        }
      },
    });
    return { exitCode: exitFor(report.ok), json: { ...report }, text: renderText(report) };
  },
};

function renderText(r: VerifyReport): string {
  const rows: { id: string; status: string; message: string; remedy?: string | null }[] = [];
  rows.push({
    id: "venv",
    status: r.venv.ready ? "pass" : "fail",
    message: `${r.venv.path}: ${r.venv.condition}: ${r.venv.message}`,
    remedy: r.venv.ready ? null : `mlagent install ${r.profile}`,
  });
  for (const s of r.steps) {
    rows.push({
      id: `step ${s.name}`,
      status: s.skipped ? "skip" : s.ok ? "pass" : "fail",
      message: s.skipped
        ? "needs a GPU; none on this node"
        : s.ok
        ? `passed in ${s.duration_ms} ms`
        : `${s.failure}`,
      remedy: s.ok
        ? null
        : "see the output below; `mlagent install --force " + r.profile + "` rebuilds the venv",
    });
  }
  for (const m of r.models) {
    const what = modelProblemWords(m, 3);
    rows.push({
      id: `model ${m.repo}`,
      status: m.complete ? "pass" : "fail",
      message: m.complete
        ? `${plural(m.files, "file")}, ${formatBytes(m.bytes)} in ${m.local_dir}`
        : `${m.local_dir}: ${what}`,
      remedy: m.complete ? null : `mlagent install ${r.profile} (fetches what is missing)`,
    });
  }
  const out = [renderStatusLines(rows)];
  for (const s of r.steps) {
    if (!s.ok && s.output_tail) {
      out.push(
        `--- step ${s.name} output:`,
        ...s.output_tail.split("\n").map((l) => `    ${l}`),
      );
    }
  }
  out.push(
    `mlagent verify ${r.profile}: ${r.ok ? "ok" : "FAILED"}${r.deep ? " (deep)" : ""} in ${r.duration_ms} ms`,
  );
  return out.join("\n");
}
