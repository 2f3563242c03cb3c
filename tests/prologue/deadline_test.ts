/**
 * The prologue's deadlines, in process: a filesystem call that never returns (the Env's fs seam standing in
 * for a dead NFS mount inside this process) and a probe that outlives the whole deadline still end the
 * prologue on time, with the check named as timed out.
 */
import assert from "node:assert/strict";
import { runPrologue } from "../../agent/prologue/mod.ts";
import { FIXTURES, tempDir, testEnv } from "../support/env.ts";
import { writeFakeBin } from "../support/fake_bin.ts";
import { makeNode, testProfile, writeProfile, writeVenv } from "../support/node_states.ts";
import { loadProfile } from "../../agent/profiles/mod.ts";

const ONE_GPU_XML = `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`;
// The abandoned probes finish (are killed) after the test body returns.
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "runPrologue() ends on time when an in-process read of the venv state never returns",
  opts,
  async () => {
    await using d = await tempDir();
    const n = await makeNode(d.path);
    await writeFakeBin(n.bin, "nvidia-smi", { stdoutFile: ONE_GPU_XML });
    await writeFakeBin(n.bin, "dmesg", { stdout: "" });
    const p = testProfile("demo");
    await writeProfile(n, p);
    await writeVenv(n.root, "demo", { status: "ready", profile: p });
    const base = testEnv({ vars: { ...testEnv().vars, ...n.vars } });
    const env = testEnv({
      vars: base.vars,
      fs: {
        ...Deno,
        readTextFile: (path: string | URL, o?: Deno.ReadFileOptions) =>
          String(path).endsWith("/.mlagent/state.json")
            ? new Promise<string>(() => {})
            : Deno.readTextFile(path, o),
        open: (path: string | URL, o?: Deno.OpenOptions) =>
          String(path).endsWith("/.mlagent/state.json")
            ? new Promise<Deno.FsFile>(() => {})
            : Deno.open(path, o),
      },
    });
    const profile = await loadProfile(env, "demo");
    const t0 = performance.now();
    const r = await runPrologue(env, {
      profile,
      profileRef: "demo",
      scheduler: "slurm",
      // Long enough for df and the stat probes on a loaded 2-core CI machine; the hung read must still end it.
      timeoutMs: 3000,
      install: false,
    });
    const wall = performance.now() - t0;
    assert.ok(wall < 4000, `took ${wall} ms`);
    const venv = r.checks.find((c) => c.id === "venv.ready")!;
    assert.equal(venv.status, "fail");
    assert.equal(venv.fault, "node");
    assert.ok(venv.timed_out);
    assert.deepEqual(r.timed_out, ["venv.ready"]);
    assert.equal(r.exit_code, 1);
    assert.equal(
      r.checks.find((c) => c.id === "gpu.visible")!.status,
      "pass",
      "the other checks still report",
    );
  },
);

Deno.test(
  "runPrologue() keeps the whole deadline even when a check's own deadline is longer",
  opts,
  async () => {
    await using d = await tempDir();
    const n = await makeNode(d.path);
    await writeFakeBin(n.bin, "nvidia-smi", { sleepS: 20 });
    await writeFakeBin(n.bin, "dmesg", { stdout: "" });
    const env = testEnv({ vars: { ...testEnv().vars, ...n.vars, CUDA_VISIBLE_DEVICES: "0" } });
    const t0 = performance.now();
    const r = await runPrologue(env, {
      profile: null,
      profileRef: null,
      scheduler: "lsf",
      timeoutMs: 800,
      checkTimeoutMs: 60_000,
      install: false,
    });
    const wall = performance.now() - t0;
    assert.ok(wall < 2000, `took ${wall} ms`);
    assert.equal(r.verdict, "node-fault");
    assert.equal(r.exit_code, 1);
    assert.ok(r.timed_out.includes("gpu.visible"), JSON.stringify(r.checks));
  },
);
