/**
 * The one judgement of a model dir (issue 11): complete only when every listed file is there at its size with
 * its hash on record. Dirs left by a failed mlagent run, by `hf download` with and without its listing, with
 * parts of either tool, with records of other bytes, and edits only a re-hash can see.
 */
import assert from "node:assert/strict";
import { downloadRepo, verifyLocalModel } from "../../agent/download/mod.ts";
import { hfPartPath } from "../../agent/download/files.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { type HubServer, smallRepo } from "../support/hf_server.ts";

const FAST = { backoffBaseMs: 1, skipDiskCheck: true, stallTimeoutMs: 2000 };

function envFor(server: HubServer, vars: Record<string, string> = {}) {
  return testEnv({
    vars: hermeticVars({ HF_ENDPOINT: server.url, HF_HOME: "/nonexistent-hf-home", ...vars }),
    sleep: () => Promise.resolve(),
  });
}

const REC = ".cache/huggingface";

/** A dir as `hf download --local-dir` leaves it: the files and their records, no mlagent manifest. */
async function hfDir(server: HubServer, dir: string, opts: { include?: string[]; tree?: boolean } = {}) {
  await downloadRepo(envFor(server), { repo: server.repo, localDir: dir, include: opts.include, ...FAST });
  await Deno.remove(`${dir}/${REC}/mlagent_manifest.json`);
  if (opts.tree) {
    await Deno.mkdir(`${dir}/${REC}/trees`, { recursive: true });
    await Deno.writeTextFile(`${dir}/${REC}/trees/${server.commit}.json`, server.hfTreeJson());
  }
}

Deno.test("a run that failed mid-file leaves a dir that is incomplete, naming the partial and the missing files", async () => {
  await using server = smallRepo({ lfsSize: 2_000_000 });
  await using dir = await tempDir();
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "cut", afterBytes: 500_000 } });
  await assert.rejects(
    downloadRepo(envFor(server), {
      repo: server.repo,
      localDir: dir.path,
      ...FAST,
      parallel: 1,
      maxRetries: 1,
    }),
  );
  // The listing went to disk before the first byte; config.json was finished before the failure.
  const manifest = JSON.parse(await Deno.readTextFile(`${dir.path}/${REC}/mlagent_manifest.json`));
  assert.equal(manifest.schema_version, 2);
  assert.equal(manifest.completed_at, null);
  assert.equal(Object.keys(manifest.listing).length, 5);
  const v = await verifyLocalModel(envFor(server), { repo: server.repo, localDir: dir.path });
  assert.equal(v.complete, false);
  assert.equal(v.listing, "mlagent");
  assert.deepEqual(v.partial, ["model.safetensors"]);
  assert.deepEqual(v.missing, ["tokenizer/__init__.py", "tokenizer/vocab.txt", "transformer/diffusion.bin"]);
  // What the profile needs and what is there are judged apart: config.json alone is complete.
  const some = await verifyLocalModel(envFor(server), {
    repo: server.repo,
    localDir: dir.path,
    include: ["config.json"],
  });
  assert.equal(some.complete, true, JSON.stringify(some));
});

Deno.test("an hf download dir with its trees/<commit>.json: judged against that listing, include by include", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await hfDir(server, dir.path, { include: ["*.json", "tokenizer/*"], tree: true });
  const all = await verifyLocalModel(envFor(server), { repo: server.repo, localDir: dir.path });
  assert.equal(all.listing, "hf");
  assert.equal(all.complete, false);
  assert.deepEqual(all.missing, ["model.safetensors", "transformer/diffusion.bin"]);
  const json = await verifyLocalModel(envFor(server), {
    repo: server.repo,
    localDir: dir.path,
    include: ["*.json"],
  });
  assert.equal(json.complete, true, JSON.stringify(json));
  // A part huggingface_hub left (its own naming) makes the file partial, not just missing.
  const etag = server.entry("model.safetensors")!.sha256!;
  await Deno.writeFile(hfPartPath(dir.path, "model.safetensors", etag), new Uint8Array(10));
  const v = await verifyLocalModel(envFor(server), {
    repo: server.repo,
    localDir: dir.path,
    include: ["*.json", "*.safetensors"],
  });
  assert.deepEqual(v.partial, ["model.safetensors"]);
});

Deno.test("an hf download dir without a listing: complete only for files named one by one", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await hfDir(server, dir.path, { include: ["*.json", "tokenizer/*"] });
  const all = await verifyLocalModel(envFor(server), { repo: server.repo, localDir: dir.path });
  assert.equal(all.listing, "unknown");
  assert.equal(all.complete, false);
  assert.deepEqual([all.missing, all.partial, all.unverified], [[], [], []]);
  assert.match(all.reason ?? "", /file list of commit [0-9a-f]{12} is not recorded there/);
  assert.match(all.reason ?? "", /mlagent download acme\/tiny-model --local-dir/);
  const globbed = await verifyLocalModel(envFor(server), {
    repo: server.repo,
    localDir: dir.path,
    include: ["*.json"],
  });
  assert.equal(globbed.complete, false, "a glob may select files never fetched");
  const named = await verifyLocalModel(envFor(server), {
    repo: server.repo,
    localDir: dir.path,
    include: ["config.json", "tokenizer/vocab.txt"],
    requiredFiles: ["config.json"],
  });
  assert.equal(named.complete, true, JSON.stringify(named));
  const absent = await verifyLocalModel(envFor(server), {
    repo: server.repo,
    localDir: dir.path,
    include: ["config.json", "model.safetensors"],
  });
  assert.deepEqual(absent.missing, ["model.safetensors"]);
  // An online run records the listing and reuses every file there.
  const r = await downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.files_reused, 3);
  assert.equal(
    (await verifyLocalModel(envFor(server), { repo: server.repo, localDir: dir.path })).complete,
    true,
  );
});

Deno.test("a file whose record names other bytes (another revision's) is unverified until a download re-checks it", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, ...FAST });
  const rec = `${dir.path}/${REC}/download/tokenizer/vocab.txt.metadata`;
  await Deno.writeTextFile(rec, `${"1".repeat(40)}\n${"2".repeat(40)}\n${Date.now() / 1000}\n`);
  const v = await verifyLocalModel(envFor(server), { repo: server.repo, localDir: dir.path });
  assert.equal(v.complete, false);
  assert.deepEqual(v.unverified, ["tokenizer/vocab.txt"]);
  assert.match(v.reason ?? "", /1 file\(s\) present without a record of their hash: tokenizer\/vocab\.txt/);
  const r = await downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.files_fetched, 0, "the bytes were right: hashed and recorded, not refetched");
  assert.equal(
    (await verifyLocalModel(envFor(server), { repo: server.repo, localDir: dir.path })).complete,
    true,
  );
});

Deno.test("a same-size edit of a small file: the fast check sees a changed mtime, --deep sees it even with the mtime put back", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, ...FAST });
  const path = `${dir.path}/config.json`;
  const st = await Deno.stat(path);
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(path, text.replace("tiny", "TINY"));
  let v = await verifyLocalModel(envFor(server), { repo: server.repo, localDir: dir.path });
  assert.deepEqual(v.corrupt, ["config.json"]);
  assert.equal(v.hashed_files, 1, "only the changed file is hashed");
  // As `cp -p` or `rsync -t` would leave it: same size, old mtime. Only re-hashing can tell.
  await Deno.utime(path, st.atime!, st.mtime!);
  v = await verifyLocalModel(envFor(server), { repo: server.repo, localDir: dir.path });
  assert.equal(v.complete, true);
  assert.equal(v.hashed_files, 0);
  const env = envFor(server);
  v = await verifyLocalModel(env, { repo: server.repo, localDir: dir.path, deep: true });
  assert.deepEqual(v.corrupt, ["config.json"]);
  assert.equal(v.hashed_files, 5, "git blob sha1 for the small files, sha256 for the LFS ones");
  assert.ok(env.logs.some((l) => /re-hashing 5 files/.test(l)), env.logs.join("\n"));
  assert.ok(env.logs.some((l) => /hashed 5 files .*: 1 do not match/.test(l)), env.logs.join("\n"));
});

Deno.test("offline, a dir holding another revision says which it holds", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, ...FAST });
  const r = await downloadRepo(envFor(server, { HF_HUB_OFFLINE: "1" }), {
    repo: server.repo,
    revision: "v2.0",
    localDir: dir.path,
  });
  assert.equal(r.ok, false);
  assert.equal(r.reason, `the dir holds revision "main" (commit ${server.commit.slice(0, 12)}), not "v2.0"`);
  const ok = await downloadRepo(envFor(server, { HF_HUB_OFFLINE: "1" }), {
    repo: server.repo,
    revision: server.commit.slice(0, 10),
    localDir: dir.path,
  });
  assert.equal(ok.ok, true, "a commit prefix names what the dir holds");
});
