/**
 * Flag parsing every command shares, with mlagent's usage errors (exit 2, naming the flag and the command).
 *
 * The rules are node:util parseArgs's in strict mode (`--name value`, `--name=value`, `-v`, `-vq`, `--` ends
 * the options, a lone `-` is an argument, the last of a repeated flag wins unless it is `multiple`), written
 * here because loading node:util, and the Node layer under it, cost every command about 20 ms of start-up
 * (`deno task bench startup`).
 */
import { usageError } from "../core/errors.ts";
import { closestMatch } from "../core/did_you_mean.ts";

export interface OptionSpec {
  type: "boolean" | "string";
  short?: string;
  multiple?: boolean;
}
type Options = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S["type"] extends "boolean"
  ? (S["multiple"] extends true ? boolean[] : boolean)
  : (S["multiple"] extends true ? string[] : string);

export type ParsedValues<O extends Options> = { [K in keyof O]?: ValueOf<O[K]> };

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  json: { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
  quiet: { type: "boolean", short: "q" },
  "no-progress": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

/** Parses a command's own arguments: unknown flags, missing values and stray arguments are usage errors. */
export function parseCommandArgs<O extends Options>(
  command: string,
  argv: string[],
  options: O,
  { allowPositionals = true }: { allowPositionals?: boolean } = {},
): { values: ParsedValues<typeof COMMON_OPTIONS & O>; positionals: string[] } {
  const specs: Options = { ...COMMON_OPTIONS, ...options };
  const byShort = new Map(Object.entries(specs).flatMap(([name, s]) => s.short ? [[s.short, name]] : []));
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  const bad = (what: string) => usageError(`${command}: ${what}`, `see: mlagent ${command} --help`);
  const unknown = (flag: string) => {
    const near = flag.startsWith("--") ? closestMatch(flag.slice(2), Object.keys(specs)) : null;
    return bad(`unknown option "${flag}"${near ? ` (did you mean --${near}?)` : ""}`);
  };
  const set = (name: string, value: string | boolean) => {
    if (specs[name].multiple) values[name] = [...((values[name] as unknown[] | undefined) ?? []), value];
    else values[name] = value;
  };
  const positional = (arg: string) => {
    if (!allowPositionals) throw bad(`unexpected argument "${arg}"`);
    positionals.push(arg);
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      argv.slice(i + 1).forEach(positional);
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional(arg);
      continue;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq === -1 ? undefined : eq);
      const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
      if (!spec) throw unknown(eq === -1 ? arg : arg.slice(0, eq));
      if (spec.type === "boolean") {
        if (eq !== -1) throw bad(`--${name} takes no value`);
        set(name, true);
      } else if (eq !== -1) {
        set(name, arg.slice(eq + 1));
      } else {
        set(name, valueAfter(argv, i, `--${name}`, bad));
        i++;
      }
      continue;
    }
    // Short flags, possibly grouped (-vq); a string flag takes the rest of the group or the next argument.
    for (let j = 1; j < arg.length; j++) {
      const name = byShort.get(arg[j]);
      if (!name) throw unknown(`-${arg[j]}`);
      if (specs[name].type === "boolean") {
        set(name, true);
        continue;
      }
      if (j + 1 < arg.length) set(name, arg.slice(j + 1));
      else {
        set(name, valueAfter(argv, i, `-${arg[j]}`, bad));
        i++;
      }
      break;
    }
  }
  return { values: values as ParsedValues<typeof COMMON_OPTIONS & O>, positionals };
}

/** The value after a string flag: missing, or another flag where a value belongs, is a usage error. */
function valueAfter(argv: string[], i: number, flag: string, bad: (what: string) => Error): string {
  const next = argv[i + 1];
  if (next === undefined) throw bad(`${flag} needs a value`);
  // "--root --json" is a forgotten value far more often than a directory named "--json".
  if (next.startsWith("-") && next !== "-") {
    throw bad(`${flag} needs a value, got the option "${next}" (write ${flag}=${next} if that is the value)`);
  }
  return next;
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
