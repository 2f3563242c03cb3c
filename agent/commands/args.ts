/** Flag parsing every command shares: node:util parseArgs with mlagent's usage errors (exit 2, naming the flag). */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { usageError } from "../core/errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  json: { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
  quiet: { type: "boolean", short: "q" },
  "no-progress": { type: "boolean" },
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
  // Plain decimals only: Number() would also take "0x10" (16), "1e3", " 5 " and "Infinity".
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw usageError(
      `${command}: --${flag} must be a ${integer ? "whole " : ""}number >= ${min}, got "${value}"`,
    );
  }
  return n;
}
