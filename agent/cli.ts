/**
 * argv -> a command and its arguments. The command table is passed in (main.ts hands it over), so this
 * module and agent/commands/ never import each other; a command's module is loaded only when it runs or
 * shows its help, so `mlagent --version` and a no-op install load nothing they do not use.
 */
import type { Env } from "./core/env.ts";
import { EXIT, usageError } from "./core/errors.ts";
import { closestMatch } from "./core/did_you_mean.ts";
import type { Outcome } from "./core/output.ts";

export const VERSION = "0.1.0";

/** A command's module: its help and how it runs. Its name and one-line summary live in the table. */
export interface Command {
  name: string;
  /** Full help text for `mlagent NAME --help`. */
  help: string;
  /** Help for `mlagent NAME SUB --help`, by subcommand (commands with subcommands). */
  subcommands?: Record<string, string>;
  run(env: Env, argv: string[]): Promise<Outcome>;
}

/** A row of the command table: what `mlagent --help` lists, and how to load the rest. */
export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export function mainHelp(table: readonly CommandEntry[]): string {
  const width = Math.max(...table.map((c) => c.name.length));
  return [
    `mlagent ${VERSION}: make a GPU node ready for a model`,
    "",
    "Usage: mlagent <command> [options]",
    "",
    "Commands:",
    ...table.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Options for every command:",
    "  --json         one JSON document on stdout",
    "  -v, --verbose  log every command line mlagent runs (stderr)",
    "  -q, --quiet    nothing when all is well (cron); only errors otherwise",
    "  --no-progress  no progress lines (they are redrawn on a terminal, every 30 s or 10% in a log)",
    "  -h, --help     help for the command",
    "",
    `Exit codes: ${EXIT.ok} ok, ${EXIT.failed} the job failed, ${EXIT.usage} usage or bad input, ` +
    `${EXIT.lockBusy} lock held by another owner (--no-wait), ${EXIT.interrupted} interrupted (Ctrl-C).`,
    "The prologue maps its outcome to the scheduler's codes: see `mlagent prologue --help`.",
    "",
    "Run `mlagent <command> --help` for a command's options.",
  ].join("\n");
}

export type Invocation =
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "command"; command: Command; argv: string[] };

const GLOBAL_FLAGS = new Set(["--json", "--verbose", "-v", "--quiet", "-q", "--no-progress"]);

/** Picks the command and loads it; its own options are parsed by the command. */
export async function dispatch(argv: string[], table: readonly CommandEntry[]): Promise<Invocation> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    if (first === "help" && rest[0]) {
      return { kind: "help", text: (await findCommand(table, rest[0]).load()).help };
    }
    return { kind: "help", text: mainHelp(table) };
  }
  if (first === "--version" || first === "-V") return { kind: "version" };
  if (first.startsWith("-")) {
    if (GLOBAL_FLAGS.has(first)) {
      // Global flags before the command: move them after it.
      const inv = await dispatch(rest, table);
      if (inv.kind === "command") inv.argv.unshift(first);
      return inv;
    }
    throw usageError(`unknown option "${first}"`, "see: mlagent --help");
  }
  const command = await findCommand(table, first).load();
  if (rest.includes("--help") || rest.includes("-h")) {
    const dd = rest.indexOf("--");
    const h = Math.max(rest.indexOf("--help"), rest.indexOf("-h"));
    if (dd === -1 || h < dd) {
      const sub = rest[0] && !rest[0].startsWith("-") ? command.subcommands?.[rest[0]] : undefined;
      return { kind: "help", text: sub ?? command.help };
    }
  }
  return { kind: "command", command, argv: rest };
}

function findCommand(table: readonly CommandEntry[], name: string): CommandEntry {
  const entry = table.find((c) => c.name === name);
  if (!entry) {
    const near = closestMatch(name, table.map((c) => c.name));
    throw usageError(
      `unknown command "${name}"${near ? `; did you mean "${near}"?` : ""}`,
      `commands: ${table.map((c) => c.name).join(", ")}; see: mlagent --help`,
    );
  }
  return entry;
}
