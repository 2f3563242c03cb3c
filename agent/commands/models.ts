/** `mlagent models`: the model directories under the models root, and removing one. */
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import { badInput, EXIT, usageError } from "../core/errors.ts";
import { formatBytes, type Outcome } from "../core/output.ts";
import { modelsRoot } from "../core/paths.ts";
import { listModels, type ModelDirInfo, removeModelDir, resolveModelRef } from "../models/mod.ts";

const HELP = `Usage: mlagent models <list|rm> [options]

  mlagent models list [--root DIR] [--json]
      Every model directory under the models root (and every one a known profile names, present or not):
      repo, revision, commit, size on disk, whether it is complete (the judgement status and verify give,
      for each using profile's selection of files; for a dir no profile uses, against what was downloaded
      there), and which profiles use it (the search path, built-ins, and those installed from files),
      whether each is installed and ready.
  mlagent models rm MODEL [--yes] [--force] [--no-wait] [--timeout S] [--json]
      Removes a model directory: MODEL is a repo id or its path as \`models list\` shows it. A dry run
      unless --yes. Refused (exit 1) while a profile whose venv is ready needs it, unless --force. Takes
      the dir's lock exclusively, so a download or a \`mlagent run\` using it is waited for (--no-wait:
      exit 3 naming the holder); renamed aside first, then deleted.

Options:
  --yes         (rm) remove; without it, a dry run
  --force       (rm) remove even though a ready profile needs it (its jobs then fail until reinstalled)
  --no-wait     (rm) exit 3 at once when the dir is held
  --timeout S   (rm) wait at most S seconds for a holder (default 1800)
  --root DIR    venv root, to find installed profiles (default MLAGENT_ROOT)
  --json        one JSON document (schemas/models.schema.json)

Environment: MLAGENT_MODELS_DIR (the models root), MLAGENT_ROOT, MLAGENT_PROFILE_PATH, MLAGENT_LOCK_DIR.

Exit codes: 0 ok (list: also when some are incomplete), 1 rm refused (a ready profile needs it) or failed,
2 bad input (no such model dir, a path outside the models root, another user's dir), 3 held and --no-wait.`;

export const modelsCommand: Command = {
  name: "models",
  help: HELP,
  subcommands: { list: HELP, rm: HELP },
  async run(env, argv): Promise<Outcome> {
    const { values, positionals } = parseCommandArgs("models", argv, {
      yes: { type: "boolean" },
      force: { type: "boolean" },
      "no-wait": { type: "boolean" },
      timeout: { type: "string" },
      root: { type: "string" },
    });
    const [sub, ...args] = positionals;
    const root = modelsRoot(env);
    if (sub === "list") {
      if (args.length) throw usageError("models list: no arguments expected", "see: mlagent models --help");
      const models = await listModels(env, values.root);
      return {
        exitCode: EXIT.ok,
        json: { ok: true, models_root: root, models: models.map(modelJson) },
        text: models.length ? models.map(modelLine).join("\n") : `no model directories under ${root}`,
      };
    }
    if (sub === "rm") {
      if (args.length !== 1) {
        throw usageError("models rm: one MODEL expected", "usage: mlagent models rm MODEL [--yes]");
      }
      const known = await listModels(env, values.root);
      const target = resolveModelRef(env, args[0], known);
      // A model dir may hold another (text encoders inside ckpts/): their users need it too.
      const inside = known.filter((k) =>
        k.local_dir === target.local_dir || k.local_dir.startsWith(`${target.local_dir}/`)
      );
      const needing = inside.flatMap((k) => k.profiles).filter((p) => p.ready)
        .filter((p, i, all) => all.findIndex((q) => q.profile === p.profile) === i);
      if (needing.length && !values.force) {
        throw badInputOrRefusal(target, needing.map((p) => p.profile));
      }
      const yes = values.yes ?? false;
      const timeout = parseNumberFlag("models", "timeout", values.timeout);
      const removed = yes
        ? await removeModelDir(env, target.local_dir, "models rm", {
          noWait: values["no-wait"],
          timeoutMs: timeout === undefined ? undefined : timeout * 1000,
        })
        : null;
      const bytes = removed ? removed.bytes : target.bytes;
      const needed = needing.map((p) => p.profile);
      return {
        exitCode: EXIT.ok,
        json: {
          ok: true,
          dry_run: !yes,
          model: modelJson(target),
          removed: removed?.removed ?? false,
          freed_bytes: bytes,
          forced_for: values.force ? needed : [],
        },
        text: [
          ...(needed.length
            ? [`warning: ${needed.join(", ")} need${needed.length > 1 ? "" : "s"} it (--force)`]
            : []),
          yes
            ? `removed ${target.local_dir}: freed ${formatBytes(bytes)}`
            : `would remove ${target.local_dir} (${formatBytes(bytes)}); dry run: pass --yes to remove`,
        ].join("\n"),
      };
    }
    if (sub === undefined) {
      throw usageError("models: missing subcommand (list or rm)", "see: mlagent models --help");
    }
    throw usageError(`models: unknown subcommand "${sub}"`, "subcommands: list, rm");
  },
};

function badInputOrRefusal(target: ModelDirInfo, profiles: string[]) {
  const e = badInput(
    `models rm: ${target.name} is needed by ready profile${profiles.length > 1 ? "s" : ""} ${
      profiles.join(", ")
    }`,
    `remove the profile first (mlagent remove ${profiles[0]} --models --yes), or pass --force`,
    { local_dir: target.local_dir, profiles },
  );
  // Refused, not malformed: the request is sound, the node's state forbids it (exit 1).
  return Object.assign(e, { code: "failed" as const });
}

function modelJson(m: ModelDirInfo) {
  return { ...m };
}

function modelLine(m: ModelDirInfo): string {
  const state = !m.exists ? "MISSING " : m.complete ? "complete" : "INCOMPLETE";
  const users = m.profiles.length
    ? m.profiles.map((p) => `${p.profile}${p.ready ? " (ready)" : p.installed ? " (installed)" : ""}`).join(
      ", ",
    )
    : "no profile";
  const what = `${m.repo ?? "?"}${m.revision ? `@${m.revision}` : ""}`;
  return `${state.padEnd(10)} ${m.name}  ${what}  ${formatBytes(m.bytes)}  used by: ${users}${
    !m.complete && m.reason ? `\n           ${m.reason}` : ""
  }`;
}
