/**
 * A profile's CPU wheel variant: which node takes it (selectCudaVariant over wheelVariants), that a GPU
 * profile never does, and that the schema takes the field and refuses a malformed one.
 */
import assert from "node:assert/strict";
import { cpuVariantOf, selectCudaVariant, wheelVariants } from "../../agent/compat.ts";
import { lintProfile, loadProfile, type Profile } from "../../agent/profiles/mod.ts";
import { testEnv } from "../support/env.ts";

const CUDA = [
  { name: "cu118", cuda: "11.8", index_url: "https://download.pytorch.org/whl/cu118" },
  { name: "cu121", cuda: "12.1", index_url: "https://download.pytorch.org/whl/cu121" },
  { name: "cu124", cuda: "12.4", index_url: "https://download.pytorch.org/whl/cu124" },
];
const CPU = { index_url: "https://download.pytorch.org/whl/cpu" };
const optional = { gpu: { required: false }, cuda_variants: CUDA, cpu_variant: CPU };
const required = { gpu: { required: true }, cuda_variants: CUDA, cpu_variant: CPU };

Deno.test("wheelVariants() adds the CPU variant only to profiles that run without a GPU", () => {
  assert.deepEqual(wheelVariants(optional).map((v) => v.name), ["cu118", "cu121", "cu124", "cpu"]);
  assert.deepEqual(cpuVariantOf(optional), { name: "cpu", cuda: "", index_url: CPU.index_url });
  assert.deepEqual(wheelVariants(required).map((v) => v.name), ["cu118", "cu121", "cu124"]);
  assert.equal(cpuVariantOf(required), null);
  assert.deepEqual(wheelVariants({ gpu: { required: false }, cuda_variants: CUDA }).length, 3);
});

Deno.test("selectCudaVariant() over wheelVariants(): the situations a node can be in", () => {
  const rows: {
    situation: string;
    profile: typeof optional;
    driver: string | null;
    driverCuda: string | null;
    forced?: string;
    want: string | "error";
  }[] = [
    {
      situation: "CPU node (no driver), GPU optional",
      profile: optional,
      driver: null,
      driverCuda: null,
      want: "cpu",
    },
    {
      situation: "driver 550 (CUDA 12.4), GPU optional",
      profile: optional,
      driver: "550.54.14",
      driverCuda: "12.4",
      want: "cu124",
    },
    {
      situation: "driver 535 (CUDA 12.2), GPU optional",
      profile: optional,
      driver: "535.104.05",
      driverCuda: "12.2",
      want: "cu121",
    },
    {
      situation: "driver 418 too old for any CUDA variant, GPU optional",
      profile: optional,
      driver: "418.39",
      driverCuda: "10.1",
      want: "cpu",
    },
    {
      situation: "forced cpu on a GPU node",
      profile: optional,
      driver: "550.54.14",
      driverCuda: "12.4",
      forced: "cpu",
      want: "cpu",
    },
    {
      situation: "forced cu121 on a CPU node (building for another)",
      profile: optional,
      driver: null,
      driverCuda: null,
      forced: "cu121",
      want: "cu121",
    },
    {
      situation: "CPU node, GPU required: no variant",
      profile: required,
      driver: null,
      driverCuda: null,
      want: "error",
    },
    {
      situation: "forced cpu, GPU required: not in the profile",
      profile: required,
      driver: null,
      driverCuda: null,
      forced: "cpu",
      want: "error",
    },
  ];
  for (const r of rows) {
    const pick = selectCudaVariant(r.driver, r.driverCuda, wheelVariants(r.profile), r.forced);
    if (r.want === "error") {
      assert.ok("error" in pick, `${r.situation}: expected no variant, got ${JSON.stringify(pick)}`);
      continue;
    }
    assert.ok(!("error" in pick), `${r.situation}: ${JSON.stringify(pick)}`);
    assert.equal(pick.variant.name, r.want, r.situation);
    if (r.want === "cpu") {
      assert.equal(pick.variant.index_url, CPU.index_url, r.situation);
      assert.equal(pick.support, "yes", r.situation);
    }
  }
});

Deno.test("the CPU variant's reason says why the CUDA wheels were passed over", () => {
  const none = selectCudaVariant(null, null, wheelVariants(optional));
  assert.ok(!("error" in none) && /no NVIDIA driver to run the CUDA variants; using cpu/.test(none.reason));
  const old = selectCudaVariant("418.39", "10.1", wheelVariants(optional));
  assert.ok(!("error" in old) && /runs none of the CUDA variants; using cpu/.test(old.reason));
});

Deno.test("the profile schema takes cpu_variant and names what is wrong with a bad one", async () => {
  const yolo = await loadProfile(testEnv(), "yolo") as Profile;
  assert.deepEqual(yolo.cpu_variant, CPU);
  const bad = { ...yolo, cpu_variant: { index_url: "ftp://x", name: "cpu" } };
  const issues = lintProfile(bad, "test").map((i) => `${i.path}: ${i.rule}`);
  assert.ok(issues.some((i) => i.startsWith("/cpu_variant/index_url: must match")), issues.join("\n"));
  assert.ok(issues.some((i) => i.startsWith('/cpu_variant/name: unknown field "name"')), issues.join("\n"));
});
