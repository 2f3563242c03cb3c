/** The installer argv per stage, interpreter constraints, and index reachability: pure parts and a local server. */
import assert from "node:assert/strict";
import {
  chooseInstaller,
  type InstallerChoice,
  stageCommand,
  stageIndexes,
  uvItselfBroke,
} from "../../agent/install/installer.ts";
import { classifyFetchError, probeIndex, pythonSatisfies } from "../../agent/install/mod.ts";
import type { Stage } from "../../agent/profiles/types.ts";
import type { RunResult } from "../../agent/core/run.ts";
import { runMlagent } from "../support/cli.ts";
import { FIXTURES, tempDir, testEnv } from "../support/env.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";
import { testProfile, writeVenv } from "../support/node_states.ts";
import { startIndex, testDists } from "../support/pypi.ts";

const PIP: InstallerChoice = { kind: "pip", uv: null, reason: "test" };
const UV: InstallerChoice = { kind: "uv", uv: "/opt/bin/uv", reason: "test" };
const CU121 = { name: "cu121", cuda: "12.1", index_url: "https://download.pytorch.org/whl/cu121" };
const torch: Stage = {
  name: "torch",
  packages: ["torch==2.4.0", "torchvision==0.19.0"],
  index_url: "cuda",
  extra_index_urls: ["https://pypi.org/simple"],
  no_cache: true,
};
const flash: Stage = {
  name: "flash",
  packages: ["flash-attn==2.6.3"],
  no_build_isolation: true,
  env: { MAX_JOBS: "4" },
  timeout_s: 7200,
};

Deno.test("stageIndexes() resolves the cuda index to the chosen variant", () => {
  assert.deepEqual(stageIndexes(torch, CU121, null), {
    indexUrl: "https://download.pytorch.org/whl/cu121",
    extraIndexUrls: ["https://pypi.org/simple"],
  });
  assert.deepEqual(stageIndexes(flash, null, null), { indexUrl: null, extraIndexUrls: [] });
});

Deno.test("stageIndexes() with MLAGENT_INDEX_URL replaces every index, the CUDA one included", () => {
  assert.deepEqual(stageIndexes(torch, CU121, "http://mirror.site/simple"), {
    indexUrl: "http://mirror.site/simple",
    extraIndexUrls: [],
  });
});

Deno.test("stageIndexes() rejects a cuda index when no variant was chosen", () => {
  assert.throws(() => stageIndexes(torch, null, null), /uses the "cuda" index but no CUDA variant/);
});

Deno.test("stageCommand() for pip: venv python -m pip, explicit cache dir, options, stage env and timeout", () => {
  const c = stageCommand({
    installer: PIP,
    venvDir: "/v/p",
    stage: flash,
    indexes: { indexUrl: null, extraIndexUrls: [] },
    cacheDir: "/tmp/c/pip",
    crossDevice: false,
    mirrorOnly: false,
  });
  assert.deepEqual(c.argv.slice(0, 4), ["/v/p/bin/python", "-m", "pip", "install"]);
  assert.ok(c.argv.join(" ").includes("--cache-dir /tmp/c/pip"));
  assert.ok(c.argv.includes("--no-build-isolation"));
  assert.deepEqual(c.argv.slice(-1), ["flash-attn==2.6.3"]);
  assert.equal(c.env.MAX_JOBS, "4");
  assert.equal(c.timeoutMs, 7_200_000);
  assert.equal(c.cached, true);
});

Deno.test("stageCommand() for a no_cache stage skips the cache (pip --no-cache-dir, uv --no-cache and copy)", () => {
  const input = {
    venvDir: "/v/p",
    stage: torch,
    indexes: stageIndexes(torch, CU121, null),
    cacheDir: "/tmp/c",
    crossDevice: false,
    mirrorOnly: false,
  };
  const pip = stageCommand({ ...input, installer: PIP });
  assert.ok(pip.argv.includes("--no-cache-dir"));
  assert.ok(!pip.argv.includes("--cache-dir"));
  assert.ok(pip.argv.join(" ").includes("--index-url https://download.pytorch.org/whl/cu121"));
  assert.ok(pip.argv.join(" ").includes("--extra-index-url https://pypi.org/simple"));
  const uv = stageCommand({ ...input, installer: UV });
  assert.deepEqual(uv.argv.slice(0, 5), ["/opt/bin/uv", "pip", "install", "--python", "/v/p/bin/python"]);
  assert.ok(uv.argv.includes("--no-cache"));
  assert.ok(uv.argv.join(" ").includes("--link-mode copy"));
  assert.ok(uv.argv.join(" ").includes("--index-strategy unsafe-best-match"));
  assert.equal(uv.env.UV_CACHE_DIR, undefined);
});

Deno.test("stageCommand() for uv with the cache on another filesystem copies instead of hard-linking", () => {
  const base = {
    installer: UV,
    venvDir: "/v/p",
    stage: flash,
    indexes: { indexUrl: null, extraIndexUrls: [] },
    cacheDir: "/local/uv",
    mirrorOnly: false,
  };
  const cross = stageCommand({ ...base, crossDevice: true });
  assert.ok(cross.argv.join(" ").includes("--cache-dir /local/uv"));
  assert.equal(cross.env.UV_CACHE_DIR, "/local/uv");
  assert.ok(cross.argv.join(" ").includes("--link-mode copy"));
  const same = stageCommand({ ...base, crossDevice: false });
  assert.ok(!same.argv.includes("--link-mode"));
});

Deno.test("stageCommand() with a mirror drops index settings from the environment and trusts a plain-http mirror", () => {
  const c = stageCommand({
    installer: PIP,
    venvDir: "/v/p",
    stage: torch,
    indexes: stageIndexes(torch, CU121, "http://mirror.site/simple"),
    cacheDir: null,
    crossDevice: false,
    mirrorOnly: true,
  });
  assert.ok(c.argv.join(" ").includes("--index-url http://mirror.site/simple --trusted-host mirror.site"));
  assert.ok(!c.argv.includes("--extra-index-url"));
  assert.ok("PIP_EXTRA_INDEX_URL" in c.env && c.env.PIP_EXTRA_INDEX_URL === undefined);
  assert.ok("UV_INDEX_URL" in c.env && c.env.UV_INDEX_URL === undefined);
});

Deno.test("chooseInstaller() prefers uv on PATH, honours MLAGENT_INSTALLER, and rejects a forced uv that is missing", async () => {
  await using dir = await tempDir();
  await writeFakeBin(dir.path, "uv", { stdout: "uv 0.4.0" });
  const withUv = testEnv();
  withUv.vars.PATH = `${dir.path}:/usr/bin:/bin`;
  assert.equal(chooseInstaller(withUv).kind, "uv");
  withUv.vars.MLAGENT_INSTALLER = "pip";
  assert.equal(chooseInstaller(withUv).kind, "pip");
  const noUv = testEnv();
  noUv.vars.PATH = "/nonexistent";
  assert.equal(chooseInstaller(noUv).kind, "pip");
  noUv.vars.MLAGENT_INSTALLER = "uv";
  assert.throws(() => chooseInstaller(noUv), /uv is not on PATH/);
  noUv.vars.MLAGENT_INSTALLER = "conda";
  assert.throws(() => chooseInstaller(noUv), /must be "uv" or "pip"/);
});

const exited = (code: number, stderr: string, signal: string | null = null): RunResult => ({
  kind: "exited",
  argv: ["uv"],
  code,
  signal,
  stdout: "",
  stderr,
  durationMs: 1,
});

Deno.test("uvItselfBroke() is true for a uv crash and false for a resolution failure", () => {
  assert.equal(uvItselfBroke({ kind: "not-found", argv: ["uv"], program: "uv" }), true);
  assert.equal(uvItselfBroke(exited(101, "thread 'main' panicked at crates/uv/src/lib.rs:1:1")), true);
  assert.equal(uvItselfBroke(exited(132, "", "SIGILL")), true);
  assert.equal(
    uvItselfBroke(
      exited(1, "  × No solution found when resolving dependencies:\n  ╰─▶ Because torch==9.9 ..."),
    ),
    false,
  );
});

Deno.test("pythonSatisfies() reads interpreter constraints as PEP 440 specifier sets", () => {
  const rows: [string, string, boolean][] = [
    ["3.11.7", ">=3.10,<3.12", true],
    ["3.12.1", ">=3.10,<3.12", false],
    ["3.9.18", ">=3.10", false],
    ["3.10.4", "==3.10.*", true],
    ["3.11.0", "~=3.10", true],
    ["3.11.0", "!=3.11.0", false],
    ["3.11.2", "", true],
  ];
  for (const [v, spec, want] of rows) assert.equal(pythonSatisfies(v, spec), want, `${v} vs ${spec}`);
});

Deno.test("classifyFetchError() tells DNS, TLS and connection failures apart", () => {
  const e = new TypeError("x");
  assert.equal(
    classifyFetchError(
      e,
      "error sending request: client error (Connect): dns error: failed to lookup address",
    ),
    "dns",
  );
  assert.equal(classifyFetchError(e, "invalid peer certificate: UnknownIssuer"), "tls");
  assert.equal(classifyFetchError(e, "tcp connect error: Connection refused (os error 111)"), "connection");
  assert.equal(classifyFetchError(new DOMException("t", "TimeoutError"), "t"), "timeout");
});

Deno.test("probeIndex() is fine with a served project and reports a 503 and a closed port", async () => {
  await using index = await startIndex((await testDists()).dir);
  const env = testEnv();
  assert.equal(await probeIndex(env, index.url, "mla_alpha"), null);
  assert.equal(index.requests.at(-1)!.path, "/simple/mla-alpha/");
  // A missing project is the index answering: resolution will say so, not a network failure.
  assert.equal(await probeIndex(env, index.url, "no-such-project"), null);
  index.failNext(1, { status: 503 });
  assert.equal((await probeIndex(env, index.url, "mla-alpha"))?.kind, "http");
  assert.equal((await probeIndex(env, "http://127.0.0.1:9/simple/", "mla-alpha"))?.kind, "connection");
});

Deno.test("install of a stale ready venv asks nvidia-smi once: the no-op check's GPU facts serve the plan", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  await Deno.mkdir(`${d}/bin`);
  await writeFakeBin(`${d}/bin`, "nvidia-smi", {
    stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_595.58.03_1xRTX3080.xml`,
  });
  const profile = testProfile("gpu-stale", {
    cuda_variants: [CU121],
    stages: [{ name: "torch", packages: ["torch==2.4.0"], index_url: "cuda" }],
  });
  await Deno.writeTextFile(`${d}/p.json`, JSON.stringify(profile));
  // Ready on record but with another fingerprint: the no-op check probes the GPU, then a plan is needed.
  await writeVenv(`${d}/venvs`, "gpu-stale", { status: "ready", profile, cudaVariant: "cu121" });
  const r = await runMlagent(["install", `${d}/p.json`], {
    env: {
      PATH: `${d}/bin:${Deno.env.get("PATH")}`,
      MLAGENT_ROOT: `${d}/venvs`,
      MLAGENT_CACHE_DIR: `${d}/cache`,
      MLAGENT_LOCK_DIR: `${d}/locks`,
      // A closed index stops the run right after planning, before anything is written.
      MLAGENT_INDEX_URL: "http://127.0.0.1:9/simple/",
      MLAGENT_RETRY_BASE_MS: "1",
      HOME: d,
    },
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot reach the package index/);
  assert.deepEqual(await fakeCalls(`${d}/bin`, "nvidia-smi"), ["-q -x"]);
});

Deno.test("install --cuda with a variant the profile lacks is bad input (exit 2) naming the variants it has", async () => {
  const r = await runMlagent(["install", "yolo", "--cuda", "cu999", "--dry-run"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr.split("\n")[0], /forced CUDA variant "cu999" is not in the profile/);
  assert.match(r.stderr, /hint: pick one of the profile's variants: --cuda cu\d+/);
});
