/**
 * A profile installed from a file is known by name afterwards: status, verify, the prologue and install
 * itself find it through the venv's record, and say when the file changed or is gone.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { FIXTURES, installVars, tempDir } from "../support/env.ts";
import { writeFakeBin } from "../support/fake_bin.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { testProfile } from "../support/node_states.ts";

Deno.test("a profile installed by path works by name in status, verify, prologue and install, and says when its file changed or went", async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using tmp = await tempDir("mlagent-bypath-");
  await Deno.mkdir(`${tmp.path}/bin`);
  await writeFakeBin(`${tmp.path}/bin`, "nvidia-smi", {
    stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  await writeFakeBin(`${tmp.path}/bin`, "dmesg", { stdout: "" });
  const vars = {
    ...installVars(tmp.path, index.url),
    MLAGENT_STATE_DIR: `${tmp.path}/state`,
    PATH: `${tmp.path}/bin:${Deno.env.get("PATH")}`,
  };
  const file = `${tmp.path}/elsewhere/mine.json`;
  await Deno.mkdir(`${tmp.path}/elsewhere`);
  const stages = [{ name: "one", packages: ["mla-gamma==1.0"] }];
  await Deno.writeTextFile(file, JSON.stringify(testProfile("mine", { stages })));
  const run = (argv: string[]) => runMlagent(argv, { env: vars, timeoutMs: 120_000 });

  await t.step("install by path records the file in the venv's state", async () => {
    const r = await run(["install", file, "--no-models"]);
    assert.equal(r.code, 0, r.stderr);
    const state = JSON.parse(await Deno.readTextFile(`${vars.MLAGENT_ROOT}/mine/.mlagent/state.json`));
    assert.equal(state.plan.profile_source, file);
  });

  await t.step("then status, verify, the prologue and install work by name", async () => {
    const s = await run(["status", "mine", "--json"]);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.json<{ profiles: { ready: boolean }[] }>().profiles[0].ready, true);
    assert.equal((await run(["verify", "mine"])).code, 0);
    const p = await run(["prologue", "--profile", "mine", "--json"]);
    assert.equal(
      p.json<{ checks: { id: string; status: string }[] }>().checks.find((c) => c.id === "venv.ready")
        ?.status,
      "pass",
      p.stdout,
    );
    const i = await run(["install", "mine", "--no-models", "--json"]);
    assert.equal(i.code, 0, i.stderr);
    assert.equal(i.json<{ action: string }>().action, "none");
  });

  await t.step("a changed file makes the venv outdated and says so", async () => {
    await Deno.writeTextFile(file, JSON.stringify(testProfile("mine", { stages, description: "edited" })));
    const s = await run(["status", "mine", "--json"]);
    // The description is not an install input: the venv stays ready, and nothing is said.
    assert.equal(s.code, 0);
    assert.doesNotMatch(s.stderr, /changed since/);
    await Deno.writeTextFile(
      file,
      JSON.stringify(testProfile("mine", { stages: [{ name: "one", packages: ["mla-beta==1.0"] }] })),
    );
    const s2 = await run(["status", "mine", "--json"]);
    assert.equal(s2.code, 1);
    assert.match(s2.stderr, /profile "mine" \(.*mine\.json\) changed since its venv was built/);
    assert.equal(
      s2.json<{ profiles: { venv: { condition: string } }[] }>().profiles[0].venv.condition,
      "outdated",
    );
  });

  await t.step("a file that is gone is bad input naming it", async () => {
    await Deno.remove(file);
    const s = await run(["status", "mine"]);
    assert.equal(s.code, 2);
    assert.match(
      s.stderr,
      /profile "mine" was installed from .*elsewhere\/mine\.json, which cannot be read now/,
    );
  });
});
