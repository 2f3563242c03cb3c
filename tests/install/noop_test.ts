/**
 * A no-op install starts nothing: the interpreter's stamp in state.json stands for starting the venv's
 * Python while its files are unchanged. Every change that could break readiness takes the no-op away:
 * a stamped file touched (Python is started and asked again), the interpreter replaced by one that does
 * not run (rebuilt), a package file damaged (repaired), a pin changed (that stage reinstalled), a state
 * without a stamp (Python is started, as before stamps). Real venv, real pip, the local index.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { FIXTURES, hermeticVars, installVars, tempDir, testEnv } from "../support/env.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { testProfile } from "../support/node_states.ts";
import { install as installInProcess } from "../../agent/install/mod.ts";

interface Report {
  action: string;
  stages: { name: string; action: string }[];
}

/** The command lines a --verbose run logged (mlagent logs each process it starts as "run: ..."). */
const started = (stderr: string) => stderr.split("\n").filter((l) => /^(\S+: )?run: /.test(l.trim()));

Deno.test("a no-op install starts no process while the interpreter's stamp holds, and every change takes the no-op away", async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using tmp = await tempDir("mlagent-noop-");
  const vars = installVars(tmp.path, index.url);
  const write = (stages: { name: string; packages: string[] }[]) =>
    Deno.writeTextFile(
      file,
      JSON.stringify(
        testProfile("quick", { stages, verify: [{ name: "imports", code: "import mla_gamma" }] }),
      ),
    );
  const file = `${tmp.path}/quick.json`;
  await write([{ name: "gamma", packages: ["mla-gamma==1.0"] }]);
  const venv = `${vars.MLAGENT_ROOT}/quick`;
  const install = async (...extra: string[]) => {
    const r = await runMlagent(["install", file, "--json", "--verbose", ...extra], {
      env: vars,
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, r.stderr);
    return { report: r.json<Report>(), stderr: r.stderr };
  };
  const state = async () => JSON.parse(await Deno.readTextFile(`${venv}/.mlagent/state.json`));

  await t.step("the install that writes ready stamps the interpreter it ran", async () => {
    const { report } = await install();
    assert.equal(report.action, "created");
    const stamp = (await state()).interpreter_stamp as Record<string, string>;
    assert.ok(stamp, "no interpreter_stamp in state.json");
    assert.match(stamp[`${venv}/bin/python`], /^link:/);
    assert.match(stamp[`${venv}/pyvenv.cfg`], /^file:/);
    assert.match(stamp[(await state()).plan.python_executable], /^file:/);
  });

  await t.step("a rerun is a no-op that starts no process", async () => {
    const { report, stderr } = await install();
    assert.equal(report.action, "none");
    assert.deepEqual(started(stderr), []);
  });

  await t.step(
    "a stamped file changed: Python is started and asked, and it still runs, so no-op",
    async () => {
      const later = new Date(Date.now() + 5_000);
      await Deno.utime(`${venv}/pyvenv.cfg`, later, later);
      const { report, stderr } = await install();
      assert.equal(report.action, "none");
      assert.match(stderr, /changed since it was stamped; starting it/);
      assert.equal(started(stderr).length, 1, stderr);
      assert.match(started(stderr)[0], /bin\/python -I -c/);
    },
  );

  await t.step("a state written before stamps: Python is started, no-op", async () => {
    const s = await state();
    delete s.interpreter_stamp;
    await Deno.writeTextFile(`${venv}/.mlagent/state.json`, JSON.stringify(s));
    const { report, stderr } = await install();
    assert.equal(report.action, "none");
    assert.equal(started(stderr).length, 1, stderr);
  });

  await t.step(
    "the interpreter replaced by one that does not run: not a no-op, the venv is rebuilt and stamped again",
    async () => {
      await install("--force"); // a stamped venv again
      await Deno.remove(`${venv}/bin/python`);
      await Deno.writeTextFile(`${venv}/bin/python`, "#!/bin/sh\nexit 1\n", { mode: 0o755 });
      const { report, stderr } = await install();
      assert.equal(report.action, "rebuilt");
      assert.match(stderr, /does not run; rebuilding the venv/);
      assert.ok((await state()).interpreter_stamp);
      const again = await install();
      assert.equal(again.report.action, "none");
      assert.deepEqual(started(again.stderr), []);
    },
  );

  await t.step("a package file damaged under a holding stamp: not a no-op, repaired", async () => {
    let site = "";
    for await (const e of Deno.readDir(`${venv}/lib`)) site = `${venv}/lib/${e.name}/site-packages`;
    await Deno.writeTextFile(`${site}/mla_gamma/__init__.py`, "# truncated by a full disk\n");
    const { report } = await install();
    assert.equal(report.action, "repaired");
    assert.equal((await install()).report.action, "none");
  });

  await t.step("a pin changed: not a no-op, the changed stage reinstalled", async () => {
    await write([{ name: "gamma", packages: ["mla-gamma==1.0"] }, {
      name: "beta",
      packages: ["mla-beta==1.0"],
    }]);
    const { report } = await install();
    assert.equal(report.action, "updated");
    assert.deepEqual(report.stages.map((s) => [s.name, s.action]), [["gamma", "skipped"], [
      "beta",
      "installed",
    ]]);
    const again = await install();
    assert.equal(again.report.action, "none");
    assert.deepEqual(started(again.stderr), []);
  });
});

Deno.test("a no-op of a CUDA profile reuses the driver facts while the driver's stamp holds, and asks nvidia-smi again when the kernel module or nvidia-smi changes", async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using tmp = await tempDir("mlagent-noop-gpu-");
  const d = tmp.path;
  // This process's /proc, but with a loaded NVIDIA driver: every entry linked, driver/ ours.
  const proc = `${d}/proc`;
  await Deno.mkdir(`${proc}/driver/nvidia`, { recursive: true });
  for (const e of Deno.readDirSync("/proc")) {
    if (e.name !== "driver") await Deno.symlink(`/proc/${e.name}`, `${proc}/${e.name}`);
  }
  const moduleFile = `${proc}/driver/nvidia/version`;
  // The captured 580 module text at the version the captured nvidia-smi reports (the doctor fails a mismatch).
  const captured = await Deno.readTextFile(`${FIXTURES}/proc/proc_version_580.95.05_open_x86_64.txt`);
  const loaded = captured.replaceAll("580.95.05", "595.58.03");
  await Deno.writeTextFile(moduleFile, loaded);
  const smi = { stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_595.58.03_1xRTX3080.xml` };
  await Deno.mkdir(`${d}/bin`);
  await writeFakeBin(`${d}/bin`, "nvidia-smi", smi);
  const env = testEnv({
    vars: hermeticVars({ ...installVars(d, index.url), PATH: `${d}/bin:${Deno.env.get("PATH")}` }),
    procRoot: proc,
  });
  const file = `${d}/gpu.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(testProfile("gpu", {
      cuda_variants: [{ name: "cu121", cuda: "12.1", index_url: "https://download.pytorch.org/whl/cu121" }],
      stages: [{ name: "gamma", packages: ["mla-gamma==1.0"], index_url: "cuda" }],
    })),
  );
  const install = async () => {
    try {
      return await installInProcess(env, { profile: file, noModels: true });
    } finally {
      env.stopChildren();
    }
  };
  const asked = async () => (await fakeCalls(`${d}/bin`, "nvidia-smi")).length;

  await t.step("the install records the driver facts with the driver's stamp", async () => {
    const r = await install();
    assert.equal(r.action, "created");
    assert.equal(r.cuda_variant, "cu121");
    const state = JSON.parse(await Deno.readTextFile(`${d}/venvs/gpu/.mlagent/state.json`));
    assert.equal(state.driver.driver_version, "595.58.03");
    assert.equal(state.driver.module, loaded);
    assert.match(state.driver.smi, /^file:/);
  });

  await t.step("a rerun is a no-op that does not ask nvidia-smi", async () => {
    const before = await asked();
    const r = await install();
    assert.equal(r.action, "none");
    assert.equal(r.cuda_variant, "cu121");
    assert.equal(await asked(), before);
  });

  await t.step("another kernel module loaded: nvidia-smi is asked again", async () => {
    await Deno.writeTextFile(moduleFile, loaded.replace(/(NVRM version:.*)$/m, "$1 (rebuilt)"));
    const before = await asked();
    const r = await install();
    assert.equal(r.action, "none");
    assert.equal(await asked(), before + 1);
  });

  await t.step("nvidia-smi replaced (a driver upgrade) under the same module: asked again", async () => {
    await Deno.writeTextFile(moduleFile, loaded);
    assert.equal((await install()).action, "none");
    const before = await asked();
    await Deno.remove(`${d}/bin/nvidia-smi`);
    await writeFakeBin(`${d}/bin`, "nvidia-smi", smi);
    assert.equal((await install()).action, "none");
    assert.ok(await asked() > before, "nvidia-smi was not asked");
  });

  await t.step("no driver loaded: nothing recorded stands, nvidia-smi is asked", async () => {
    await Deno.remove(moduleFile);
    const before = await asked();
    assert.equal((await install()).action, "none");
    assert.ok(await asked() > before, "nvidia-smi was not asked");
  });
});
