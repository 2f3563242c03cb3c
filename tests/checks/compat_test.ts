import assert from "node:assert/strict";
import {
  compareVersions,
  cudaForDriver,
  driverSupportsCuda,
  minDriverForCuda,
  selectCudaVariant,
} from "../../agent/compat.ts";
import type { CudaVariant } from "../../agent/profiles/types.ts";
import { FIXTURES } from "../support/env.ts";

const v = (name: string, cuda: string): CudaVariant => ({
  name,
  cuda,
  index_url: `https://download.pytorch.org/whl/${name}`,
});
const TORCH_25 = [v("cu118", "11.8"), v("cu121", "12.1"), v("cu124", "12.4")];

Deno.test("minDriverForCuda() matches every row of NVIDIA's Linux minimum-driver table", () => {
  const csv = Deno.readTextFileSync(`${FIXTURES}/compat/cuda_toolkit_min_driver_linux.csv`);
  const rows = csv.trim().split("\n").slice(1).map((l) => l.split(",").slice(0, 2));
  assert.ok(rows.length >= 20);
  for (const [cuda, min] of rows) assert.equal(minDriverForCuda(cuda), min, cuda);
});

Deno.test("minDriverForCuda() takes the next release for a gap (12.7) and null past the table", () => {
  assert.equal(minDriverForCuda("12.7"), "570.26");
  assert.equal(minDriverForCuda("12.1.105"), "530.30.02");
  assert.equal(minDriverForCuda("99.0"), null);
  assert.equal(minDriverForCuda("nonsense"), null);
});

Deno.test("driverSupportsCuda() by the table, with minor-version compatibility inside a major", () => {
  const cases: [string, string, string, string | null][] = [
    ["driver 535.54.03 with a 12.2 toolkit", "535.54.03", "12.2", "yes"],
    ["driver 535.54.03 with 12.4: minor-version compatibility", "535.54.03", "12.4", "minor-compat"],
    ["driver 470.82.01 with cu121: newer major", "470.82.01", "12.1", "no"],
    ["driver 470.82.01 with cu118: 11.x minor compat", "470.82.01", "11.8", "minor-compat"],
    ["driver 450.51.05 below the 11.x compat floor 450.80.02", "450.51.05", "11.4", "no"],
    ["driver 580.65.06 runs any 12.x fully", "580.65.06", "12.9", "yes"],
    ["driver 575.57.08 and CUDA 13.0: newer major", "575.57.08", "13.0", "no"],
    ["driver 418.39 with 10.2: no minor compat before 11", "418.39", "10.2", "no"],
  ];
  for (const [name, driver, cuda, want] of cases) {
    assert.equal(driverSupportsCuda(driver, cuda), want, name);
  }
  // The driver's own "CUDA Version" settles versions newer than the table.
  assert.equal(driverSupportsCuda("600.10", "13.4", "13.4"), "yes");
  assert.equal(driverSupportsCuda("600.10", "14.0", "13.4"), "no");
});

Deno.test("cudaForDriver() gives the newest CUDA a driver meets", () => {
  assert.equal(cudaForDriver("590.48.01"), "13.1");
  assert.equal(cudaForDriver("535.104.05"), "12.2");
  assert.equal(cudaForDriver("300.0"), null);
});

Deno.test("compareVersions() compares numerically, missing parts as zero", () => {
  assert.equal(compareVersions("525.60.13", "525.85"), -1);
  assert.equal(compareVersions("12.10", "12.9"), 1);
  assert.equal(compareVersions("12.4", "12.4.0"), 0);
});

Deno.test("selectCudaVariant() picks the newest variant the driver supports", () => {
  const cases: [string, string | null, string | null, string | null, string | RegExp][] = [
    ["driver 550.54.14 (CUDA 12.4) with torch 2.5", "550.54.14", "12.4", "cu124", /newest variant/],
    [
      "driver 535.104.05 (CUDA 12.2) takes cu121 over minor-compat cu124",
      "535.104.05",
      "12.2",
      "cu121",
      /cu124 would run only through minor-version compatibility/,
    ],
    [
      "driver 470 with cu121 wheels falls back to cu118",
      "470.82.01",
      "11.4",
      "cu118",
      /minor-version compatibility/,
    ],
    ["driver from CSV only (no CUDA version)", "545.23.06", null, "cu121", /newest/],
    ["CUDA version only", null, "12.4", "cu124", /newest/],
  ];
  for (const [name, driver, cuda, want, reason] of cases) {
    const r = selectCudaVariant(driver, cuda, TORCH_25);
    assert.ok(!("error" in r), name);
    assert.equal(r.variant.name, want, name);
    assert.match(r.reason, reason instanceof RegExp ? reason : new RegExp(reason), name);
  }
});

Deno.test("selectCudaVariant() errors when the driver runs none, and names what each needs", () => {
  const r = selectCudaVariant("418.39", "10.1", [v("cu121", "12.1"), v("cu124", "12.4")]);
  assert.ok("error" in r);
  assert.match(r.error, /driver 418\.39 \(CUDA 10\.1\) supports none/);
  assert.match(r.error, /cu121 needs >= 530\.30\.02/);
  const none = selectCudaVariant(null, null, TORCH_25);
  assert.ok("error" in none && /no NVIDIA driver/.test(none.error));
  assert.ok("error" in selectCudaVariant("550.54.14", "12.4", []));
});

Deno.test("selectCudaVariant() takes a CPU variant only when no CUDA variant runs", () => {
  const withCpu = [...TORCH_25, v("cpu", "")];
  const noDriver = selectCudaVariant(null, null, withCpu);
  assert.ok(!("error" in noDriver) && noDriver.variant.name === "cpu");
  const gpu = selectCudaVariant("550.54.14", "12.4", withCpu);
  assert.ok(!("error" in gpu) && gpu.variant.name === "cu124");
});

Deno.test("selectCudaVariant() honours a forced variant even without a driver, and rejects unknown ones", () => {
  const r = selectCudaVariant(null, null, TORCH_25, "cu121");
  assert.ok(!("error" in r));
  assert.equal(r.variant.name, "cu121");
  assert.equal(r.support, "no");
  assert.match(r.reason, /forced to cu121 \(no NVIDIA driver here/);
  const byVersion = selectCudaVariant("550.54.14", "12.4", TORCH_25, "11.8");
  assert.ok(!("error" in byVersion) && byVersion.variant.name === "cu118" && byVersion.support === "yes");
  const bad = selectCudaVariant("550.54.14", "12.4", TORCH_25, "cu999");
  assert.ok("error" in bad && /cu118, cu121, cu124/.test(bad.error));
});
