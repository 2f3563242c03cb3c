/**
 * Help that tells the whole truth: every flag a command's parser takes is in its help (or its subcommands'),
 * and every MLAGENT_* variable the code reads is in the README. Read from the modules and sources, not by
 * spawning: the command table is the same one main.ts dispatches with.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../../agent/commands/mod.ts";
import { COMMON_OPTIONS } from "../../agent/commands/args.ts";
import { REPO_ROOT } from "../support/env.ts";

/** The option names of every `{ type: "boolean" | "string" }` entry in a command's source. */
function parserFlags(source: string): string[] {
  const flags = new Set<string>();
  for (const m of source.matchAll(/^\s*"?([a-z][a-z0-9-]*)"?: \{ type: "(?:boolean|string)"/gm)) {
    flags.add(m[1]);
  }
  return [...flags];
}

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* sources(path);
    else if (e.name.endsWith(".ts")) yield path;
  }
}

Deno.test("every flag a command's parser takes is in its --help", async () => {
  const missing: string[] = [];
  for (const entry of COMMANDS) {
    const command = await entry.load();
    const help = [command.help, ...Object.values(command.subcommands ?? {})].join("\n");
    const source = await Deno.readTextFile(`${REPO_ROOT}/agent/commands/${entry.name}.ts`);
    const flags = parserFlags(source);
    assert.ok(flags.length > 0 || entry.name === "profiles", `${entry.name}: no flags found in its source`);
    for (const flag of flags) {
      if (flag in COMMON_OPTIONS) continue;
      if (!new RegExp(`--${flag}(?![a-z-])`).test(help)) missing.push(`mlagent ${entry.name} --${flag}`);
    }
  }
  assert.deepEqual(missing, [], "flags the parser takes but --help does not mention");
});

Deno.test("the top-level help names the options every command takes", async () => {
  const { mainHelp } = await import("../../agent/cli.ts");
  const help = mainHelp(COMMANDS);
  for (const flag of Object.keys(COMMON_OPTIONS)) assert.match(help, new RegExp(`--${flag}\\b`));
});

Deno.test("every MLAGENT_* variable the code reads is documented in the README", async () => {
  const readme = await Deno.readTextFile(`${REPO_ROOT}/README.md`);
  const used = new Map<string, string>();
  for (const dir of ["agent", "checks"]) {
    for await (const path of sources(`${REPO_ROOT}/${dir}`)) {
      const text = await Deno.readTextFile(path);
      for (const m of text.matchAll(/\bMLAGENT_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        if (!used.has(m[0])) used.set(m[0], path.slice(REPO_ROOT.length + 1));
      }
    }
  }
  const undocumented = [...used].filter(([name]) => !readme.includes(name)).map(([n, where]) =>
    `${n} (${where})`
  );
  assert.deepEqual(undocumented, [], "variables read by mlagent but missing from the README");
});
