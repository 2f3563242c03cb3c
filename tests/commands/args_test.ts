import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { parseCommandArgs, parseNumberFlag } from "../../agent/commands/args.ts";
import { MlagentError } from "../../agent/core/errors.ts";
import { numberVar } from "../../agent/core/vars.ts";
import { hermeticVars, testEnv } from "../support/env.ts";

Deno.test("parseNumberFlag() takes plain decimals only: 0x10, 1e3, Infinity and spaces are usage errors", () => {
  const ok: [string, number][] = [["16", 16], ["0.5", 0.5], ["0", 0], ["3600", 3600]];
  for (const [v, want] of ok) assert.equal(parseNumberFlag("t", "timeout", v), want, v);
  for (const v of ["0x10", "1e3", "Infinity", " 5", "5 ", "", "-1", "ten", "1_000", "0b11"]) {
    assert.throws(
      () => parseNumberFlag("t", "timeout", v),
      (e) => e instanceof MlagentError && e.exitCode === 2 && e.message.includes(`--timeout`),
      JSON.stringify(v),
    );
  }
  assert.throws(() => parseNumberFlag("t", "parallel", "2.5", { integer: true }), MlagentError);
});

Deno.test("numberVar() reads a variable's number or refuses it naming the variable", () => {
  const env = (v: string | undefined) => testEnv({ vars: hermeticVars({ MLAGENT_XID_WINDOW_S: v }) });
  assert.equal(numberVar(env(undefined), "MLAGENT_XID_WINDOW_S", 3600), 3600);
  assert.equal(numberVar(env(""), "MLAGENT_XID_WINDOW_S", 3600), 3600);
  assert.equal(numberVar(env("60"), "MLAGENT_XID_WINDOW_S", 3600), 60);
  assert.throws(
    () => numberVar(env("0x10"), "MLAGENT_XID_WINDOW_S", 3600),
    (e) =>
      e instanceof MlagentError && /MLAGENT_XID_WINDOW_S must be a number >= 0, got "0x10"/.test(e.message),
  );
});

const OPTIONS = {
  root: { type: "string" },
  include: { type: "string", multiple: true },
  force: { type: "boolean" },
  out: { type: "string", short: "o" },
} as const;

Deno.test("parseCommandArgs() reads what node:util parseArgs (strict) reads, for every shape of argument", () => {
  const cases: string[][] = [
    [],
    ["p"],
    ["--root", "/r", "p"],
    ["--root=/r", "p", "--json"],
    ["--root=", "p"],
    ["--root=--x"],
    ["-vq", "p"],
    ["-h"],
    ["-o", "f"],
    ["-ofile"],
    ["-vofile"],
    ["--include", "a", "--include=b", "--include", "c"],
    ["--root", "/a", "--root", "/b"],
    ["p", "--", "--json", "-v", "x"],
    ["-", "p"],
    ["--force", "--no-progress", "--verbose", "--quiet", "--help", "--json"],
    ["--root", "-"],
  ];
  const node = (argv: string[]) =>
    parseArgs({
      args: argv,
      options: {
        json: { type: "boolean" },
        verbose: { type: "boolean", short: "v" },
        quiet: { type: "boolean", short: "q" },
        "no-progress": { type: "boolean" },
        help: { type: "boolean", short: "h" },
        ...OPTIONS,
      },
      allowPositionals: true,
      strict: true,
    });
  for (const argv of cases) {
    const ours = parseCommandArgs("t", argv, OPTIONS);
    const theirs = node(argv);
    assert.deepEqual(
      { values: { ...ours.values }, positionals: ours.positionals },
      { values: { ...theirs.values }, positionals: theirs.positionals },
      JSON.stringify(argv),
    );
  }
});

Deno.test("parseCommandArgs() refuses what strict parseArgs refuses, with one line naming the flag", () => {
  const refused: [string[], RegExp][] = [
    [["--frobnicate"], /^t: unknown option "--frobnicate"$/],
    [["--roots", "/r"], /^t: unknown option "--roots" \(did you mean --root\?\)$/],
    [["--jsn"], /did you mean --json\?/],
    [["-x"], /^t: unknown option "-x"$/],
    [["-vx"], /unknown option "-x"/],
    [["--root"], /^t: --root needs a value$/],
    [["-o"], /^t: -o needs a value$/],
    [["--root", "--json"], /--root needs a value, got the option "--json"/],
    [["--force=yes"], /^t: --force takes no value$/],
    [["--__proto__"], /unknown option "--__proto__"/],
    [["--constructor=1"], /unknown option "--constructor"/],
  ];
  for (const [argv, message] of refused) {
    assert.throws(
      () => parseCommandArgs("t", argv, OPTIONS),
      (e) =>
        e instanceof MlagentError && e.exitCode === 2 && message.test(e.message) &&
        e.hint === "see: mlagent t --help",
      JSON.stringify(argv),
    );
  }
  assert.throws(
    () => parseCommandArgs("t", ["stray"], OPTIONS, { allowPositionals: false }),
    (e) => e instanceof MlagentError && /^t: unexpected argument "stray"$/.test(e.message),
  );
  assert.deepEqual(parseCommandArgs("t", ["--", "x"], OPTIONS).positionals, ["x"]);
});
