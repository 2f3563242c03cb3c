/** runDoctor() as install and prologue call it: a Profile object passed in, `only` to run a subset. */
import assert from "node:assert/strict";
import { CHECK_IDS, runDoctor } from "../../checks/mod.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import { FIXTURES, hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";

async function nodeEnv(dir: string) {
  await Deno.mkdir(`${dir}/bin`, { recursive: true });
  await Deno.mkdir(`${dir}/proc`, { recursive: true });
  return testEnv({
    vars: hermeticVars({
      PATH: `${dir}/bin:/usr/bin:/bin`,
      HOME: dir,
      PYENV_ROOT: undefined,
      MLAGENT_CUDA_SEARCH_PATH: `${dir}/none`,
    }),
    procRoot: `${dir}/proc`,
  });
}

const profile = (over: Partial<Profile> = {}): Profile => ({
  name: "wan-like",
  description: "",
  python: ">=3.10,<3.13",
  gpu: { required: true, min_count: 1, min_memory_mib: 20000 },
  cuda_variants: [
    { name: "cu121", cuda: "12.1", index_url: "https://download.pytorch.org/whl/cu121" },
    { name: "cu124", cuda: "12.4", index_url: "https://download.pytorch.org/whl/cu124" },
  ],
  builds_extensions: true,
  disk_gib: 1,
  stages: [],
  verify: [],
  models: [],
  ...over,
});

Deno.test("runDoctor({only}) runs just those checks and spawns no interpreter for gpu-only", async () => {
  await using dir = await tempDir();
  const env = await nodeEnv(dir.path);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", {
    stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  await writeFakeBin(`${dir.path}/bin`, "python3", { stdout: "{}" });
  const r = await runDoctor({ env, profile: null, venvRoot: `${dir.path}/venvs`, probeTimeoutMs: 5000 }, {
    only: ["gpu"],
  });
  assert.deepEqual(r.checks.map((c) => c.id), [...CHECK_IDS.gpu]);
  assert.equal(r.ok, true);
  assert.deepEqual(await fakeCalls(`${dir.path}/bin`, "python3"), []);
  assert.equal((r.facts.gpu as { driver_version: string }).driver_version, "535.86.05");
});

Deno.test("runDoctor({only: ['cuda']}) still asks nvidia-smi, to judge the toolkit against the driver", async () => {
  await using dir = await tempDir();
  const env = await nodeEnv(dir.path);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", {
    stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  await writeFakeBin(`${dir.path}/bin`, "nvcc", { stdoutFile: `${FIXTURES}/nvcc/nvcc_12.5_V12.5.40.txt` });
  const r = await runDoctor({ env, profile: null, venvRoot: `${dir.path}/venvs`, probeTimeoutMs: 5000 }, {
    only: ["cuda"],
  });
  assert.deepEqual(r.checks.map((c) => c.id), ["cuda.toolkit", "cuda.driver_compat"]);
  assert.equal(r.checks[1].status, "warn");
  assert.match(r.checks[1].message, /CUDA 12\.5 toolkit is newer than driver 535\.86\.05 \(CUDA 12\.2\)/);
  assert.equal(r.ok, true, "a warning is not a failure");
});

Deno.test("runDoctor() with a Profile judges GPU memory, wheels, headers and nvcc for it", async () => {
  await using dir = await tempDir();
  const env = await nodeEnv(dir.path);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", {
    stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  const ctx = { env, venvRoot: `${dir.path}/venvs`, probeTimeoutMs: 20_000 };
  const r = await runDoctor({ ...ctx, profile: profile() });
  const byId = Object.fromEntries(r.checks.map((c) => [c.id, c]));
  assert.equal(byId["gpu.devices"].status, "pass");
  assert.match(byId["cuda.wheels"].message, /installs will use cu121/);
  assert.equal(byId["cuda.toolkit"].status, "fail", "builds extensions without nvcc");
  assert.equal(byId["python.interpreter"].status, "pass");
  assert.equal(byId["python.headers"].status, "pass");
  assert.equal(r.ok, false);
  assert.deepEqual(r.checks.filter((c) => c.status === "fail").map((c) => c.id), ["cuda.toolkit"]);
  // Every check carries its duration and no raw facts (they are merged into report.facts).
  assert.ok(r.checks.every((c) => typeof c.durationMs === "number" && !("facts" in c)));
  assert.equal((r.facts.python as { executable: string }).executable.includes("python3"), true);

  const big = await runDoctor({
    ...ctx,
    profile: profile({ gpu: { required: true, min_memory_mib: 40000 }, builds_extensions: false }),
  }, {
    only: ["gpu"],
  });
  assert.equal(big.checks.find((c) => c.id === "gpu.devices")!.status, "fail");
});
