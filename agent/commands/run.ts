/** `mlagent run PROFILE -- COMMAND...`: a command in the profile's venv, its models named, held against removal. */
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import { writeJsonAtomic } from "../core/atomic.ts";
import type { Env } from "../core/env.ts";
import { failed, fromSystemError, MlagentError, usageError } from "../core/errors.ts";
import type { Outcome } from "../core/output.ts";
import { absolute, venvDir as venvDirOf } from "../core/paths.ts";
import { schedulerJob } from "../core/proc.ts";
import { resolveProfile } from "../install/recorded.ts";
import { runInVenv, timesOf } from "../run/mod.ts";

const HELP =
  `Usage: mlagent run PROFILE [--install] [--no-wait] [--timeout S] [--json-status FILE] [--root DIR] -- COMMAND [ARGS...]

Runs COMMAND in PROFILE's venv, as a batch job script would: its stdin, stdout and stderr are mlagent's
(mlagent's own messages go to stderr only), and its exit code is mlagent's.

Before the command starts, mlagent takes a shared hold on the venv and on each model directory, then checks
that the profile is ready, as \`mlagent status PROFILE\` judges it (venv ready for the current profile, every
pinned package's files present, every model complete). Not ready: exit 1 naming what is wrong, and the fix.
While the command runs, \`install --force\`, \`remove\` and \`models rm\` wait for it (or, with their --no-wait,
refuse). If mlagent itself is killed, the command keeps the holds while it runs; once it is gone, they are
stale and the next one to take the lock removes them.

The command sees:
  VIRTUAL_ENV, PATH          the venv, and its bin first on PATH (PYTHONHOME is removed)
  MLAGENT_PROFILE            the profile's name
  MLAGENT_VENV               the venv's directory
  MLAGENT_MODELS_DIR         the models root
  MLAGENT_MODEL_<NAME>       each model's directory; NAME is the repo id upper-cased, every run of other
                             characters than A-Z, 0-9 made one _ (tencent/HunyuanVideo-I2V ->
                             MLAGENT_MODEL_TENCENT_HUNYUANVIDEO_I2V)
  HF_HOME, HF_HUB_OFFLINE=1  huggingface_hub finds what is on disk and never reaches out
  MLAGENT_LOCK_TOKEN         keeps the hold while the command (or what it starts) runs
CUDA_VISIBLE_DEVICES and every other variable are left as they are. \`mlagent env PROFILE\` prints the same.

Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to mlagent are passed to the command
(Ctrl-C and Ctrl-\\ on a terminal reach it directly). A command killed by signal N exits 128+N, as in a shell.

Options:
  --install           install or repair the profile first (mlagent install PROFILE, under its lock), then run
  --no-wait           exit 3 at once when an install or remove holds the venv, instead of waiting
  --timeout S         wait at most S seconds for such a holder (default 1800)
  --json-status FILE  write a JSON record of the run there when it ends, atomically (profile, venv, command,
                      exit_code, signal, started_at, ended_at, duration_ms, waited_ms, ...;
                      schemas/run.schema.json); also when the profile was not ready
  --root DIR          venv root (default MLAGENT_ROOT, else $XDG_DATA_HOME/mlagent/venvs)
--json is refused: stdout is the command's. Use --json-status FILE.

Environment: MLAGENT_ROOT, MLAGENT_MODELS_DIR, MLAGENT_PROFILE_PATH, HF_HOME, MLAGENT_LOCK_DIR.

Exit codes: the command's own; 128+N when it died of signal N; 126 found but not executable; 127 not found;
1 the profile is not ready (or --install failed); 2 bad input (unknown profile, no -- COMMAND);
3 held by an install or remove and --no-wait.`;

export const runCommand: Command = {
  name: "run",
  help: HELP,
  async run(env, argv): Promise<Outcome> {
    const dd = argv.indexOf("--");
    const own = dd === -1 ? argv : argv.slice(0, dd);
    const command = dd === -1 ? [] : argv.slice(dd + 1);
    const { values, positionals } = parseCommandArgs("run", own, {
      install: { type: "boolean" },
      "no-wait": { type: "boolean" },
      timeout: { type: "string" },
      "json-status": { type: "string" },
      root: { type: "string" },
    });
    if (values.json) {
      throw usageError("run: --json would mix with the command's stdout", "use --json-status FILE");
    }
    if (positionals.length !== 1) {
      throw usageError(
        positionals.length ? `run: one PROFILE expected, got ${positionals.length}` : "run: PROFILE missing",
        "usage: mlagent run PROFILE -- COMMAND [ARGS...]",
      );
    }
    if (dd === -1 || command.length === 0) {
      throw usageError(
        dd === -1 ? "run: no -- before the command" : "run: no command after --",
        `usage: mlagent run ${positionals[0]} -- COMMAND [ARGS...]`,
      );
    }
    const timeout = parseNumberFlag("run", "timeout", values.timeout);
    const statusFile = values["json-status"] !== undefined ? absolute(env, values["json-status"]) : null;
    const started = env.now();
    const record: Record<string, unknown> = {
      ok: false,
      profile: positionals[0],
      venv: null,
      command,
      installed: false,
      exit_code: null,
      signal: null,
      waited_ms: 0,
      command_duration_ms: null,
      host: env.hostname(),
      job_id: schedulerJob(env)?.job_id ?? null,
      error: null,
    };
    try {
      const { profile } = await resolveProfile(env, positionals[0], values.root);
      const venvDir = venvDirOf(env, profile.name, values.root);
      record.profile = profile.name;
      record.venv = venvDir;
      if (values.install) {
        // Loaded only when asked for: a plain run starts without the installer's modules.
        const { install } = await import("../install/mod.ts");
        const report = await install(env, {
          profile: positionals[0],
          root: values.root,
          noWait: values["no-wait"],
        });
        record.installed = true;
        if (!report.ok) {
          throw failed(
            `run: install of ${profile.name} did not finish: ${
              report.models.filter((m) => !m.ok).map((m) => `model ${m.repo} failed`).join(", ") ||
              "see above"
            }`,
            `mlagent install ${profile.name}`,
          );
        }
      }
      const r = await runInVenv(env, {
        profile,
        venvDir,
        command,
        noWait: values["no-wait"] ?? false,
        timeoutMs: timeout === undefined ? undefined : timeout * 1000,
      });
      Object.assign(record, {
        ok: r.exitCode === 0,
        exit_code: r.exitCode,
        signal: r.signal,
        waited_ms: r.waitedMs,
        command_duration_ms: r.commandMs,
        error: r.error
          ? { code: r.exitCode === 126 || r.exitCode === 127 ? "cannot-run" : "failed", message: r.error }
          : null,
      });
      if (statusFile) await writeStatus(env, statusFile, record, started);
      return { exitCode: r.exitCode, json: {}, text: "" };
    } catch (caught) {
      const e = fromSystemError(caught) ?? caught;
      if (statusFile && e instanceof MlagentError) {
        Object.assign(record, { exit_code: e.exitCode, error: { code: e.code, message: e.message } });
        await writeStatus(env, statusFile, record, started);
      }
      throw e;
    }
  },
};

async function writeStatus(env: Env, file: string, record: Record<string, unknown>, started: number) {
  const doc = { schema_version: 1, ...record, ...timesOf(started, env.now()) };
  try {
    await writeJsonAtomic(env, file, doc);
  } catch (e) {
    env.log.error(`run: cannot write --json-status ${file}: ${e instanceof Error ? e.message : e}`);
  }
}
