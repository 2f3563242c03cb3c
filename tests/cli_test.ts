import assert from "node:assert/strict";
import { dispatch } from "../agent/cli.ts";
import { COMMANDS } from "../agent/commands/mod.ts";
import { MlagentError } from "../agent/core/errors.ts";
import { runMlagent } from "./support/cli.ts";

const route = (argv: string[]) => dispatch(argv, COMMANDS);

Deno.test("dispatch() routes --help, --version and commands", async () => {
  assert.equal((await route([])).kind, "help");
  assert.equal((await route(["--version"])).kind, "version");
  const inv = await route(["--json", "doctor"]);
  assert.ok(inv.kind === "command" && inv.command.name === "doctor" && inv.argv[0] === "--json");
  assert.equal((await route(["lock", "--help"])).kind, "help");
  // --help after "--" belongs to the wrapped command.
  assert.equal((await route(["lock", "run", "x", "--", "cmd", "--help"])).kind, "command");
});

Deno.test("dispatch() rejects unknown commands and options as usage errors", async () => {
  for (const argv of [["bogus"], ["--bogus"]]) {
    await assert.rejects(() => route(argv), (e) => e instanceof MlagentError && e.exitCode === 2, argv[0]);
  }
});

Deno.test("every command in the table loads, under its own name", async () => {
  for (const entry of COMMANDS) assert.equal((await entry.load()).name, entry.name);
});

Deno.test("an unknown command close to a real one gets a did-you-mean", async () => {
  const r = await runMlagent(["instal", "yolo"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr.split("\n")[0], /unknown command "instal"; did you mean "install"\?/);
});

Deno.test("mlagent with an unknown command exits 2 with one line naming it", async () => {
  const r = await runMlagent(["frobnicate"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr.split("\n")[0], /unknown command "frobnicate"/);
  assert.equal(r.stdout, "");
});

Deno.test("mlagent --version and --help exit 0", async () => {
  const v = await runMlagent(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^mlagent \d+\.\d+\.\d+/);
  const h = await runMlagent(["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Exit codes: 0 ok, 1 the job failed, 2 usage/);
});

Deno.test("`mlagent CMD SUB --help` shows that subcommand's usage", async () => {
  const heal = await runMlagent(["cache", "heal", "--help"]);
  assert.equal(heal.code, 0);
  assert.match(heal.stdout, /^Usage: mlagent cache heal \[--dry-run\] \[--max-size SIZE\]/);
  const lint = await runMlagent(["profiles", "lint", "--help"]);
  assert.match(lint.stdout, /^Usage: mlagent profiles lint/);
  const whole = await runMlagent(["cache", "--help"]);
  assert.match(whole.stdout, /^Usage: mlagent cache <info\|heal\|clean>/);
});
