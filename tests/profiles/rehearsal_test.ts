/**
 * The resolution rehearsal (tests/support/rehearsal.ts): the real `mlagent install` of each built-in, with
 * real venvs and real pip, against stand-ins that carry the upstream Requires-Dist. The corrected profiles
 * must end ready with every pin held, with the cross-stage constraints and without them
 * (MLAGENT_STAGE_CONSTRAINTS=0: each stage resolves alone, as plain pip would); the profile as it was must
 * be caught moving torch 2.4.0 when each stage resolves alone.
 */
import assert from "node:assert/strict";
import { loadProfile, parseRequirement, type Profile } from "../../agent/profiles/mod.ts";
import { profileFromText } from "../../agent/profiles/load.ts";
import { tempDir, testEnv } from "../support/env.ts";
import { filesFetched } from "../support/pypi.ts";
import {
  pipCheck,
  pythonFor,
  type Rehearsal,
  REHEARSAL_FIXTURES,
  rehearsalNode,
  rehearseInstall,
  startRehearsalIndex,
} from "../support/rehearsal.ts";

const NAMES = ["hunyuan-video-i2v", "morphic-frames-to-video", "yolo"];
const builtin = async (name: string) => await loadProfile(testEnv(), name);
const PYTHONS_OK = (await Promise.all(NAMES.map(async (n) => await pythonFor((await builtin(n)).python))))
  .every((p) => p !== null);

/** Every `name==version` the profile pins, by canonical name (stood-in git sources as the stand-in). */
function exactPins(p: Profile): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of p.stages) {
    for (const text of s.packages) {
      const r = parseRequirement(text);
      if (r.version) out.set(r.name, r.version);
      else if (r.kind === "vcs") out.set(r.name, "1.0");
    }
  }
  return out;
}

function assertReadyWithPins(name: string, p: Profile, run: Rehearsal, label: string) {
  const { result, report } = run;
  assert.equal(result.code, 0, `${name} (${label}) did not install:\n${result.stderr.slice(-4000)}`);
  assert.equal(report.ok, true, label);
  assert.equal(report.status, "ready", label);
  const installed = new Map(
    Object.entries(report.packages).map(([k, v]) => [k.toLowerCase().replace(/[-_.]+/g, "-"), v]),
  );
  for (const [pkg, version] of exactPins(p)) {
    assert.equal(
      installed.get(pkg),
      version,
      `${name} (${label}): ${pkg} ended ${installed.get(pkg)}, pinned ${version}`,
    );
  }
  assert.ok(
    report.verify.every((v) => v.ok || v.skipped),
    `${name} (${label}): ${JSON.stringify(report.verify)}`,
  );
}

// ultralytics is installed with no_deps on purpose (its opencv-python would sit beside the headless build).
const PIP_CHECK_YOLO = "ultralytics 8.3.0 requires opencv-python, which is not installed.";

Deno.test({
  name:
    "rehearsal: every built-in installs ready with every pin held, and hunyuan's pins hold even without constraints",
  ignore: !PYTHONS_OK,
  async fn() {
    await using dir = await tempDir("mlagent-rehearsal-");
    await using index = await startRehearsalIndex();
    const gpuNode = await rehearsalNode(`${dir.path}/gpu`);
    const cpuNode = await rehearsalNode(`${dir.path}/cpu`, { gpu: false });
    const started = performance.now();
    // The three profiles install side by side (venv creation and pip are mostly waiting); each switch value
    // gets its own venv root, so the second run resolves afresh instead of finding the venv ready.
    // With constraints every built-in (what users get); without them the profile the facts warn about, whose
    // pins must hold on their own (a resolver left alone moved its torch before). Four installs, not six:
    // the suite's time on a 2-core CI machine is budgeted.
    for (const [constraints, names] of [["1", NAMES], ["0", ["hunyuan-video-i2v"]]] as const) {
      const label = `MLAGENT_STAGE_CONSTRAINTS=${constraints}`;
      await Promise.all(names.map(async (name) => {
        const p = await builtin(name);
        // yolo runs on a CPU node and takes its CPU variant; the GPU profiles build for cu124 on an H100 node.
        const node = p.gpu.required ? gpuNode : cpuNode;
        const env = p.gpu.required ? { MLAGENT_CUDA_VARIANT: "cu124" } : {};
        const run = await rehearseInstall(node, index, p, {
          root: `${name}-${constraints}`,
          env: { ...env, MLAGENT_STAGE_CONSTRAINTS: constraints },
        });
        assertReadyWithPins(name, p, run, label);
        assert.equal(
          await pipCheck(run.venv),
          name === "yolo" ? PIP_CHECK_YOLO : "",
          `${name} (${label}): pip check`,
        );
        assert.equal(run.report.cuda_variant, p.gpu.required ? "cu124" : "cpu", label);
        if (name === "hunyuan-video-i2v") {
          assert.deepEqual(run.rewrites, [
            "clip @ git+https://github.com/openai/CLIP.git@dcba3cb2e2827b402d2701e7e1c7d9fed8a20ef1 -> clip==1.0",
          ]);
        }
      }));
    }
    console.log(
      `rehearsal of ${NAMES.length} built-ins (+1 unconstrained): ${
        Math.round(performance.now() - started)
      } ms`,
    );
    assert.ok(
      !filesFetched(index).some((f) => f.startsWith("torch-2.6.0")),
      "no corrected profile reached torch 2.6.0",
    );
  },
});

Deno.test({
  name: "rehearsal: the hunyuan profile as it was moves torch 2.4.0 when each stage resolves alone",
  ignore: !PYTHONS_OK,
  async fn() {
    await using dir = await tempDir("mlagent-rehearsal-");
    await using index = await startRehearsalIndex();
    const node = await rehearsalNode(dir.path);
    const text = await Deno.readTextFile(`${REHEARSAL_FIXTURES}/hunyuan-video-i2v.before.json`);
    const before = await profileFromText(text, "hunyuan-video-i2v.before.json");
    const run = await rehearseInstall(node, index, before, {
      root: "before",
      env: { MLAGENT_CUDA_VARIANT: "cu124", MLAGENT_STAGE_CONSTRAINTS: "0" },
    });
    const torch = run.report.packages?.torch;
    const namesTorch = /torch/.test(JSON.stringify(run.report.error ?? "") + run.result.stderr);
    // What a node would see: the xfuser stage takes optimum-quanto 0.2.7, which requires torch>=2.6.0.
    assert.ok(
      (torch !== undefined && torch !== "2.4.0") || (run.result.code !== 0 && namesTorch),
      `the old profile was not caught: exit ${run.result.code}, torch ${torch}\n${
        run.result.stderr.slice(-3000)
      }`,
    );
    assert.notEqual(run.result.code, 0, "an install whose torch moved must not report ready");
    const fetched = filesFetched(index);
    assert.ok(fetched.some((f) => f.startsWith("optimum_quanto-0.2.7")), fetched.join(" "));
    assert.ok(fetched.some((f) => f.startsWith("torch-2.6.0")), fetched.join(" "));
    assert.match(
      await pipCheck(run.venv),
      /torchvision 0\.19\.0 has requirement torch==2\.4\.0, but you have torch 2\.6\.0/,
    );
  },
});
