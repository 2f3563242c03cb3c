/** The environment run and env build, its quoting for sh and fish, and how a command that cannot run is judged. */
import assert from "node:assert/strict";
import {
  cannotRun,
  modelVariable,
  type ProfileEnvironment,
  quoteFish,
  quoteSh,
  renderShell,
} from "../../agent/run/mod.ts";
import { profileEnvironment } from "../../agent/run/mod.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { testProfile } from "../support/node_states.ts";

Deno.test("modelVariable() names each model after its repo id", () => {
  const rows: [string, string, string][] = [
    ["an org and a dashed name", "tencent/HunyuanVideo-I2V", "MLAGENT_MODEL_TENCENT_HUNYUANVIDEO_I2V"],
    ["dots and runs of punctuation", "Wan-AI/Wan2.2-I2V-A14B", "MLAGENT_MODEL_WAN_AI_WAN2_2_I2V_A14B"],
    ["underscores kept as one", "a__b/c", "MLAGENT_MODEL_A_B_C"],
  ];
  for (const [why, repo, want] of rows) assert.equal(modelVariable(repo), want, why);
});

Deno.test("profileEnvironment() refuses two models that would share one variable", () => {
  const env = testEnv({ vars: hermeticVars({ MLAGENT_MODELS_DIR: "/m", HOME: "/h" }) });
  const p = testProfile("two", { models: [{ repo: "a/b-c" }, { repo: "a/b.c" }] });
  assert.throws(() => profileEnvironment(env, p, "/v/two"), /would both be named by MLAGENT_MODEL_A_B_C/);
});

const HOSTILE = [
  "/plain/path",
  "/path with spaces/x",
  '/it\'s/a "quote"',
  "/back\\slash/$HOME/`date`/$(id)",
  "/new\nline",
  "*?[glob]",
  "",
];

Deno.test("the sh rendering survives any value: sh reads back exactly what was set", async () => {
  const pe: ProfileEnvironment = {
    profile: "p",
    venv: "/v",
    set: HOSTILE.map((value, i) => ({ name: `V${i}`, value })),
    unset: ["PYTHONHOME"],
    models: [],
  };
  const script = `${renderShell(pe, "sh")}
for i in ${HOSTILE.map((_, i) => i).join(" ")}; do eval "printf '%s\\0' \\"\\$V$i\\""; done
printf '%s' "\${PYTHONHOME-unset}"`;
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    env: { PYTHONHOME: "/elsewhere", PATH: Deno.env.get("PATH")! },
    clearEnv: true,
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const parts = new TextDecoder().decode(out.stdout).split("\0");
  assert.deepEqual(parts.slice(0, HOSTILE.length), HOSTILE);
  assert.equal(parts.at(-1), "unset");
});

Deno.test("quoteSh() and quoteFish() leave plain words alone and quote the rest", () => {
  assert.equal(quoteSh("/opt/venv/bin"), "/opt/venv/bin");
  assert.equal(quoteSh("it's"), `'it'\\''s'`);
  assert.equal(quoteFish("/opt/venv/bin"), "/opt/venv/bin");
  assert.equal(quoteFish("it's \\ x"), `'it\\'s \\\\ x'`);
});

Deno.test("renderShell() for fish keeps PATH a list and removes PYTHONHOME", () => {
  const pe: ProfileEnvironment = {
    profile: "p",
    venv: "/v w",
    set: [{ name: "VIRTUAL_ENV", value: "/v w" }, { name: "PATH", value: "/v w/bin:/usr/bin" }],
    unset: ["PYTHONHOME"],
    models: [],
  };
  assert.equal(
    renderShell(pe, "fish"),
    "set -gx VIRTUAL_ENV '/v w'\nset -gx PATH '/v w/bin' /usr/bin\nset -e PYTHONHOME\n",
  );
});

Deno.test("cannotRun() judges a command as a shell would: 127 not found, 126 not executable", async () => {
  await using d = await tempDir();
  await Deno.writeTextFile(`${d.path}/plain`, "echo\n");
  await Deno.writeTextFile(`${d.path}/tool`, "#!/bin/sh\n");
  await Deno.chmod(`${d.path}/tool`, 0o755);
  const env = testEnv({ cwd: d.path });
  const rows: [string, string, string, number | null][] = [
    ["found on PATH", "tool", d.path, null],
    ["nothing by that name", "nope", d.path, 127],
    ["on PATH but not executable", "plain", d.path, 126],
    ["a path to a missing file", `${d.path}/nope`, "", 127],
    ["a path to a directory", d.path, "", 126],
    ["relative to the caller's directory", "./tool", "", null],
    ["empty", "", d.path, 127],
  ];
  for (const [why, program, path, want] of rows) {
    assert.equal(cannotRun(env, program, path)?.code ?? null, want, why);
  }
});
