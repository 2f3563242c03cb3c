import assert from "node:assert/strict";
import { parseNumberFlag } from "../../agent/commands/args.ts";
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
