import assert from "node:assert/strict";
import { type CudaFacts, evaluateCuda, gatherCuda, parseNvccVersion } from "../../checks/cuda.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import { FIXTURES, hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";

const NVCC = `${FIXTURES}/nvcc`;

Deno.test("parseNvccVersion() reads every nvcc fixture, with or without the Build line", () => {
  const cases: [string, string, string][] = [
    ["nvcc_7.5_V7.5.17.txt", "7.5", "7.5.17"],
    ["nvcc_10.0_V10.0.130_no_build_line.txt", "10.0", "10.0.130"],
    ["nvcc_11.0_V11.0.194.txt", "11.0", "11.0.194"],
    ["nvcc_11.1_V11.1.105.txt", "11.1", "11.1.105"],
    ["nvcc_12.3_V12.3.52_windows_trailing_spaces.txt", "12.3", "12.3.52"],
    ["nvcc_12.5_V12.5.40.txt", "12.5", "12.5.40"],
  ];
  for (const [file, release, version] of cases) {
    assert.deepEqual(parseNvccVersion(Deno.readTextFileSync(`${NVCC}/${file}`)), { release, version }, file);
  }
  assert.equal(parseNvccVersion("bash: nvcc: command not found"), null);
});

function cudaEnv(dir: string, extra: Record<string, string> = {}) {
  return testEnv({ vars: hermeticVars({ PATH: `${dir}/bin:/usr/bin:/bin`, ...extra }) });
}

Deno.test("gatherCuda() prefers nvcc on PATH", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "nvcc", { stdoutFile: `${NVCC}/nvcc_12.5_V12.5.40.txt` });
  const f = await gatherCuda(cudaEnv(dir.path), 5000, [`${dir.path}/none`]);
  assert.equal(f.found_via, "PATH");
  assert.equal(f.nvcc, `${dir.path}/bin/nvcc`);
  assert.equal(f.version, "12.5.40");
  assert.deepEqual(await fakeCalls(`${dir.path}/bin`, "nvcc"), ["--version"]);
});

Deno.test("gatherCuda() finds nvcc under CUDA_HOME, then in the newest cuda-* dir of the search root", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  const home = `${dir.path}/toolkits/cuda-home`;
  await Deno.mkdir(`${home}/bin`, { recursive: true });
  await writeFakeBin(`${home}/bin`, "nvcc", { stdoutFile: `${NVCC}/nvcc_11.1_V11.1.105.txt` });
  const root = `${dir.path}/usr-local`;
  for (
    const [d, fx] of [["cuda-11.0", "nvcc_11.0_V11.0.194.txt"], [
      "cuda-12.3",
      "nvcc_12.3_V12.3.52_windows_trailing_spaces.txt",
    ]]
  ) {
    await Deno.mkdir(`${root}/${d}/bin`, { recursive: true });
    await writeFakeBin(`${root}/${d}/bin`, "nvcc", { stdoutFile: `${NVCC}/${fx}` });
  }
  const viaHome = await gatherCuda(cudaEnv(dir.path, { CUDA_HOME: home }), 5000, [root]);
  assert.equal(viaHome.found_via, "CUDA_HOME");
  assert.equal(viaHome.release, "11.1");
  assert.deepEqual(viaHome.other_toolkits, [`${root}/cuda-12.3`, `${root}/cuda-11.0`]);
  const viaRoot = await gatherCuda(cudaEnv(dir.path), 5000, [root]);
  assert.equal(viaRoot.found_via, `${root}/cuda-12.3`);
  assert.equal(viaRoot.version, "12.3.52");
});

Deno.test("gatherCuda() reports nothing found without spawning anything", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  const f = await gatherCuda(cudaEnv(dir.path), 5000, [`${dir.path}/none`]);
  assert.equal(f.nvcc, null);
});

const profile = (over: Partial<Profile> = {}): Profile => ({
  name: "flash-model",
  description: "",
  python: ">=3.10",
  gpu: { required: true },
  cuda_variants: [
    { name: "cu118", cuda: "11.8", index_url: "https://download.pytorch.org/whl/cu118" },
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

const nvcc = (release: string | null): CudaFacts => ({
  nvcc: release ? "/usr/local/cuda/bin/nvcc" : null,
  found_via: release ? "PATH" : null,
  release,
  version: release ? `${release}.1` : null,
  other_toolkits: [],
  problem: null,
});

const byId = (rs: { id: string }[]) =>
  Object.fromEntries(rs.map((r) => [r.id, r])) as Record<string, ReturnType<typeof evaluateCuda>[number]>;

Deno.test("evaluateCuda() judges toolkit against driver: same, newer minor (warn), newer major (fail)", () => {
  const drv = { driver_version: "535.104.05", cuda_version: "12.2" };
  const cases: [string, string, string, RegExp][] = [
    ["12.2 toolkit on a 12.2 driver", "12.2", "pass", /runs on driver 535/],
    ["12.4 toolkit on a 12.2 driver", "12.4", "warn", /minor-version compatibility/],
    ["13.0 toolkit on a 12.2 driver", "13.0", "fail", /needs driver >= 580\.65\.06/],
  ];
  for (const [name, release, status, msg] of cases) {
    const r = byId(evaluateCuda(nvcc(release), drv, { profile: null }))["cuda.driver_compat"];
    assert.equal(r.status, status, name);
    assert.match(r.message, msg, name);
  }
});

Deno.test("evaluateCuda() without nvcc skips on a plain node and fails for a profile that builds extensions", () => {
  const drv = { driver_version: "550.54.14", cuda_version: "12.4" };
  assert.equal(byId(evaluateCuda(nvcc(null), drv, { profile: null }))["cuda.toolkit"].status, "skip");
  const r = byId(evaluateCuda(nvcc(null), drv, { profile: profile() }))["cuda.toolkit"];
  assert.equal(r.status, "fail");
  assert.match(r.remedy ?? "", /cu124 \(CUDA 12\.4\)/);
  assert.equal(
    byId(evaluateCuda(nvcc(null), drv, { profile: profile({ builds_extensions: false }) }))["cuda.toolkit"]
      .status,
    "skip",
  );
});

Deno.test("evaluateCuda() wheels: driver 470 with cu121-only wheels fails, with cu118 too it warns", () => {
  const drv = { driver_version: "470.82.01", cuda_version: "11.4" };
  const only121 = profile({
    cuda_variants: [{ name: "cu121", cuda: "12.1", index_url: "x" }],
    builds_extensions: false,
  });
  const w = byId(evaluateCuda(nvcc(null), drv, { profile: only121 }))["cuda.wheels"];
  assert.equal(w.status, "fail");
  assert.match(w.message, /supports none/);
  const both =
    byId(evaluateCuda(nvcc(null), drv, { profile: profile({ builds_extensions: false }) }))["cuda.wheels"];
  assert.equal(both.status, "warn");
  assert.match(both.message, /cu118.*minor-version compatibility/);
});

Deno.test("evaluateCuda() fails a toolkit whose major differs from the chosen wheels' when building extensions", () => {
  const drv = { driver_version: "550.54.14", cuda_version: "12.4" };
  const r = byId(evaluateCuda(nvcc("11.8"), drv, { profile: profile() }))["cuda.toolkit"];
  assert.equal(r.status, "fail");
  assert.match(r.message, /cu124 wheels were built with CUDA 12\.4/);
  const minor = byId(evaluateCuda(nvcc("12.1"), drv, { profile: profile() }))["cuda.toolkit"];
  assert.equal(minor.status, "warn");
  const forced = byId(evaluateCuda(nvcc("11.8"), drv, { profile: profile(), forcedVariant: "cu118" }));
  assert.equal(forced["cuda.toolkit"].status, "pass");
  assert.match(forced["cuda.wheels"].message, /forced to cu118/);
});

Deno.test("evaluateCuda() only warns about a too-new toolkit for a profile that builds no extensions", () => {
  const drv = { driver_version: "525.147.05", cuda_version: "12.0" };
  const plain = byId(evaluateCuda(nvcc("13.0"), drv, { profile: null }))["cuda.driver_compat"];
  assert.equal(plain.status, "fail");
  const noBuild = byId(evaluateCuda(nvcc("13.0"), drv, { profile: profile({ builds_extensions: false }) }));
  assert.equal(noBuild["cuda.driver_compat"].status, "warn");
  assert.match(noBuild["cuda.driver_compat"].message, /builds no extensions/);
  assert.match(
    noBuild["cuda.wheels"].message,
    /cu118 .*cu124, cu121 would run only through minor-version compatibility/,
  );
  assert.equal(
    byId(evaluateCuda(nvcc("13.0"), drv, { profile: profile() }))["cuda.driver_compat"].status,
    "fail",
  );
});
