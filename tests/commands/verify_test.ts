/**
 * `mlagent verify` on a real install: a venv built by real pip from the local index and a model fetched
 * from the local Hub, then damaged the ways users damage them, checked by the spawned CLI.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { installVars, tempDir } from "../support/env.ts";
import { smallRepo } from "../support/hf_server.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { testProfile } from "../support/node_states.ts";

interface Report {
  ok: boolean;
  venv: { condition: string; message: string; integrity: { mode: string } | null };
  steps: { name: string; ok: boolean; failure: string | null; output_tail: string | null }[];
  models: { complete: boolean; missing: string[]; corrupt: string[] }[];
}

Deno.test("verify proves a ready install, and names a deleted file, a same-size edit (--deep), a failing step and a missing model file", async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using hub = smallRepo({ lfsSize: 64 * 1024 });
  await using tmp = await tempDir("mlagent-verify-");
  const vars: Record<string, string> = {
    ...installVars(tmp.path, index.url),
    HF_ENDPOINT: hub.url,
    HF_HOME: `${tmp.path}/hf`,
    MLAGENT_PROFILE_PATH: tmp.path,
  };
  const profile = testProfile("proof", {
    stages: [{ name: "one", packages: ["mla-beta==1.0"] }],
    verify: [{ name: "imports", code: "import mla_beta, mla_gamma" }],
    models: [{ repo: hub.repo, required_files: ["config.json"] }],
  });
  await Deno.writeTextFile(`${tmp.path}/proof.json`, JSON.stringify(profile));
  const verify = async (...args: string[]) => {
    const r = await runMlagent(["verify", "proof", "--json", ...args], { env: vars, timeoutMs: 120_000 });
    return { r, report: r.json<Report>() };
  };
  const site = async () => {
    for await (const e of Deno.readDir(`${vars.MLAGENT_ROOT}/proof/lib`)) {
      return `${vars.MLAGENT_ROOT}/proof/lib/${e.name}/site-packages`;
    }
    throw new Error("no site-packages");
  };

  await t.step("after install every part holds: exit 0", async () => {
    const i = await runMlagent(["install", "proof", "--json"], { env: vars, timeoutMs: 120_000 });
    assert.equal(i.code, 0, i.stderr);
    const { r, report } = await verify();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(report.ok, true);
    assert.equal(report.venv.condition, "ready");
    assert.equal(report.venv.integrity?.mode, "full");
    assert.deepEqual(report.steps.map((s) => [s.name, s.ok]), [["imports", true]]);
    assert.equal(report.models[0].complete, true);
  });

  await t.step(
    "a same-size edit of a package file passes the size check and fails --deep, naming the file",
    async () => {
      const file = `${await site()}/mla_beta/__init__.py`;
      const text = await Deno.readTextFile(file);
      await Deno.writeTextFile(file, text.replace(/.$/s, text.endsWith("\n") ? "#" : "\n"));
      assert.equal((await verify()).r.code, 0, "stat-only check cannot see a same-size edit");
      const { r, report } = await verify("--deep");
      assert.equal(r.code, 1, r.stderr);
      assert.equal(report.venv.condition, "damaged");
      assert.match(report.venv.message, /mla_beta\/__init__\.py does not match the hash its RECORD gives/);
      await Deno.writeTextFile(file, text);
    },
  );

  await t.step(
    "a deleted dependency module fails the verify step with its traceback, reported beside the venv",
    async () => {
      await Deno.remove(`${await site()}/mla_gamma`, { recursive: true });
      const { r, report } = await verify();
      assert.equal(r.code, 1);
      const step = report.steps[0];
      assert.equal(step.ok, false);
      assert.match(step.output_tail ?? "", /ModuleNotFoundError: No module named 'mla_gamma'/);
      // mla-gamma is a dependency, not a pin: the venv check passes, the step is what catches it.
      assert.equal(report.venv.condition, "ready");
      const text = await runMlagent(["verify", "proof"], { env: vars, timeoutMs: 120_000 });
      assert.match(text.stdout, /--- step imports output:\n {4}.*\n/);
      assert.match(text.stdout, /mlagent verify proof: FAILED/);
    },
  );

  await t.step("a missing model file is named", async () => {
    await Deno.remove(`${tmp.path}/models/${hub.repo}/config.json`);
    const { r, report } = await verify();
    assert.equal(r.code, 1);
    assert.deepEqual(report.models[0].missing, ["config.json"]);
  });

  await t.step("an unknown profile is bad input (exit 2)", async () => {
    const r = await runMlagent(["verify", "no-such-profile"], { env: vars });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no-such-profile/);
  });
});
