import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";

const minimal = (name: string, packages = ["demo-pkg==1.0"]) =>
  JSON.stringify(
    {
      name,
      description: `profile ${name}`,
      python: ">=3.10",
      gpu: { required: false },
      cuda_variants: [],
      builds_extensions: false,
      disk_gib: 1,
      stages: [{ name: "app", packages }],
      verify: [],
      models: [],
    },
    null,
    2,
  );

Deno.test("mlagent profiles list --json lists built-ins and MLAGENT_PROFILE_PATH entries", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/site.json`, minimal("site"));
  const r = await runMlagent(["profiles", "list", "--json"], { env: { MLAGENT_PROFILE_PATH: dir.path } });
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json<
    {
      ok: boolean;
      schema_version: number;
      profile_path: string[];
      profiles: { name: string; source: string }[];
    }
  >();
  assert.equal(doc.ok, true);
  assert.deepEqual(doc.profile_path, [dir.path]);
  assert.deepEqual(doc.profiles.map((p) => p.name), [
    "site",
    "hunyuan-video-i2v",
    "morphic-frames-to-video",
    "yolo",
  ]);
  assert.equal(doc.profiles[0].source, `${dir.path}/site.json`);
});

Deno.test("mlagent profiles show prints the plan for people and the full profile with --json", async () => {
  const text = await runMlagent(["profiles", "show", "hunyuan-video-i2v"]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^hunyuan-video-i2v: /);
  assert.match(text.stdout, /flash-attn \[no cache; no build isolation; builds extensions; MAX_JOBS=4/);
  assert.match(text.stdout, /flash-attn==2\.6\.3/);
  const json = await runMlagent(["profiles", "show", "yolo", "--json"]);
  const doc = json.json<{ ok: boolean; source: string; profile_sha256: string; profile: { name: string } }>();
  assert.equal(doc.source, "builtin:yolo");
  assert.match(doc.profile_sha256, /^[0-9a-f]{64}$/);
  assert.equal(doc.profile.name, "yolo");
});

Deno.test("mlagent profiles show of an unknown name exits 2 naming the closest profile", async () => {
  const r = await runMlagent(["profiles", "show", "yolov8", "--json"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown profile "yolov8"; did you mean "yolo"\?/);
  const doc = r.json<{ ok: boolean; error: { code: string; closest: string; known: string[] } }>();
  assert.equal(doc.ok, false);
  assert.equal(doc.error.code, "bad-input");
  assert.equal(doc.error.closest, "yolo");
});

Deno.test("mlagent profiles lint prints file: path: rule lines and exits 2 on errors, 0 when clean", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/good.json`, minimal("good"));
  await Deno.writeTextFile(`${dir.path}/loose.json`, minimal("loose", ["torch>=2.4", "ok==1"]));
  await Deno.writeTextFile(`${dir.path}/broken.json`, '{\n  "name": "x",\n}\n');
  const clean = await runMlagent(["profiles", "lint", "good.json", "yolo"], { cwd: dir.path });
  assert.equal(clean.code, 0, clean.stderr);
  assert.equal(clean.stdout, "");
  assert.match(clean.stderr, /0 errors, 0 warnings in 2 files/);

  const bad = await runMlagent(["profiles", "lint", "good.json", "loose.json", "broken.json"], {
    cwd: dir.path,
  });
  assert.equal(bad.code, 2);
  assert.deepEqual(bad.stdout.trim().split("\n"), [
    'loose.json:15:9: /stages/0/packages/0: "torch>=2.4" is not pinned: ">=2.4" is a range, not an exact pin: use == ' +
    "(or set allow_unpinned on the stage with a reason)",
    "broken.json:3:1: malformed JSON: trailing comma before }",
  ]);

  const json = await runMlagent(["profiles", "lint", "loose.json", "missing.json", "--json"], {
    cwd: dir.path,
  });
  assert.equal(json.code, 2);
  const doc = json.json<
    {
      ok: boolean;
      errors: number;
      files: {
        file: string;
        ok: boolean;
        issues: { path: string; rule: string; line?: number; column?: number }[];
      }[];
    }
  >();
  assert.equal(doc.ok, false);
  assert.equal(doc.errors, 2);
  assert.deepEqual(doc.files.map((f) => [f.file, f.ok]), [["loose.json", false], ["missing.json", false]]);
  assert.equal(doc.files[0].issues[0].path, "/stages/0/packages/0");
  assert.deepEqual([doc.files[0].issues[0].line, doc.files[0].issues[0].column], [15, 9]);
  assert.match(doc.files[1].issues[0].rule, /cannot read: file not found/);
});

Deno.test("mlagent profiles without a known subcommand is a usage error", async () => {
  for (
    const argv of [["profiles"], ["profiles", "remove", "x"], ["profiles", "show"], ["profiles", "lint"]]
  ) {
    const r = await runMlagent(argv);
    assert.equal(r.code, 2, argv.join(" "));
    assert.match(r.stderr, /profiles/);
  }
});
