/**
 * `download --cache` / `layout: "hub-cache"`: the Hugging Face hub cache as huggingface_hub writes it
 * (models--ORG--NAME/blobs/<etag>, snapshots/<commit>/<path> as relative symlinks, refs/<revision> holding
 * a bare commit hash, trees/<commit>.json). Both directions: a cache mlagent filled has exactly hf's shape,
 * and a cache laid out by hand the way the real client leaves it is judged and reused by mlagent.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { downloadRepo, modelTarget, pointerTarget, verifyLocalModel } from "../../agent/download/mod.ts";
import { inspectModels } from "../../agent/status/models.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import { lintProfile } from "../../agent/profiles/mod.ts";
import { mlagentArgv, runMlagent } from "../support/cli.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { contentBytes, type HubServer, smallRepo } from "../support/hf_server.ts";

const FAST = { backoffBaseMs: 1, skipDiskCheck: true, stallTimeoutMs: 2000 };
const PATHS = [
  "config.json",
  "tokenizer/__init__.py",
  "tokenizer/vocab.txt",
  "model.safetensors",
  "transformer/diffusion.bin",
];
const opts = { sanitizeResources: false, sanitizeOps: false };

function envFor(server: HubServer, cache: string, vars: Record<string, string> = {}) {
  return testEnv({
    vars: hermeticVars({
      HF_ENDPOINT: server.url,
      HF_HOME: "/nonexistent-hf-home",
      HF_HUB_CACHE: cache,
      ...vars,
    }),
    sleep: (ms: number) => new Promise((r) => setTimeout(r, Math.min(ms, 5))),
  });
}

const blobOf = (server: HubServer, path: string) => {
  const e = server.entry(path)!;
  return e.sha256 ?? e.oid;
};

/** What the real client checks of a cache: refs bare, links relative into blobs/, blobs named by their hash. */
async function assertHfShape(server: HubServer, repoDir: string) {
  const ref = await Deno.readTextFile(`${repoDir}/refs/main`);
  assert.equal(ref, server.commit, "refs/main holds the bare commit hash, no newline");
  for (const path of PATHS) {
    const pointer = `${repoDir}/snapshots/${server.commit}/${path}`;
    const link = await Deno.readLink(pointer);
    assert.ok(!link.startsWith("/"), `${path} links relatively: ${link}`);
    assert.equal(link, pointerTarget(path, blobOf(server, path)));
    const want = contentBytes(server.entry(path)!.file.content);
    const got = await Deno.readFile(pointer);
    assert.equal(
      createHash("sha256").update(got).digest("hex"),
      createHash("sha256").update(want).digest("hex"),
      path,
    );
    assert.ok((await Deno.lstat(`${repoDir}/blobs/${blobOf(server, path)}`)).isFile);
  }
  const tree = JSON.parse(await Deno.readTextFile(`${repoDir}/trees/${server.commit}.json`));
  assert.equal(tree.format_version, 1);
  assert.deepEqual(Object.keys(tree.files).sort(), [...PATHS].sort());
  assert.equal(tree.files["model.safetensors"].lfs_sha256, server.entry("model.safetensors")!.sha256);
  const leftovers = [...Deno.readDirSync(`${repoDir}/blobs`)].filter((e) => e.name.includes("."));
  assert.deepEqual(leftovers, [], "no part or temp file is left in blobs/");
}

/** The cache the real client leaves after `hf download REPO` (hand-made: blobs, relative links, refs, trees). */
async function writeHfCache(server: HubServer, repoDir: string, opts: { tree: boolean; skip?: string[] }) {
  const snap = `${repoDir}/snapshots/${server.commit}`;
  await Deno.mkdir(`${repoDir}/blobs`, { recursive: true });
  await Deno.mkdir(`${repoDir}/refs`, { recursive: true });
  for (const path of PATHS) {
    if (opts.skip?.includes(path)) continue;
    const blob = blobOf(server, path);
    await Deno.writeFile(`${repoDir}/blobs/${blob}`, contentBytes(server.entry(path)!.file.content));
    const pointer = `${snap}/${path}`;
    await Deno.mkdir(pointer.slice(0, pointer.lastIndexOf("/")), { recursive: true });
    await Deno.symlink(pointerTarget(path, blob), pointer);
  }
  await Deno.writeTextFile(`${repoDir}/refs/main`, server.commit);
  if (opts.tree) {
    await Deno.mkdir(`${repoDir}/trees`, { recursive: true });
    await Deno.writeTextFile(`${repoDir}/trees/${server.commit}.json`, server.hfTreeJson());
  }
}

Deno.test("pointerTarget() is os.path.relpath from the snapshot folder of the path to its blob", () => {
  assert.equal(pointerTarget("config.json", "ab"), "../../blobs/ab");
  assert.equal(pointerTarget("a/b/c.bin", "ab"), "../../../../blobs/ab");
});

Deno.test("download --cache writes hf's cache layout; a second run fetches nothing; verify says complete", async () => {
  await using server = smallRepo();
  await using tmp = await tempDir();
  const env = envFor(server, `${tmp.path}/hub`);
  const r = await downloadRepo(env, { repo: server.repo, layout: "hub-cache", ...FAST });
  const repoDir = `${tmp.path}/hub/models--acme--tiny-model`;
  assert.equal(r.ok, true);
  assert.equal(r.layout, "hub-cache");
  assert.equal(r.local_dir, `${repoDir}/snapshots/${server.commit}`);
  assert.equal(r.files_fetched, 5);
  await assertHfShape(server, repoDir);
  assert.ok((await Deno.stat(`${tmp.path}/hub/CACHEDIR.TAG`)).isFile);

  const again = await downloadRepo(env, { repo: server.repo, layout: "hub-cache", ...FAST });
  assert.equal(again.files_fetched, 0);
  assert.equal(again.files_reused, 5);

  const v = await verifyLocalModel(env, { repo: server.repo, layout: "hub-cache" });
  assert.equal(v.complete, true, v.reason ?? "");
  assert.equal(v.listing, "mlagent");
  assert.equal(v.local_dir, r.local_dir);
  const deep = await verifyLocalModel(env, { repo: server.repo, layout: "hub-cache", deep: true });
  assert.equal(deep.complete, true);
  assert.equal(deep.hashed_files, 5);
});

Deno.test("download --cache resumes a blob cut mid-body from blobs/<etag>.incomplete", async () => {
  await using server = smallRepo({ lfsSize: 2_000_000 });
  await using tmp = await tempDir();
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "cut", afterBytes: 700_000 } });
  const env = envFor(server, `${tmp.path}/hub`);
  const r = await downloadRepo(env, { repo: server.repo, layout: "hub-cache", ...FAST });
  assert.equal(r.ok, true);
  assert.ok(r.retries >= 1);
  const size = server.entry("model.safetensors")!.size;
  assert.ok(server.sent("model.safetensors") < size * 1.01, `sent ${server.sent("model.safetensors")}`);
  await assertHfShape(server, `${tmp.path}/hub/models--acme--tiny-model`);
});

Deno.test("download --cache refetches a blob whose bytes do not match its name", async () => {
  await using server = smallRepo();
  await using tmp = await tempDir();
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "wrong-bytes", offset: 1234 } });
  const env = envFor(server, `${tmp.path}/hub`);
  const r = await downloadRepo(env, { repo: server.repo, layout: "hub-cache", ...FAST });
  assert.equal(r.ok, true);
  assert.ok(env.logs.some((l) => /do not match.*once more/.test(l)), env.logs.join("\n"));
  await assertHfShape(server, `${tmp.path}/hub/models--acme--tiny-model`);
});

Deno.test("a cache the real client filled (with its trees listing) is complete and reused: nothing fetched", async () => {
  await using server = smallRepo();
  await using tmp = await tempDir();
  const repoDir = `${tmp.path}/hub/models--acme--tiny-model`;
  await writeHfCache(server, repoDir, { tree: true });
  const env = envFor(server, `${tmp.path}/hub`);
  const v = await verifyLocalModel(env, { repo: server.repo, layout: "hub-cache" });
  assert.equal(v.complete, true, v.reason ?? "");
  assert.equal(v.listing, "hf");
  const r = await downloadRepo(env, { repo: server.repo, layout: "hub-cache", ...FAST });
  assert.equal(r.files_fetched, 0);
  assert.equal(r.files_reused, 5);
  assert.equal(server.requests.filter((q) => q.path.startsWith("/cdn/")).length, 0);
  await assertHfShape(server, repoDir);
});

Deno.test("an hf cache missing a file or holding hf's part names it; without a listing it is not provable", async () => {
  await using server = smallRepo();
  await using tmp = await tempDir();
  const repoDir = `${tmp.path}/hub/models--acme--tiny-model`;
  await writeHfCache(server, repoDir, { tree: true, skip: ["model.safetensors", "config.json"] });
  // huggingface_hub's part: blobs/<etag>.<8 hex>.incomplete (file_download.py, since PR #4228).
  await Deno.writeFile(
    `${repoDir}/blobs/${blobOf(server, "model.safetensors")}.0badcafe.incomplete`,
    new Uint8Array(10),
  );
  const env = envFor(server, `${tmp.path}/hub`);
  const v = await verifyLocalModel(env, { repo: server.repo, layout: "hub-cache" });
  assert.equal(v.complete, false);
  assert.deepEqual(v.missing, ["config.json"]);
  assert.deepEqual(v.partial, ["model.safetensors"]);

  await using tmp2 = await tempDir();
  const noTree = `${tmp2.path}/hub/models--acme--tiny-model`;
  await writeHfCache(server, noTree, { tree: false });
  const v2 = await verifyLocalModel(envFor(server, `${tmp2.path}/hub`), {
    repo: server.repo,
    layout: "hub-cache",
  });
  assert.equal(v2.complete, false);
  assert.match(v2.reason ?? "", /file list .* is not recorded/);
  const named = await verifyLocalModel(envFor(server, `${tmp2.path}/hub`), {
    repo: server.repo,
    layout: "hub-cache",
    include: ["config.json", "model.safetensors"],
  });
  assert.equal(named.complete, true, named.reason ?? "");
});

Deno.test("a snapshot link pointing at another blob is corrupt; a blob rewritten after mlagent saw it is hashed", async () => {
  await using server = smallRepo();
  await using tmp = await tempDir();
  const env = envFor(server, `${tmp.path}/hub`);
  await downloadRepo(env, { repo: server.repo, layout: "hub-cache", ...FAST });
  const repoDir = `${tmp.path}/hub/models--acme--tiny-model`;
  const snap = `${repoDir}/snapshots/${server.commit}`;
  await Deno.remove(`${snap}/config.json`);
  await Deno.symlink(
    pointerTarget("config.json", blobOf(server, "tokenizer/vocab.txt")),
    `${snap}/config.json`,
  );
  const blob = `${repoDir}/blobs/${blobOf(server, "model.safetensors")}`;
  const bytes = await Deno.readFile(blob);
  bytes[10] ^= 1;
  await Deno.writeFile(blob, bytes);
  await Deno.utime(blob, new Date(), new Date(Date.now() + 5000));
  const v = await verifyLocalModel(env, { repo: server.repo, layout: "hub-cache" });
  assert.equal(v.complete, false);
  assert.deepEqual(v.partial.concat(v.corrupt).sort(), ["config.json", "model.safetensors"]);
});

Deno.test("a profile model with layout hub-cache: status judges the snapshot, local_dir is the snapshot folder", async () => {
  await using server = smallRepo();
  await using tmp = await tempDir();
  const env = envFor(server, `${tmp.path}/hub`);
  const spec = { repo: server.repo, layout: "hub-cache" as const, required_files: ["config.json"] };
  const before = modelTarget(env, spec);
  assert.equal(before.dir, `${tmp.path}/hub/models--acme--tiny-model`, "nothing fetched: the repo folder");
  await downloadRepo(env, { repo: server.repo, layout: "hub-cache", ...FAST });
  const after = modelTarget(env, spec);
  assert.equal(after.dir, `${tmp.path}/hub/models--acme--tiny-model/snapshots/${server.commit}`);
  assert.equal(modelTarget(env, { ...spec, revision: server.commit }).dir, after.dir);
  const [m] = await inspectModels(env, { models: [spec] } as unknown as Profile);
  assert.equal(m.complete, true, m.reason ?? "");
  assert.equal(m.local_dir, after.dir);
  await Deno.remove(`${after.dir}/transformer/diffusion.bin`);
  const [gone] = await inspectModels(env, { models: [spec] } as unknown as Profile);
  assert.equal(gone.complete, false);
  assert.deepEqual(gone.missing, ["transformer/diffusion.bin"]);
});

Deno.test(
  "mlagent download --cache: prints the snapshot, --verify agrees, --cache with --local-dir is refused",
  opts,
  async () => {
    await using server = smallRepo();
    await using tmp = await tempDir();
    const vars = { HF_ENDPOINT: server.url, HF_HOME: `${tmp.path}/hf` };
    const r = await runMlagent(["download", server.repo, "--cache", "-q"], { env: vars });
    assert.equal(r.code, 0, r.stderr);
    const snap = `${tmp.path}/hf/hub/models--acme--tiny-model/snapshots/${server.commit}`;
    assert.equal(r.stdout.trim(), snap);
    const v = await runMlagent(["download", server.repo, "--cache", "--verify", "--json"], { env: vars });
    assert.equal(v.code, 0, v.stderr);
    const doc = v.json<{ complete: boolean; layout: string; local_dir: string }>();
    assert.deepEqual([doc.complete, doc.layout, doc.local_dir], [true, "hub-cache", snap]);
    const both = await runMlagent(["download", server.repo, "--cache", "--local-dir", tmp.path], {
      env: vars,
    });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--cache and --local-dir/);
    assert.match(both.stderr, /hint:/);
  },
);

Deno.test(
  "mlagent download --cache SIGKILLed mid-blob: --verify names it partial, a rerun resumes the part",
  opts,
  async () => {
    const MiB = 1024 * 1024;
    await using server = smallRepo({ lfsSize: 8 * MiB });
    await using tmp = await tempDir();
    server.addFault({
      path: "model.safetensors",
      on: "body",
      fault: { kind: "stall", afterBytes: 3 * MiB, ms: 120_000 },
    });
    const vars = { HF_ENDPOINT: server.url, HF_HOME: `${tmp.path}/hf`, MLAGENT_DOWNLOAD_BACKOFF_MS: "10" };
    const repoDir = `${tmp.path}/hf/hub/models--acme--tiny-model`;
    const part = `${repoDir}/blobs/${blobOf(server, "model.safetensors")}.incomplete`;
    const [cmd, ...args] = mlagentArgv(["download", server.repo, "--cache"]);
    const child = new Deno.Command(cmd, {
      args,
      env: hermeticVars(vars),
      clearEnv: true,
      stdout: "null",
      stderr: "piped",
    })
      .spawn();
    const deadline = Date.now() + 60_000;
    while (((await Deno.stat(part).catch(() => null))?.size ?? 0) < 3 * MiB && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    const out = await child.output();
    assert.equal(out.signal, "SIGKILL", new TextDecoder().decode(out.stderr));
    const sentBefore = server.sent("model.safetensors");

    const v = await runMlagent(["download", server.repo, "--cache", "--verify", "--json"], { env: vars });
    assert.equal(v.code, 1);
    assert.ok(v.json<{ partial: string[] }>().partial.includes("model.safetensors"), v.stdout);

    const again = await runMlagent(["download", server.repo, "--cache", "--json"], {
      env: vars,
      timeoutMs: 60_000,
    });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.json<{ files_resumed: number }>().files_resumed >= 1, again.stdout);
    const resent = server.sent("model.safetensors") - sentBefore;
    assert.ok(resent < server.entry("model.safetensors")!.size, `the rerun sent ${resent} bytes`);
    await assertHfShape(server, repoDir);
  },
);

Deno.test("a profile model with layout hub-cache and a local_dir is refused by lint, naming the field", async () => {
  const doc = JSON.parse(
    await Deno.readTextFile(new URL("../../profiles/hunyuan-video-i2v.json", import.meta.url)),
  );
  doc.models = [{ repo: "a/b", layout: "hub-cache", local_dir: "x" }];
  const errors = lintProfile(doc, "t").filter((i) => i.severity === "error").map((i) => i.path);
  assert.deepEqual(errors, ["/models/0/local_dir"]);
  doc.models = [{ repo: "a/b", layout: "hub-cache" }];
  assert.deepEqual(lintProfile(doc, "t").filter((i) => i.severity === "error"), []);
});
