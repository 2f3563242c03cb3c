import assert from "node:assert/strict";
import { MlagentError } from "../../agent/core/errors.ts";
import {
  canonicalJson,
  findProfile,
  listProfiles,
  loadProfile,
  type Profile,
  profileSha256,
  stageSha256,
} from "../../agent/profiles/mod.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";

function minimal(name: string, over: Record<string, unknown> = {}) {
  return {
    name,
    description: `profile ${name}`,
    python: ">=3.10",
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

async function write(path: string, value: unknown) {
  await Deno.writeTextFile(path, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

/** The MlagentError a promise rejects with; fails the test when it resolves or throws anything else. */
async function badInputOf(p: Promise<unknown>): Promise<MlagentError> {
  const e = await p.then(() => null, (e) => e);
  assert.ok(e instanceof MlagentError, `expected an MlagentError, got ${e}`);
  assert.equal(e.code, "bad-input");
  assert.equal(e.exitCode, 2);
  return e;
}

Deno.test("loadProfile() returns a built-in profile by name, as a fresh copy", async () => {
  const env = testEnv();
  const p = await loadProfile(env, "hunyuan-video-i2v");
  assert.equal(p.name, "hunyuan-video-i2v");
  p.stages.length = 0;
  assert.ok((await loadProfile(env, "hunyuan-video-i2v")).stages.length > 0);
});

Deno.test("loadProfile() reads a path, relative to the working directory", async () => {
  await using dir = await tempDir();
  await write(`${dir.path}/mine.json`, minimal("my-model"));
  const env = testEnv({ cwd: dir.path });
  assert.equal((await loadProfile(env, "./mine.json")).name, "my-model");
  assert.equal((await loadProfile(env, `${dir.path}/mine.json`)).name, "my-model");
  const found = await findProfile(env, "mine.json");
  assert.equal(found.source, `${dir.path}/mine.json`);
});

Deno.test("loadProfile() finds names in MLAGENT_PROFILE_PATH directories before built-ins", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  await write(`${b.path}/site-model.json`, minimal("site-model"));
  await write(`${b.path}/yolo.json`, minimal("yolo", { description: "site override" }));
  const env = testEnv({ vars: hermeticVars({ MLAGENT_PROFILE_PATH: `${a.path}:/nonexistent::${b.path}` }) });
  assert.equal((await loadProfile(env, "site-model")).name, "site-model");
  const yolo = await findProfile(env, "yolo");
  assert.equal(yolo.profile.description, "site override");
  assert.equal(yolo.source, `${b.path}/yolo.json`);
});

Deno.test("loadProfile() lists the known names and the closest one for an unknown name", async () => {
  const e = await badInputOf(loadProfile(testEnv(), "hunyuan-video"));
  assert.match(e.message, /unknown profile "hunyuan-video"; did you mean "hunyuan-video-i2v"\?/);
  assert.match(e.hint ?? "", /known profiles: hunyuan-video-i2v, morphic-frames-to-video, yolo/);
  assert.deepEqual(e.details.closest, "hunyuan-video-i2v");
  const far = await badInputOf(loadProfile(testEnv(), "stable-diffusion-xl"));
  assert.doesNotMatch(far.message, /did you mean/);
});

Deno.test("loadProfile() refuses names that are not safe path components", async () => {
  for (const name of ["Yolo", "-x", "a b", "yolo\0"]) {
    const e = await badInputOf(loadProfile(testEnv(), name));
    assert.match(e.message, /invalid profile name|NUL/);
  }
});

Deno.test("loadProfile() reports malformed JSON with file, line and column", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/broken.json`;
  await write(file, '{\n  "name": "x",\n  "stages": [\n    {"name": "a",}\n  ]\n}\n');
  const e = await badInputOf(loadProfile(testEnv(), file));
  assert.match(e.message, new RegExp(`^${file}:4:18: malformed JSON: trailing comma before \\}`));
  assert.equal(e.details.line, 4);
  assert.equal(e.details.column, 18);
});

Deno.test("loadProfile() reports a schema violation with the field path and the rule", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/p.json`;
  await write(file, minimal("p", { gpu: { required: true, min_count: 0 } }));
  const e = await badInputOf(loadProfile(testEnv(), file));
  assert.equal(e.message, `${file}:7:5: /gpu/min_count: must be >= 1, got 0`);
  assert.match(e.hint ?? "", /mlagent profiles lint/);
});

Deno.test("loadProfile() rejects an unpinned requirement and counts the other errors", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/p.json`;
  await write(file, minimal("p", { stages: [{ name: "app", packages: ["torch>=2.4", "xfuser"] }] }));
  const e = await badInputOf(loadProfile(testEnv(), file));
  assert.match(
    e.message,
    /\/stages\/0\/packages\/0: "torch>=2.4" is not pinned: ">=2.4" is a range.*\(and 1 more\)$/,
  );
  assert.equal((e.details.issues as unknown[]).length, 2);
});

Deno.test("loadProfile() names the allowed fields for a misspelt one", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/p.json`;
  await write(file, { ...minimal("p"), verfy: [] });
  const e = await badInputOf(loadProfile(testEnv(), file));
  assert.match(
    e.message,
    /\/verfy: unknown field "verfy" \(did you mean "verify"\?\); allowed: .*stages, verify, models/,
  );
});

Deno.test("loadProfile() says what is wrong with the file itself", async () => {
  await using dir = await tempDir();
  assert.match((await badInputOf(loadProfile(testEnv(), `${dir.path}/none.json`))).message, /not found/);
  assert.match((await badInputOf(loadProfile(testEnv(), `${dir.path}/`))).message, /directory|not found/);
  await write(`${dir.path}/empty.json`, "");
  assert.match(
    (await badInputOf(loadProfile(testEnv(), `${dir.path}/empty.json`))).message,
    /:1:1: malformed JSON/,
  );
});

Deno.test("loadProfile() refuses a profile-path file whose name field differs from its file name", async () => {
  await using dir = await tempDir();
  await write(`${dir.path}/alpha.json`, minimal("beta"));
  const env = testEnv({ vars: hermeticVars({ MLAGENT_PROFILE_PATH: dir.path }) });
  const e = await badInputOf(loadProfile(env, "alpha"));
  assert.match(e.message, /named "alpha.json" but declares name "beta"/);
});

Deno.test("listProfiles() lists path profiles, built-ins, shadowing and broken files", async () => {
  await using dir = await tempDir();
  await write(`${dir.path}/yolo.json`, minimal("yolo"));
  await write(`${dir.path}/good.json`, minimal("good"));
  await write(`${dir.path}/bad.json`, "{");
  await write(`${dir.path}/Not-A-Name.json`, minimal("x"));
  await write(`${dir.path}/notes.txt`, "ignored");
  const env = testEnv({ vars: hermeticVars({ MLAGENT_PROFILE_PATH: dir.path }) });
  const list = await listProfiles(env);
  const rows = list.map((
    e,
  ) => [e.name, e.source === "builtin" ? "builtin" : "dir", e.shadowed_by !== null, e.error !== null]);
  assert.deepEqual(rows, [
    ["bad", "dir", false, true],
    ["good", "dir", false, false],
    ["yolo", "dir", false, false],
    ["hunyuan-video-i2v", "builtin", false, false],
    ["morphic-frames-to-video", "builtin", false, false],
    ["yolo", "builtin", true, false],
  ]);
  assert.equal(list[5].shadowed_by, `${dir.path}/yolo.json`);
});

Deno.test("profileSha256() ignores key order and descriptive fields but not pins", async () => {
  const p = await loadProfile(testEnv(), "yolo");
  const reordered = JSON.parse(canonicalJson(p)) as Profile;
  const described: Profile = { ...p, description: "other words", sources: { x: "y" } };
  const repinned: Profile = structuredClone(p);
  repinned.stages[1].packages[0] = "opencv-python-headless==4.11.0.86";
  assert.equal(profileSha256(reordered), profileSha256(p));
  assert.equal(profileSha256(described), profileSha256(p));
  assert.notEqual(profileSha256(repinned), profileSha256(p));
  assert.match(profileSha256(p), /^[0-9a-f]{64}$/);
  assert.equal(stageSha256(repinned.stages[0]), stageSha256(p.stages[0]));
  assert.notEqual(stageSha256(repinned.stages[1]), stageSha256(p.stages[1]));
});

Deno.test("canonicalJson() sorts keys at every depth and drops undefined", () => {
  assert.equal(
    canonicalJson({ b: [{ d: 1, c: 2 }], a: undefined, e: null }),
    '{"b":[{"c":2,"d":1}],"e":null}',
  );
});
