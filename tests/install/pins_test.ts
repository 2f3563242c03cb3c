/**
 * Pins hold across stages: each stage installs with the earlier stages' exact pins as constraints, a stage
 * that cannot live with one fails naming both sides, and pins that moved anyway stop the venv being ready.
 * Real pip against the local index, whose mla-top -> mla-mid -> mla-base chain moves mla-base the way
 * xfuser -> optimum-quanto moves torch.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { installVars, tempDir } from "../support/env.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { testProfile } from "../support/node_states.ts";
import { driftedPins, findPinConflict, pinHolds, profilePins } from "../../agent/install/pins.ts";
import type { Profile } from "../../agent/profiles/types.ts";

/** pip 23.2's own words for a constraint it cannot satisfy (captured from the test index). */
const PIP_CONFLICT = `Collecting mla-wants-new==1.0
  Downloading http://127.0.0.1:46751/files/mla_wants_new-1.0-py3-none-any.whl (1.1 kB)
INFO: pip is looking at multiple versions of mla-wants-new to determine which version is compatible with other requirements. This could take a while.

The conflict is caused by:
    mla-wants-new 1.0 depends on mla-base>=2.0
    The user requested (constraint) mla-base==1.0

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip attempt to solve the dependency conflict

ERROR: Cannot install mla-wants-new==1.0 because these package versions have conflicting dependencies.
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts
`;

const UV_CONFLICT = `  × No solution found when resolving dependencies:
  ╰─▶ Because mla-wants-new==1.0 depends on mla-base>=2.0 and you require mla-base==1.0, we can conclude that you require mla-wants-new!=1.0.
`;

const PINS = [{ name: "mla-base", version: "1.0", stage: "base" }];

Deno.test("findPinConflict() reads pip's and uv's conflict reports into the pin, its stage and who wanted more", () => {
  const want = {
    package: "mla-base",
    pin: "mla-base==1.0",
    pinned_by_stage: "base",
    required_by: "mla-wants-new",
    required_by_version: "1.0",
    requires: "mla-base>=2.0",
  };
  assert.deepEqual(findPinConflict(PIP_CONFLICT, PINS), want);
  assert.deepEqual(findPinConflict(UV_CONFLICT, PINS), want);
  // A conflict about something no earlier stage pinned is not ours to explain.
  assert.equal(findPinConflict(PIP_CONFLICT, [{ name: "torch", version: "2.4.0", stage: "torch" }]), null);
  assert.equal(findPinConflict("ERROR: No matching distribution found for mla-nope", PINS), null);
});

Deno.test("pinHolds() follows PEP 440 for ==: local labels ignored unless pinned, zero padding, pre-releases exact", () => {
  const rows: [string, string, boolean][] = [
    ["2.4.0", "2.4.0", true],
    ["2.4.0", "2.4.0+cu124", true],
    ["2.4.0+cu124", "2.4.0+cu121", false],
    ["1.0", "1.0.0", true],
    ["2.4.0", "2.6.0", false],
    ["1.0rc1", "1.0", false],
    ["0.2.6", "0.2.6", true],
  ];
  for (const [pin, installed, holds] of rows) {
    assert.equal(pinHolds(pin, installed), holds, `${pin} vs ${installed}`);
  }
});

Deno.test("profilePins() and driftedPins() name the stage whose pin moved", () => {
  const p = testProfile("drift", {
    stages: [
      { name: "torch", packages: ["torch==2.4.0", "torchvision==0.19.0"] },
      {
        name: "xfuser",
        packages: ["xfuser==0.4.0", "clip @ git+https://github.com/openai/CLIP.git@" + "a".repeat(40)],
      },
    ],
  });
  assert.deepEqual(profilePins(p).map((x) => `${x.stage}:${x.name}==${x.version}`), [
    "torch:torch==2.4.0",
    "torch:torchvision==0.19.0",
    "xfuser:xfuser==0.4.0",
  ]);
  const drifted = driftedPins(profilePins(p), {
    "torch": "2.6.0",
    "torchvision": "0.19.0+cu124",
    "xfuser": "0.4.0",
  });
  assert.deepEqual(drifted.map((d) => [d.name, d.installed, d.stage]), [["torch", "2.6.0", "torch"]]);
});

Deno.test("install holds earlier pins across stages, names a conflicting stage, and refuses a venv whose pins moved", async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using tmp = await tempDir("mlagent-pins-");
  const vars = installVars(tmp.path, index.url);
  const file = `${tmp.path}/pins.json`;
  const write = (stages: { name: string; packages: string[] }[], verify: Profile["verify"] = []) =>
    Deno.writeTextFile(file, JSON.stringify(testProfile("pins", { stages, verify })));
  const install = (args: string[] = [], env: Record<string, string> = {}) =>
    runMlagent(["install", file, "--json", "--no-models", ...args], {
      env: { ...vars, ...env },
      timeoutMs: 120_000,
    });
  const state = async () =>
    JSON.parse(await Deno.readTextFile(`${vars.MLAGENT_ROOT}/pins/.mlagent/state.json`));
  const base = { name: "base", packages: ["mla-base==1.0"] };

  await t.step(
    "a later stage whose dependency wants a newer version of an earlier pin keeps the pin",
    async () => {
      await write([base, { name: "top", packages: ["mla-top==1.0"] }]);
      const r = await install();
      assert.equal(r.code, 0, r.stderr);
      const report = r.json<{ packages: Record<string, string>; stages: { argv: string[] }[] }>();
      assert.equal(report.packages["mla-base"], "1.0");
      assert.equal(report.packages["mla-mid"], "1.0", "the resolver took the mla-mid that accepts the pin");
      assert.ok(report.stages[1].argv.includes("-c"), report.stages[1].argv.join(" "));
      assert.ok(!report.stages[0].argv.includes("-c"), "the first stage has nothing to hold");
    },
  );

  await t.step(
    "a stage that cannot live with an earlier pin fails naming the pin, its stage and who wanted more",
    async () => {
      await write([base, { name: "wants", packages: ["mla-wants-new==1.0"] }]);
      const r = await install();
      assert.equal(r.code, 1, r.stderr);
      const err = r.json<{ error: { message: string; conflict: Record<string, string> } }>().error;
      assert.match(
        err.message,
        /stage "wants" conflicts with an earlier pin: mla-wants-new 1\.0 needs mla-base>=2\.0, but stage "base" pinned mla-base==1\.0/,
      );
      assert.equal(err.conflict.pinned_by_stage, "base");
      assert.equal((await state()).status, "failed");
    },
  );

  await t.step(
    "without constraints (MLAGENT_STAGE_CONSTRAINTS=0) the moved pin is caught before ready, the verify step started beside the check stopped",
    async () => {
      // The first verify step starts beside the package listing; a moved pin must stop it, not wait it out.
      await write([base, { name: "top", packages: ["mla-top==1.0"] }], [
        { name: "slow", code: "import time; time.sleep(300)" },
      ]);
      const t0 = Date.now();
      const r = await install(["--force"], { MLAGENT_STAGE_CONSTRAINTS: "0" });
      assert.ok(Date.now() - t0 < 100_000, `the install took ${Date.now() - t0} ms: the verify step ran on`);
      assert.equal(r.code, 1, r.stderr);
      const err = r.json<{ error: { message: string; drifted: unknown[] } }>().error;
      assert.match(
        err.message,
        /pins did not hold after the last stage: mla-base==1\.0 \(stage "base"\) is now 2\.0/,
      );
      assert.deepEqual(err.drifted, [{ package: "mla-base", pin: "1.0", stage: "base", installed: "2.0" }]);
      const st = await state();
      assert.equal(st.status, "failed");
      assert.equal(st.error.kind, "pins");
    },
  );
});
