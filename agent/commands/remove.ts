/** `mlagent remove PROFILE`: delete a profile's venv (and models), a dry run unless --yes. */
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import { EXIT, usageError } from "../core/errors.ts";
import { formatBytes, type Outcome } from "../core/output.ts";
import { removeProfile, type RemoveReport } from "../remove/mod.ts";

const HELP = `Usage: mlagent remove PROFILE [--models] [--yes] [--no-wait] [--timeout S] [--root DIR] [--json]

Removes PROFILE's venv, and with --models its model directories. Without --yes it is a dry run: it says
what it would remove and how many bytes that frees, and changes nothing.

With --yes it takes the venv's lock exclusively, as install does: a running \`mlagent run\` of the profile
(which holds it shared) or an install is waited for, and with --no-wait mlagent exits 3 naming the holder
(host and pid) instead. The venv is renamed aside to a hidden directory in one step, then deleted, so
nothing ever sees half a venv as ready; a removal killed half-way is finished by the next one.

A model directory that another installed profile also uses is kept (and said so). A venv or model
directory owned by another user is refused with exit 2: it is theirs, and deleting it would break their jobs.

Options:
  --models      also remove the profile's model directories (each under its own lock, like the venv)
  --yes         remove; without it, a dry run
  --no-wait     exit 3 at once when a run or an install holds the venv or a model
  --timeout S   wait at most S seconds for such a holder (default 1800)
  --root DIR    venv root (default MLAGENT_ROOT, else $XDG_DATA_HOME/mlagent/venvs)
  --json        one JSON document (schemas/remove.schema.json)

Environment: MLAGENT_ROOT, MLAGENT_MODELS_DIR, MLAGENT_PROFILE_PATH, MLAGENT_LOCK_DIR.

Exit codes: 0 removed (or dry run), 1 failed or timed out waiting, 2 bad input (unknown profile, no venv,
another user's venv), 3 held by a run or install and --no-wait.`;

export const removeCommand: Command = {
  name: "remove",
  help: HELP,
  async run(env, argv): Promise<Outcome> {
    const { values, positionals } = parseCommandArgs("remove", argv, {
      models: { type: "boolean" },
      yes: { type: "boolean" },
      "no-wait": { type: "boolean" },
      timeout: { type: "string" },
      root: { type: "string" },
    });
    if (positionals.length !== 1) {
      throw usageError(
        positionals.length
          ? `remove: one PROFILE expected, got ${positionals.length}`
          : "remove: PROFILE missing",
        "usage: mlagent remove PROFILE [--models] [--yes]",
      );
    }
    const timeout = parseNumberFlag("remove", "timeout", values.timeout);
    const report = await removeProfile(env, {
      ref: positionals[0],
      root: values.root,
      models: values.models ?? false,
      yes: values.yes ?? false,
      lock: { noWait: values["no-wait"], timeoutMs: timeout === undefined ? undefined : timeout * 1000 },
    });
    return { exitCode: EXIT.ok, json: { ...report }, text: renderText(report) };
  },
};

function renderText(r: RemoveReport): string {
  const verb = r.dry_run ? "would remove" : "removed";
  const lines: string[] = [];
  if (r.venv.exists) lines.push(`${verb} venv ${r.venv.path} (${formatBytes(r.venv.bytes)})`);
  else lines.push(`no venv at ${r.venv.path}`);
  for (const l of r.leftovers) lines.push(`${verb} ${l} (left by an interrupted removal)`);
  for (const m of r.models) {
    if (m.action === "remove") lines.push(`${verb} model ${m.repo} ${m.local_dir} (${formatBytes(m.bytes)})`);
    else if (m.action === "keep") lines.push(`kept model ${m.repo} ${m.local_dir}: ${m.reason}`);
    else lines.push(`model ${m.repo}: nothing at ${m.local_dir}`);
  }
  lines.push(
    r.dry_run
      ? `dry run: ${formatBytes(r.freed_bytes)} would be freed; pass --yes to remove`
      : `freed ${formatBytes(r.freed_bytes)}${
        r.waited_ms >= 1000 ? ` (waited ${Math.round(r.waited_ms / 1000)} s for running jobs)` : ""
      }`,
  );
  return lines.join("\n");
}
