import assert from "node:assert/strict";
import { lintProfile, parseRequirement } from "../../agent/profiles/mod.ts";
import { canonicalName } from "../../agent/core/pep503.ts";

const COMMIT = "dcba3cb2e2827b402d2701e7e1c7d9fed8a20ef1";

Deno.test("parseRequirement() reads exact pins, including local versions, extras and markers", () => {
  const rows: [string, { name: string; version: string; extras?: string[]; marker?: string }][] = [
    ["torch==2.4.0", { name: "torch", version: "2.4.0" }],
    ["torch==2.4.0+cu121", { name: "torch", version: "2.4.0+cu121" }],
    ["flash_attn==2.7.0.post2", { name: "flash-attn", version: "2.7.0.post2" }],
    ["imageio[ffmpeg]==2.37.0", { name: "imageio", version: "2.37.0", extras: ["ffmpeg"] }],
    ["Pillow === 10.4.0", { name: "pillow", version: "10.4.0" }],
    ['numpy==1.26.4; python_version < "3.13"', {
      name: "numpy",
      version: "1.26.4",
      marker: 'python_version < "3.13"',
    }],
  ];
  for (const [text, want] of rows) {
    const r = parseRequirement(text);
    assert.equal(r.kind, "version", text);
    assert.equal(r.pinned, true, text);
    assert.equal(r.name, want.name, text);
    assert.equal(r.version, want.version, text);
    assert.deepEqual(r.extras, want.extras ?? [], text);
    assert.equal(r.marker, want.marker ?? null, text);
  }
});

Deno.test("parseRequirement() accepts VCS sources at a full commit or a version tag", () => {
  const clip = parseRequirement(`clip @ git+https://github.com/openai/CLIP.git@${COMMIT}`);
  assert.equal(clip.kind, "vcs");
  assert.equal(clip.pinned, true);
  assert.equal(clip.url, "git+https://github.com/openai/CLIP.git");
  assert.equal(clip.ref, COMMIT);
  const tag = parseRequirement("flash-attn @ git+https://github.com/Dao-AILab/flash-attention.git@v2.6.3");
  assert.equal(tag.pinned, true);
  assert.equal(tag.ref, "v2.6.3");
  const egg = parseRequirement(`git+https://github.com/openai/CLIP.git@${COMMIT}#egg=clip`);
  assert.equal(egg.name, "clip");
  assert.equal(egg.pinned, true);
  const ssh = parseRequirement(`pkg @ git+ssh://git@github.com/org/pkg.git@${COMMIT}`);
  assert.equal(ssh.url, "git+ssh://git@github.com/org/pkg.git");
  assert.equal(ssh.pinned, true);
});

Deno.test("parseRequirement() accepts archive URLs that name their version or carry a hash", () => {
  const whl = parseRequirement(
    "flash-attn @ https://github.com/Dao-AILab/flash-attention/releases/download/v2.7.4.post1/flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp310-cp310-linux_x86_64.whl",
  );
  assert.equal(whl.kind, "url");
  assert.equal(whl.pinned, true);
  assert.equal(whl.version, "2.7.4.post1+cu12torch2.6cxx11abiFALSE");
  assert.equal(parseRequirement(`x @ https://host/x.tar.gz#sha256=${"a".repeat(64)}`).pinned, true);
});

Deno.test("parseRequirement() flags what is not an exact pin, saying why", () => {
  const rows: [string, RegExp][] = [
    ["xfuser", /no version/],
    ["torch>=2.4.0", /range/],
    ["transformers>=4.49.0,<=4.51.3", /range/],
    ["numpy~=1.26", /range/],
    ["numpy==1.26.*", /wildcard/],
    ["git+https://github.com/openai/CLIP.git#egg=clip", /without a ref/],
    ["clip @ git+https://github.com/openai/CLIP.git@main", /branches move/],
    ["clip @ git+https://github.com/openai/CLIP.git@a1d4862", /40-hex/],
    ["x @ https://host/archive/main.zip", /names no version/],
  ];
  for (const [text, why] of rows) {
    const r = parseRequirement(text);
    assert.equal(r.pinned, false, text);
    assert.equal(r.kind, "unpinned", text);
    assert.match(r.problem ?? "", why, text);
  }
});

Deno.test("parseRequirement() rejects lines it cannot read and installer options", () => {
  for (
    const text of ["", "--no-deps torch==2.4.0", "==1.0", "torch 2.4.0", "git+https://github.com/a/b.git@v1"]
  ) {
    assert.equal(parseRequirement(text).kind, "invalid", text);
  }
  assert.match(parseRequirement("-r requirements.txt").problem ?? "", /stage fields/);
});

Deno.test("canonicalName() follows PEP 503", () => {
  assert.equal(canonicalName("Flash_Attn"), "flash-attn");
  assert.equal(canonicalName("ruamel.yaml"), "ruamel-yaml");
  assert.equal(canonicalName("a__b--c"), "a-b-c");
});

function profile(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "demo",
    description: "a demo",
    python: ">=3.10,<3.13",
    gpu: { required: false },
    cuda_variants: [],
    builds_extensions: false,
    disk_gib: 1,
    stages: [{ name: "app", packages: ["demo-pkg==1.0"] }],
    verify: [],
    models: [],
    ...over,
  };
}

const rules = (value: unknown) =>
  lintProfile(value, "p.json").map((i) => `${i.severity} ${i.path}: ${i.rule}`);

Deno.test("lintProfile() passes a minimal profile", () => {
  assert.deepEqual(rules(profile()), []);
});

Deno.test("lintProfile() names the field path and the rule for an unpinned requirement", () => {
  const issues = rules(profile({ stages: [{ name: "app", packages: ["ok==1", "xfuser"] }] }));
  assert.equal(issues.length, 1);
  assert.match(issues[0], /^error \/stages\/0\/packages\/1: "xfuser" is not pinned: no version/);
  assert.match(issues[0], /allow_unpinned/);
});

Deno.test("lintProfile() allows unpinned requirements in a stage that says why", () => {
  const stage = { name: "dev", packages: ["pytest"], allow_unpinned: "test tools, any version works" };
  assert.deepEqual(rules(profile({ stages: [stage] })), []);
  assert.match(
    rules(profile({ stages: [{ ...stage, allow_unpinned: "" }] }))[0],
    /allow_unpinned: must be at least 1/,
  );
});

Deno.test("lintProfile() names unknown fields with the allowed ones, at any depth", () => {
  const issues = rules(
    profile({ stages: [{ name: "app", packages: ["a==1"], no_build_isolaton: true }], gpus: 1 }),
  );
  assert.equal(issues.length, 2);
  assert.match(
    issues.find((i) => i.includes("/gpus"))!,
    /unknown field "gpus" \(did you mean "gpu"\?\); allowed: \$schema, name,/,
  );
  assert.match(
    issues.find((i) => i.includes("/stages/0/no_build_isolaton"))!,
    /did you mean "no_build_isolation"\?.*allowed: name, packages, index_url/,
  );
});

Deno.test("lintProfile() reports schema violations by path", () => {
  const issues = rules(profile({
    name: "../etc",
    python: "3.10",
    gpu: { required: "yes" },
    disk_gib: -1,
    stages: [],
    cuda_variants: [{ name: "cuda12", cuda: "12.1", index_url: "ftp://x" }],
    models: [{ repo: "no-slash" }],
  }));
  for (
    const path of [
      "/name",
      "/python",
      "/gpu/required",
      "/disk_gib",
      "/stages",
      "/cuda_variants/0/name",
      "/cuda_variants/0/index_url",
      "/models/0/repo",
    ]
  ) {
    assert.ok(issues.some((i) => i.startsWith(`error ${path}:`)), `${path} in ${issues.join("\n")}`);
  }
  assert.match(rules({})[0], /^error \/name: required property "name" is missing/);
  assert.match(rules([])[0], /^error : must be object, got array/);
});

Deno.test("lintProfile() catches cross-field mistakes the schema cannot see", () => {
  const issues = rules(profile({
    stages: [
      { name: "torch", packages: ["torch==2.4.0"], index_url: "cuda" },
      { name: "torch", packages: ["torch==2.5.0"], builds_extensions: true },
    ],
    verify: [{ name: "a", code: "pass" }, { name: "a", code: "pass" }],
  }));
  assert.ok(issues.some((i) => /\/stages\/1\/name: stage name "torch" repeats stage 0/.test(i)));
  assert.ok(
    issues.some((i) =>
      /\/stages\/1\/packages\/0: "torch==2.5.0" conflicts with "torch==2.4.0" at \/stages\/0\/packages\/0/
        .test(i)
    ),
  );
  assert.ok(issues.some((i) => /\/cuda_variants: a stage uses index_url "cuda"/.test(i)));
  assert.ok(issues.some((i) => /\/builds_extensions: a stage sets builds_extensions/.test(i)));
  assert.ok(issues.some((i) => /\/verify\/1\/name: verify step "a" is listed twice/.test(i)));
});

Deno.test("lintProfile() checks that a CUDA variant's name matches its CUDA version", () => {
  const issues = rules(profile({
    cuda_variants: [{ name: "cu121", cuda: "12.4", index_url: "https://download.pytorch.org/whl/cu121" }],
  }));
  assert.deepEqual(issues, ["error /cuda_variants/0/cuda: CUDA 12.4 does not match variant cu121"]);
});

Deno.test("lintProfile() warns, without failing, when a GPU profile lists no CUDA variants", () => {
  assert.deepEqual(rules(profile({ gpu: { required: true } })), [
    "warning /cuda_variants: the profile requires a GPU but lists no CUDA variants",
  ]);
});

const PINNED_MODEL = { repo: "org/model", revision: COMMIT, required_files: ["config.json"] };

Deno.test("lintProfile() rejects include/exclude patterns that can never match, naming the field and the pattern", () => {
  const issues = rules(profile({
    models: [{
      ...PINNED_MODEL,
      include: ["*.json", "[z-a]*.safetensors", "", "/vae/*"],
      exclude: ["*.bin", "[a--]", "./x"],
    }],
  }));
  assert.equal(issues.length, 5, issues.join("\n"));
  assert.match(
    issues[0],
    /^error \/models\/0\/include\/1: include pattern "\[z-a\]\*\.safetensors" can never match/,
  );
  assert.match(issues[0], /admits no character/);
  assert.match(
    issues[1],
    /^error \/models\/0\/include\/2: include pattern "" can never match a file: the empty/,
  );
  assert.match(issues[2], /^error \/models\/0\/include\/3: include pattern "\/vae\/\*" .*relative/);
  assert.match(issues[3], /^error \/models\/0\/exclude\/1: exclude pattern "\[a--\]" can never match/);
  assert.match(issues[4], /^error \/models\/0\/exclude\/2: exclude pattern "\.\/x" .*relative/);
});

Deno.test("lintProfile() takes the bracket patterns Python reads as matching something", () => {
  const model = { ...PINNED_MODEL, include: ["[!z-a]*", "[]", "[!]", "[", "vae/", "[^a]*", "[a-]*"] };
  assert.deepEqual(rules(profile({ models: [model] })), []);
});

Deno.test("lintProfile() warns about models without a pinned commit or required files, and an empty include", () => {
  const issues = rules(profile({
    models: [
      { repo: "org/a" },
      { repo: "org/b", revision: "main", required_files: [], include: [] },
      { repo: "org/c", revision: COMMIT.toUpperCase(), required_files: ["x"] },
      PINNED_MODEL,
    ],
  }));
  assert.deepEqual(issues.map((i) => i.split(":")[0]), [
    "warning /models/0/revision",
    "warning /models/0/required_files",
    "warning /models/1/include",
    "warning /models/1/revision",
    "warning /models/1/required_files",
    "warning /models/2/revision",
  ]);
  assert.match(issues[0], /org\/a has no revision: .*pin a 40-hex commit/);
  assert.match(issues[1], /org\/a lists no required_files/);
  assert.match(issues[3], /revision "main" of org\/b is not a 40-hex commit/);
});
