/** `mlagent env PROFILE`: the environment `mlagent run` gives its command, for a shell or a script. */
import type { Command } from "../cli.ts";
import { parseCommandArgs } from "./args.ts";
import { EXIT, failed, usageError } from "../core/errors.ts";
import type { Outcome } from "../core/output.ts";
import { modelsRoot, venvDir as venvDirOf } from "../core/paths.ts";
import { requireTrustedDir } from "../core/trust.ts";
import { resolveProfile } from "../install/recorded.ts";
import { judgeReadiness, profileEnvironment, renderShell } from "../run/mod.ts";

const HELP = `Usage: mlagent env PROFILE [--format sh|fish|json] [--root DIR]

Prints the environment \`mlagent run PROFILE -- ...\` gives its command (built by the same code): VIRTUAL_ENV,
PATH with the venv's bin first, PYTHONHOME removed, MLAGENT_PROFILE, MLAGENT_VENV, MLAGENT_MODELS_DIR, one
MLAGENT_MODEL_<NAME> per model, HF_HOME and HF_HUB_OFFLINE=1 (see \`mlagent run --help\`).

  eval "$(mlagent env PROFILE)"                 sh, bash, zsh
  mlagent env PROFILE --format fish | source    fish
  mlagent env PROFILE --format json             {"variables": {...}, "unset": [...], "models": [...]}

Every value is quoted for the shell (paths with spaces or quotes survive). Unlike \`run\`, nothing is held:
a job that calls python itself is not protected from \`remove\` (use \`mlagent run\` for that).

A profile that is not ready (as \`mlagent status PROFILE\` judges it) is refused with exit 1 and nothing on
stdout, so \`eval\` never sets up a half-built venv.

Options:
  --format F   sh (default), fish or json (--json is the same as --format json)
  --root DIR   venv root (default MLAGENT_ROOT, else $XDG_DATA_HOME/mlagent/venvs)

Environment: MLAGENT_ROOT, MLAGENT_MODELS_DIR, MLAGENT_PROFILE_PATH, HF_HOME.

Exit codes: 0 printed, 1 the profile is not ready, 2 bad input (unknown profile, bad --format).`;

export const envCommand: Command = {
  name: "env",
  help: HELP,
  async run(env, argv): Promise<Outcome> {
    const { values, positionals } = parseCommandArgs("env", argv, {
      format: { type: "string" },
      root: { type: "string" },
    });
    const format = values.format ?? (values.json ? "json" : "sh");
    if (format !== "sh" && format !== "fish" && format !== "json") {
      throw usageError(`env: unknown --format "${format}"`, "use --format sh, fish or json");
    }
    if (values.json && format !== "json") {
      throw usageError(`env: --json and --format ${format} both want stdout`, "pick one");
    }
    if (positionals.length !== 1) {
      throw usageError(
        positionals.length ? `env: one PROFILE expected, got ${positionals.length}` : "env: PROFILE missing",
        "usage: mlagent env PROFILE [--format sh|fish|json]",
      );
    }
    const { profile } = await resolveProfile(env, positionals[0], values.root);
    const venvDir = venvDirOf(env, profile.name, values.root);
    requireTrustedDir(env, venvDir, "venv");
    if (profile.models.length) requireTrustedDir(env, modelsRoot(env), "models dir");
    const pe = profileEnvironment(env, profile, venvDir);
    const readiness = await judgeReadiness(env, profile, venvDir);
    if (!readiness.ready) {
      throw failed(
        `env: profile ${profile.name} is not ready: ${readiness.problems.join("; ")}`,
        `mlagent install ${profile.name}`,
      );
    }
    const json = {
      ok: true,
      profile: pe.profile,
      venv: pe.venv,
      variables: Object.fromEntries(pe.set.map((v) => [v.name, v.value])),
      unset: pe.unset,
      models: pe.models.map(({ repo, local_dir, layout, variable }) => ({
        repo,
        local_dir,
        layout,
        variable,
      })),
    };
    if (format === "json") {
      // Through main.ts's renderer, or (--format json without --json) as the same document here.
      const text = JSON.stringify({ schema_version: 1, ...json }, null, 2);
      return { exitCode: EXIT.ok, json, text, quietText: text };
    }
    const text = renderShell(pe, format);
    return { exitCode: EXIT.ok, json, text, quietText: text };
  },
};
