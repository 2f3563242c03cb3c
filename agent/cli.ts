/** argv -> a command and its options. Usage errors carry exit code 2; commands live in agent/commands/. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { Env } from "./core/env.ts";
import { usageError } from "./core/errors.ts";
import type { Outcome } from "./core/output.ts";
import { COMMANDS } from "./commands/mod.ts";

export const VERSION = "0.1.0";

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full help text for `mlagent NAME --help`. */
  help: string;
  run(env: Env, argv: string[]): Promise<Outcome>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  json: { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

/**
 * parseArgs with mlagent's rules: unknown flags and missing values are usage errors naming the flag.
 * Returns the same shape as node:util parseArgs.
 */
export function parseCommandArgs<O extends Options>(
  command: string,
  argv: string[],
  options: O,
  { allowPositionals = true }: { allowPositionals?: boolean } = {},
) {
  try {
    return parseArgs({
      args: argv,
      options: { ...COMMON_OPTIONS, ...options },
      allowPositionals,
      strict: true,
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // node's messages are long; keep the first sentence and name the command.
    throw usageError(
      `${command}: ${msg.split(". ")[0].replace(/\.$/, "")}`,
      `see: mlagent ${command} --help`,
    );
  }
}

/** Parses a positive number flag like "--timeout 30" (seconds), naming the flag when it is bad. */
export function parseNumberFlag(
  command: string,
  flag: string,
  value: string | undefined,
  { min = 0, integer = false }: { min?: number; integer?: boolean } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n)) || value.trim() === "") {
    throw usageError(
      `${command}: --${flag} must be a ${integer ? "whole " : ""}number >= ${min}, got "${value}"`,
    );
  }
  return n;
}

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `mlagent ${VERSION}: make a GPU node ready for a model`,
    "",
    "Usage: mlagent <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Options for every command:",
    "  --json         one JSON document on stdout",
    "  -v, --verbose  log every command line mlagent runs (stderr)",
    "  -q, --quiet    only warnings and errors on stderr",
    "  -h, --help     help for the command",
    "",
    "Exit codes: 0 ok, 1 the job failed, 2 usage or bad input, 3 lock held by another owner (--no-wait).",
    "The prologue maps its outcome to the scheduler's codes: see `mlagent prologue --help`.",
    "",
    "Run `mlagent <command> --help` for a command's options.",
  ].join("\n");
}

export type Invocation =
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "command"; command: Command; argv: string[] };

/** Picks the command; its own options are parsed by the command. */
export function dispatch(argv: string[]): Invocation {
  const [first, ...rest] = argv;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    if (first === "help" && rest[0]) return { kind: "help", text: findCommand(rest[0]).help };
    return { kind: "help", text: mainHelp() };
  }
  if (first === "--version" || first === "-V") return { kind: "version" };
  if (first.startsWith("-")) {
    if (
      first === "--json" || first === "--verbose" || first === "-v" || first === "--quiet" || first === "-q"
    ) {
      // Global flags before the command: move them after it.
      const inv = dispatch(rest);
      if (inv.kind === "command") inv.argv.unshift(first);
      return inv;
    }
    throw usageError(`unknown option "${first}"`, "see: mlagent --help");
  }
  const command = findCommand(first);
  if (rest.includes("--help") || rest.includes("-h")) {
    const dd = rest.indexOf("--");
    const h = Math.max(rest.indexOf("--help"), rest.indexOf("-h"));
    if (dd === -1 || h < dd) return { kind: "help", text: command.help };
  }
  return { kind: "command", command, argv: rest };
}

function findCommand(name: string): Command {
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    throw usageError(
      `unknown command "${name}"`,
      `commands: ${COMMANDS.map((c) => c.name).join(", ")}`,
    );
  }
  return command;
}
