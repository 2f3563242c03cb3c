/** `mlagent doctor`: checks the node (GPU, driver, CUDA, Python, disk, TMPDIR, installers), optionally for a profile. */
import { checkJson, runDoctor } from "../../checks/mod.ts";
import { writeJsonAtomic } from "../core/atomic.ts";
import type { Command } from "../cli.ts";
import { exitFor } from "../core/errors.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import type { Env } from "../core/env.ts";
import { isoTime, type Outcome, plural, renderStatusLines, SCHEMA_VERSION } from "../core/output.ts";
import { stateDir, venvRoot } from "../core/paths.ts";
import { resolveProfile } from "../install/recorded.ts";
import { doctorVerdictFile } from "../status/doctor.ts";
import type { Profile } from "../profiles/types.ts";
import { untrustedDirProblem } from "../core/trust.ts";

const HELP = `Usage: mlagent doctor [--profile NAME|FILE] [--root DIR] [--timeout S] [--json]

Checks this node and says what to fix: GPU and driver (nvidia-smi, /proc/driver/nvidia/version), GPU health
(ERR!, uncorrectable ECC, pending page retirement/row remapping, MIG, persistence), CUDA toolkit (nvcc) and
driver compatibility, Python interpreters (version, Python.h, venv, ensurepip), free disk, TMPDIR, cache
placement (network filesystems, hard link or copy) and installers (uv, pip).

Without --profile, a missing GPU is a warning (a CPU login node is normal). With --profile, each check is
judged against the profile: GPU required or not, its CUDA wheel variants, its Python constraint, whether it
builds extensions (headers and nvcc), its disk need.

Options:
  --profile NAME|FILE  judge the node for this profile (a built-in name or a path to a .json file)
  --root DIR           venv root to check for space and filesystem (default MLAGENT_ROOT)
  --timeout S          seconds each probe (nvidia-smi, nvcc, python) may take (default 10)
  --json               one JSON document: {ok, checks: [{id, status, message, remedy}], facts: {...}}

The verdict is kept in MLAGENT_STATE_DIR: a plain doctor in last-doctor.json (the node's verdict that
\`mlagent status\` and its Prometheus metrics show), doctor --profile P in last-doctor.P.json.

Environment: MLAGENT_ROOT, MLAGENT_CACHE_DIR, MLAGENT_INSTALLER (uv|pip), MLAGENT_PYTHON (judge the
interpreter install will use), MLAGENT_CUDA_VARIANT (force a wheel variant), CUDA_HOME/CUDA_PATH,
PYENV_ROOT, TMPDIR, MLAGENT_STATE_DIR.

Exit codes: 0 no check failed (warnings allowed), 1 a check failed, 2 bad input (unknown profile, bad flag).`;

export const doctorCommand: Command = {
  name: "doctor",
  help: HELP,
  run: runDoctorCommand,
};

async function runDoctorCommand(env: Env, argv: string[]): Promise<Outcome> {
  const { values } = parseCommandArgs("doctor", argv, {
    profile: { type: "string" },
    root: { type: "string" },
    timeout: { type: "string" },
  }, { allowPositionals: false });
  const timeoutS = parseNumberFlag("doctor", "timeout", values.timeout, { min: 0.1 }) ?? 10;
  const profile: Profile | null = values.profile
    ? (await resolveProfile(env, values.profile, values.root)).profile
    : null;
  const started = env.now();
  const report = await runDoctor({
    env,
    profile,
    venvRoot: venvRoot(env, values.root),
    probeTimeoutMs: Math.round(timeoutS * 1000),
  });
  const json = {
    ok: report.ok,
    profile: profile?.name ?? null,
    host: env.hostname(),
    checked_at: isoTime(started),
    duration_ms: env.now() - started,
    checks: report.checks.map(checkJson),
    facts: report.facts,
  };
  await recordVerdict(env, json, profile?.name ?? null);
  const counts = (s: string) => report.checks.filter((c) => c.status === s).length;
  const text = [
    renderStatusLines(report.checks),
    "",
    `${report.ok ? "ok" : "FAILED"}: ${counts("pass")} passed, ${plural(counts("warn"), "warning")}, ${
      counts("fail")
    } failed, ${counts("skip")} skipped${profile ? ` (profile ${profile.name})` : ""}`,
  ].join("\n");
  return { exitCode: exitFor(report.ok), json, text };
}

/**
 * The last verdict for `mlagent status`; best effort, a read-only state dir never fails the doctor. A plain
 * `doctor` judges the node and is what status and the Prometheus node verdict show; `doctor --profile P`
 * judges the node for P and is kept apart (last-doctor.P.json), so a profile's needs never paint the node.
 */
async function recordVerdict(env: Env, json: Record<string, unknown>, profile: string | null): Promise<void> {
  try {
    const dir = stateDir(env);
    const untrusted = untrustedDirProblem(env, dir);
    if (untrusted) {
      env.log.warn(`doctor: not recording the verdict in ${dir}: ${untrusted}`);
      return;
    }
    await env.fs.mkdir(dir, { recursive: true });
    await writeJsonAtomic(env, `${dir}/${doctorVerdictFile(profile)}`, {
      schema_version: SCHEMA_VERSION,
      ...json,
    });
  } catch (e) {
    env.log.debug(`doctor: could not record the verdict: ${e instanceof Error ? e.message : e}`);
  }
}
