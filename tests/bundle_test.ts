/**
 * The one-file build: `deno bundle` puts mlagent, its built-in profiles and schema, and the npm libraries it
 * uses (@cfworker/json-schema, jsonc-parser, @msgpack/msgpack) into one JavaScript file that runs from an
 * empty directory with an empty Deno cache, so nothing is read from beside the source or fetched at run time.
 * One bundle serves every assertion.
 */
import assert from "node:assert/strict";
import { VERSION } from "../agent/cli.ts";
import { hermeticVars, REPO_ROOT, tempDir } from "./support/env.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function output(cmd: string[], cwd: string, env: Record<string, string>): Promise<Run> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("the deno bundle of main.ts runs from an empty directory with the libraries and profiles inside", async (t) => {
  await using dir = await tempDir();
  const bundle = `${dir.path}/mlagent.js`;
  const built = await output(
    [Deno.execPath(), "bundle", "--quiet", `${REPO_ROOT}/main.ts`, "-o", bundle],
    REPO_ROOT,
    hermeticVars(),
  );
  assert.equal(built.code, 0, built.stderr);

  const empty = `${dir.path}/empty`;
  await Deno.mkdir(empty);
  // A cache of its own: the bundle must not need a module or npm package from anywhere but itself.
  const vars = hermeticVars({ DENO_DIR: `${dir.path}/deno-dir`, XDG_STATE_HOME: `${dir.path}/state` });
  const mlagent = (...args: string[]) =>
    output([Deno.execPath(), "run", "--allow-all", "--quiet", "--cached-only", bundle, ...args], empty, vars);

  await t.step("--version", async () => {
    const r = await mlagent("--version");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `mlagent ${VERSION}\n`);
  });

  await t.step("profiles list --json names the built-in profiles", async () => {
    const r = await mlagent("profiles", "list", "--json");
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { ok: boolean; profiles: { name: string; source: string }[] };
    assert.equal(doc.ok, true);
    assert.deepEqual(
      doc.profiles.filter((p) => p.source === "builtin").map((p) => p.name),
      ["hunyuan-video-i2v", "morphic-frames-to-video", "yolo"],
    );
  });

  await t.step("profiles lint words schema and syntax errors with line and column", async () => {
    const misspelt = `${dir.path}/misspelt.json`;
    await Deno.writeTextFile(misspelt, '{\n  "name": "misspelt",\n  "gpus": 1\n}\n');
    const r = await mlagent("profiles", "lint", misspelt);
    assert.equal(r.code, 2, r.stderr);
    const all = r.stdout + r.stderr;
    assert.match(all, new RegExp(`${misspelt}:3:3: /gpus: unknown field "gpus" \\(did you mean "gpu"\\?\\)`));
    assert.match(all, /\/description: required property "description" is missing/);

    const broken = `${dir.path}/broken.json`;
    await Deno.writeTextFile(broken, '{\n  "name": "broken",\n}\n');
    const b = await mlagent("profiles", "lint", broken);
    assert.equal(b.code, 2, b.stderr);
    assert.match(b.stdout + b.stderr, new RegExp(`${broken}:3:1: .*trailing comma before \\}`));
  });

  await t.step("cache info reads pip's msgpack cache entries and names a torn one", async () => {
    const cache = `${dir.path}/cache`;
    const entryDir = `${cache}/pip/http/a/b/c/d/e`;
    await Deno.mkdir(entryDir, { recursive: true });
    // cc=4, then a map of two entries whose first key, "response", is cut after three letters.
    const torn = new Uint8Array([...new TextEncoder().encode("cc=4,"), 0x82, 0xa8, 0x72, 0x65, 0x73]);
    await Deno.writeFile(`${entryDir}/${"ab".repeat(28)}`, torn);
    const r = await output(
      [Deno.execPath(), "run", "--allow-all", "--quiet", "--cached-only", bundle, "cache", "info", "--json"],
      empty,
      { ...vars, MLAGENT_CACHE_DIR: cache },
    );
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { corrupt: { installer: string; reason: string }[] };
    assert.deepEqual(doc.corrupt.map((c) => [c.installer, c.reason]), [
      ["pip", "cached response is unreadable (msgpack data ends early)"],
    ]);
  });
});
