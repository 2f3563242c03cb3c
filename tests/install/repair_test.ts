/**
 * A damaged venv is not ready, and install repairs only what broke. Real venv, real pip, the local index;
 * the damage is what users do to venvs: a package file deleted (a `pip uninstall` gone half-way, a scrubbed
 * scratch disk), a RECORD lost (a half-restored backup).
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { installVars, tempDir } from "../support/env.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { testProfile } from "../support/node_states.ts";
import { checkIntegrity, parseRecord, pinnedDistributions } from "../../agent/install/integrity.ts";
import { testEnv } from "../support/env.ts";

interface Report {
  action: string;
  stages: { name: string; action: string; argv: string[] }[];
}

Deno.test("parseRecord() reads RECORD as CSV: quoted paths with commas, entries without hash or size", () => {
  const text = [
    "mla_beta/__init__.py,sha256=abc,23",
    '"odd,name.py",sha256=def,5',
    '"say ""hi"".txt",,',
    "mla_beta-1.0.dist-info/RECORD,,",
    "../../../bin/tool,sha256=xyz,120",
    "",
  ].join("\r\n");
  assert.deepEqual(parseRecord(text), [
    { path: "mla_beta/__init__.py", hash: "sha256=abc", size: 23 },
    { path: "odd,name.py", hash: "sha256=def", size: 5 },
    { path: 'say "hi".txt', hash: "", size: null },
    { path: "mla_beta-1.0.dist-info/RECORD", hash: "", size: null },
    { path: "../../../bin/tool", hash: "sha256=xyz", size: 120 },
  ]);
});

Deno.test("install repairs a damaged venv by reinstalling only the damaged package, and rebuilds when that cannot work", async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using tmp = await tempDir("mlagent-repair-");
  const vars = installVars(tmp.path, index.url);
  const profile = testProfile("fix", {
    stages: [
      { name: "gamma", packages: ["mla-gamma==1.0"] },
      { name: "beta", packages: ["mla-beta==1.0"] },
    ],
    verify: [{ name: "imports", code: "import mla_beta, mla_gamma" }],
  });
  const file = `${tmp.path}/fix.json`;
  await Deno.writeTextFile(file, JSON.stringify(profile));
  const venv = `${vars.MLAGENT_ROOT}/fix`;
  const mlagent = (args: string[]) => runMlagent(args, { env: vars, timeoutMs: 120_000 });
  const profileFlag = ["--json"];
  const site = async () => {
    for await (const e of Deno.readDir(`${venv}/lib`)) return `${venv}/lib/${e.name}/site-packages`;
    throw new Error("no site-packages");
  };

  await t.step("a fresh install is whole", async () => {
    const r = await mlagent(["install", file, "--no-models", ...profileFlag]);
    assert.equal(r.code, 0, r.stderr);
    const check = await checkIntegrity(testEnv(), venv, pinnedDistributions(profile), "full");
    assert.equal(check.ok, true, JSON.stringify(check.problems));
    assert.ok(check.files >= 4, `checked ${check.files} files`);
  });

  await t.step(
    "a deleted package file: status and the prologue say damaged, naming the package and file",
    async () => {
      await Deno.remove(`${await site()}/mla_beta/__init__.py`);
      const s = await runMlagent(["status", "fix", "--json"], {
        env: { ...vars, MLAGENT_PROFILE_PATH: tmp.path },
      });
      assert.equal(s.code, 1, s.stderr);
      const v = s.json<
        { profiles: { venv: { condition: string; message: string; integrity: { problems: unknown[] } } }[] }
      >()
        .profiles[0].venv;
      assert.equal(v.condition, "damaged");
      assert.match(v.message, /mla-beta: mla_beta\/__init__\.py is missing/);
      assert.deepEqual(v.integrity.problems, [
        { package: "mla-beta", file: "mla_beta/__init__.py", reason: "mla_beta/__init__.py is missing" },
      ]);
      const p = await runMlagent(["prologue", "--profile", "fix", "--json"], {
        env: { ...vars, MLAGENT_PROFILE_PATH: tmp.path, PATH: `/nonexistent:${Deno.env.get("PATH")}` },
      });
      const venvCheck = p.json<{ checks: { id: string; status: string; fault: string; message: string }[] }>()
        .checks.find((c) => c.id === "venv.ready")!;
      assert.equal(venvCheck.status, "fail");
      assert.equal(venvCheck.fault, "job");
      assert.match(venvCheck.message, /damaged: mla-beta/);
    },
  );

  await t.step(
    "install reinstalls only that package (its wheel alone from the index) and the venv is ready",
    async () => {
      const before = index.requests.length;
      const r = await mlagent(["install", file, "--no-models", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const report = r.json<Report>();
      assert.equal(report.action, "repaired");
      assert.deepEqual(report.stages.map((s) => [s.name, s.action]), [
        ["beta", "repaired"],
        ["gamma", "skipped"],
        ["beta", "skipped"],
      ]);
      assert.ok(
        report.stages[0].argv.includes("--force-reinstall") && report.stages[0].argv.includes("--no-deps"),
      );
      const wheels = index.requests.slice(before).filter((q) =>
        q.method === "GET" && q.path.endsWith(".whl")
      );
      assert.ok(wheels.every((q) => q.path.includes("mla_beta-1.0")), JSON.stringify(wheels));
      const s = await runMlagent(["status", "fix", "--json"], {
        env: { ...vars, MLAGENT_PROFILE_PATH: tmp.path },
      });
      assert.equal(s.code, 0, s.stderr);
    },
  );

  await t.step(
    "a lost RECORD cannot be repaired in place (pip cannot uninstall without it): install rebuilds",
    async () => {
      const info = (await Array.fromAsync(Deno.readDir(await site()))).find((e) =>
        e.name.startsWith("mla_gamma-")
      )!;
      await Deno.remove(`${await site()}/${info.name}/RECORD`);
      const r = await mlagent(["install", file, "--no-models", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json<Report>().action, "rebuilt");
      assert.match(r.stderr, /did not repair .*; rebuilding it/);
      const check = await checkIntegrity(testEnv(), venv, pinnedDistributions(profile), "full");
      assert.equal(check.ok, true, JSON.stringify(check.problems));
    },
  );
});
