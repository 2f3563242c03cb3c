import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  contiguousEnd,
  downloadRepo,
  filterPaths,
  hostilePathReason,
  rangeChunkBytes,
  verifyLocalModel,
} from "../../agent/download/mod.ts";
import { validateRepoId } from "../../agent/download/hub.ts";
import { schedBusyMs, worthSplitting } from "../../agent/download/parts.ts";
import { MlagentError } from "../../agent/core/errors.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { contentBytes, type HubServer, smallRepo } from "../support/hf_server.ts";
import { writeFakeBin } from "../support/fake_bin.ts";

/** An Env pointed at the server whose sleeps are recorded and cut short (backoff must not slow tests). */
function envFor(server: HubServer, vars: Record<string, string> = {}) {
  const sleeps: number[] = [];
  const env = testEnv({
    vars: hermeticVars({ HF_ENDPOINT: server.url, HF_HOME: "/nonexistent-hf-home", ...vars }),
    sleep: (ms: number) => {
      sleeps.push(ms);
      return new Promise((r) => setTimeout(r, Math.min(ms, 5)));
    },
  });
  return Object.assign(env, { sleeps });
}

const FAST = { backoffBaseMs: 1, skipDiskCheck: true, stallTimeoutMs: 2000 };

async function assertFilesMatch(server: HubServer, dir: string) {
  for (
    const path of ["config.json", "tokenizer/vocab.txt", "model.safetensors", "transformer/diffusion.bin"]
  ) {
    const want = contentBytes(server.entry(path)!.file.content);
    const got = await Deno.readFile(`${dir}/${path}`);
    assert.equal(got.length, want.length, path);
    assert.equal(
      createHash("sha256").update(got).digest("hex"),
      createHash("sha256").update(want).digest("hex"),
      path,
    );
  }
}

Deno.test("validateRepoId() accepts owner/name and rejects the rest", () => {
  assert.equal(validateRepoId("tencent/HunyuanVideo-I2V"), null);
  assert.equal(validateRepoId("Wan-AI/Wan2.2-I2V-A14B"), null);
  for (const bad of ["gpt2", "a/b/c", "../x", "a/..", "a--b/c", "/x", "a/b.git", "a/ b", ""]) {
    assert.ok(validateRepoId(bad), bad);
  }
});

Deno.test("hostilePathReason() refuses absolute, .. and record-dir paths", () => {
  assert.equal(hostilePathReason("a/b.bin"), null);
  assert.match(hostilePathReason("/etc/passwd")!, /absolute/);
  assert.match(hostilePathReason("a/../../x")!, /\.\./);
  assert.ok(hostilePathReason(".cache/huggingface/download/x.metadata"));
  assert.ok(hostilePathReason("a//b"));
});

Deno.test("filterPaths() matches like fnmatch: * crosses folders, a trailing / means the folder", () => {
  const paths = ["config.json", "vae/config.json", "vae/w.safetensors", "x.bin"];
  assert.deepEqual(filterPaths(paths, ["*.json"]), ["config.json", "vae/config.json"]);
  assert.deepEqual(filterPaths(paths, ["vae/"]), ["vae/config.json", "vae/w.safetensors"]);
  assert.deepEqual(filterPaths(paths, undefined, ["*.bin", "vae/*"]), ["config.json"]);
});

Deno.test("download fetches regular and LFS files, writes hf-compatible records, and a second run fetches nothing", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  const env = envFor(server);
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.ok, true);
  assert.equal(r.commit, server.commit);
  assert.equal(r.files, 5);
  assert.equal(r.files_fetched, 5);
  assert.equal(r.fetched_bytes, r.total_bytes);
  await assertFilesMatch(server, dir.path);
  const meta = (await Deno.readTextFile(`${dir.path}/.cache/huggingface/download/model.safetensors.metadata`))
    .split("\n");
  assert.equal(meta[0], server.commit);
  assert.equal(meta[1], server.entry("model.safetensors")!.sha256);
  assert.ok(
    Number(meta[2]) * 1000 >= (await Deno.stat(`${dir.path}/model.safetensors`)).mtime!.getTime() - 1000,
  );
  const regular = (await Deno.readTextFile(`${dir.path}/.cache/huggingface/download/config.json.metadata`))
    .split("\n");
  assert.equal(regular[1], server.entry("config.json")!.oid);
  // The token-less run never sent an Authorization header; the LFS bodies came from the CDN host.
  assert.ok(server.requests.some((q) => q.host.startsWith("localhost") && q.path.startsWith("/cdn/")));

  const before = [...server.bytesSent.values()].reduce((a, b) => a + b, 0);
  const again = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(again.files_reused, 5);
  assert.equal(again.fetched_bytes, 0);
  assert.equal([...server.bytesSent.values()].reduce((a, b) => a + b, 0), before);
  const v = await verifyLocalModel(env, { repo: server.repo, localDir: dir.path });
  assert.equal(v.complete, true);
  assert.equal(v.files, 5);
});

Deno.test("download resumes a cut connection with a Range request; the server sends each byte once", async () => {
  await using server = smallRepo({ lfsSize: 2_000_000 });
  await using dir = await tempDir();
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "cut", afterBytes: 700_000 } });
  const env = envFor(server);
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.ok, true);
  assert.ok(r.retries >= 1);
  await assertFilesMatch(server, dir.path);
  const size = server.entry("model.safetensors")!.size;
  assert.ok(
    server.sent("model.safetensors") < size * 1.01,
    `sent ${server.sent("model.safetensors")} of ${size}`,
  );
  const ranged = server.requests.filter((q) => q.path.startsWith("/cdn/") && q.range?.startsWith("bytes=7"));
  assert.equal(ranged.length, 1, JSON.stringify(server.requests.map((q) => q.range)));
});

Deno.test("download retries 503 and 429, honouring Retry-After", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  server.addFault({ path: "config.json", on: "body", fault: { kind: "status", status: 503 }, times: 2 });
  server.addFault({
    path: "model.safetensors",
    on: "body",
    fault: { kind: "status", status: 429, retryAfterS: 3 },
  });
  server.addFault({ path: "*", on: "tree", fault: { kind: "status", status: 503 } });
  const env = envFor(server);
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.ok, true);
  assert.equal(r.retries, 4);
  assert.ok(env.sleeps.includes(3000), `sleeps ${env.sleeps}`);
  await assertFilesMatch(server, dir.path);
});

Deno.test("download restarts a file cleanly after a 416", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "cut", afterBytes: 100_000 } });
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "416" } });
  const env = envFor(server);
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.ok, true);
  assert.ok(env.logs.some((l) => /416.*restarting/.test(l)), env.logs.join("\n"));
  await assertFilesMatch(server, dir.path);
});

Deno.test("download restarts a file when the server ignores Range", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "cut", afterBytes: 100_000 } });
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "ignore-range" } });
  const env = envFor(server);
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.ok, true);
  assert.ok(env.logs.some((l) => /ignored the Range/.test(l)), env.logs.join("\n"));
  await assertFilesMatch(server, dir.path);
});

Deno.test("download restarts a partial file whose ETag changed between runs", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "cut", afterBytes: 100_000 } });
  const env = envFor(server);
  await assert.rejects(
    downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST, maxRetries: 1 }),
    /model\.safetensors/,
  );
  assert.ok(
    (await Deno.stat(`${dir.path}/.cache/huggingface/download/model.safetensors.incomplete`)).size > 0,
  );
  server.setFile({ path: "model.safetensors", content: { size: 300_000, seed: 99 }, lfs: true });
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.ok, true);
  // Other files aborted by the first run's failure may resume; this one must not.
  assert.ok(!env.logs.some((l) => /^model\.safetensors: resuming/.test(l)), env.logs.join("\n"));
  assert.ok(env.logs.some((l) => /model\.safetensors: .*ETag changed/.test(l)), env.logs.join("\n"));
  await assertFilesMatch(server, dir.path);
});

Deno.test("download aborts a stalled body with the watchdog and resumes", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  server.addFault({
    path: "model.safetensors",
    on: "body",
    fault: { kind: "stall", afterBytes: 50_000, ms: 5_000 },
  });
  const env = envFor(server);
  const t0 = Date.now();
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST, stallTimeoutMs: 300 });
  assert.equal(r.ok, true);
  assert.ok(Date.now() - t0 < 4_000);
  assert.ok(env.logs.some((l) => /watchdog/.test(l)), env.logs.join("\n"));
  assert.ok(server.requests.some((q) => q.range === `bytes=50000-${300_000 - 1}`));
  await assertFilesMatch(server, dir.path);
});

Deno.test("download deletes wrong bytes, fetches once more, and fails naming the file if they stay wrong", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "wrong-bytes", offset: 1234 } });
  const env = envFor(server);
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.ok, true);
  assert.ok(env.logs.some((l) => /do not match.*once more/.test(l)));
  await assertFilesMatch(server, dir.path);

  await using dir2 = await tempDir();
  server.addFault({
    path: "model.safetensors",
    on: "body",
    fault: { kind: "wrong-bytes", offset: 9 },
    times: 2,
  });
  await assert.rejects(
    downloadRepo(env, { repo: server.repo, localDir: dir2.path, ...FAST, include: ["model.*"] }),
    (e: unknown) =>
      e instanceof MlagentError && e.exitCode === 1 && /model\.safetensors.*sha256.*twice/.test(e.message),
  );
  await assert.rejects(Deno.stat(`${dir2.path}/model.safetensors`), Deno.errors.NotFound);
});

Deno.test("download sends the token to the Hub host only, never to the CDN host", async () => {
  await using server = smallRepo({ requireToken: "hf_sekrit_token_123" });
  await using dir = await tempDir();
  await using home = await tempDir();
  await Deno.writeTextFile(`${home.path}/token`, "hf_sekrit_token_123\n");
  const env = envFor(server, { HF_HOME: home.path });
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.ok, true);
  const cdn = server.requests.filter((q) => q.host.startsWith("localhost"));
  const hub = server.requests.filter((q) => q.host.startsWith("127.0.0.1"));
  assert.ok(cdn.length >= 2 && hub.length >= 4);
  assert.ok(cdn.every((q) => q.authorization === null));
  assert.ok(hub.every((q) => q.authorization === "Bearer hf_sekrit_token_123"));
  assert.ok(!env.logs.join("\n").includes("sekrit"));
});

Deno.test("download without access says private or gated and how to get access", async () => {
  await using server = smallRepo({ requireToken: "hf_needed", gated: true });
  await using dir = await tempDir();
  const env = envFor(server);
  await assert.rejects(
    downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST }),
    (e: unknown) =>
      e instanceof MlagentError && /gated/.test(e.message) && /request access/.test(e.hint ?? ""),
  );
  server.gated = false;
  await assert.rejects(
    downloadRepo(envFor(server, { HF_TOKEN: "hf_wrong_token" }), {
      repo: server.repo,
      localDir: dir.path,
      ...FAST,
    }),
    (e: unknown) =>
      e instanceof MlagentError && /private/.test(e.message) && !e.message.includes("hf_wrong_token") &&
      /token/.test(e.hint ?? ""),
  );
});

Deno.test("download follows a paged listing", async () => {
  await using server = smallRepo({ pageSize: 2 });
  await using dir = await tempDir();
  const r = await downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.files, 5);
  assert.ok(server.requests.filter((q) => q.path.includes("/tree/")).length >= 3);
  await assertFilesMatch(server, dir.path);
});

Deno.test("download refuses a listing with a hostile path and writes nothing", async () => {
  for (const hostile of ["../../escape.txt", "/etc/evil", "a/../../b"]) {
    await using server = smallRepo();
    await using dir = await tempDir();
    server.extraEntries.push({ type: "file", oid: "0".repeat(40), size: 3, path: hostile });
    await assert.rejects(
      downloadRepo(envFor(server), { repo: server.repo, localDir: `${dir.path}/target`, ...FAST }),
      (e: unknown) =>
        e instanceof MlagentError && e.exitCode === 2 && /nothing was written/.test(e.hint ?? ""),
    );
    assert.deepEqual([...Deno.readDirSync(dir.path)], []);
  }
});

Deno.test("download refuses a path that would escape through a symlink in the target", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await using outside = await tempDir();
  await Deno.mkdir(`${dir.path}/target`);
  await Deno.symlink(outside.path, `${dir.path}/target/tokenizer`);
  await assert.rejects(
    downloadRepo(envFor(server), { repo: server.repo, localDir: `${dir.path}/target`, ...FAST }),
    (e: unknown) => e instanceof MlagentError && e.exitCode === 2 && /symlink/.test(e.message),
  );
  assert.deepEqual([...Deno.readDirSync(outside.path)], []);
  assert.deepEqual([...Deno.readDirSync(`${dir.path}/target`)].map((e) => e.name), ["tokenizer"]);
});

Deno.test("download names a revision that does not exist (exit 1)", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await assert.rejects(
    downloadRepo(envFor(server), { repo: server.repo, revision: "v9-nope", localDir: dir.path, ...FAST }),
    (e: unknown) =>
      e instanceof MlagentError && e.exitCode === 1 && /revision "v9-nope" does not exist/.test(e.message),
  );
});

Deno.test("a revision that is a commit is listed while the Hub confirms it, and the listing is asked once", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  // The revision's first answer is a 503, and its retry waits until the tree has been asked: at once with the
  // early listing; without it the tree would come only after the revision's 200, and the wait gives up at 2 s.
  server.addFault({ path: "*", on: "revision", fault: { kind: "status", status: 503 } });
  const treeAsked = async () => {
    for (let i = 0; i < 400 && !server.requests.some((q) => q.path.includes("/tree/")); i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const env = testEnv({
    vars: hermeticVars({ HF_ENDPOINT: server.url, HF_HOME: "/nonexistent-hf-home" }),
    sleep: treeAsked,
  });
  const r = await downloadRepo(env, {
    repo: server.repo,
    revision: server.commit,
    localDir: dir.path,
    ...FAST,
  });
  assert.equal(r.ok, true);
  const api = server.requests.filter((q) => q.path.startsWith("/api/"));
  const kinds = api.map((q) => `${q.path.split("/")[5]} ${q.status}`);
  assert.deepEqual(kinds.filter((k) => k.startsWith("tree")), ["tree 200"], kinds.join(", "));
  assert.ok(kinds.indexOf("tree 200") < kinds.indexOf("revision 200"), kinds.join(", "));
  await assertFilesMatch(server, dir.path);

  // A branch name is confirmed first, as before: its commit is not known until the Hub says.
  await using other = await tempDir();
  server.requests.length = 0;
  await downloadRepo(envFor(server), { repo: server.repo, revision: "main", localDir: other.path, ...FAST });
  const order = server.requests.filter((q) => q.path.startsWith("/api/")).map((q) => q.path.split("/")[5]);
  assert.deepEqual(order, ["revision", "tree"]);
});

Deno.test("an early listing that fails is retried, logged and counted like any listing", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  server.addFault({ path: "*", on: "tree", fault: { kind: "status", status: 503 } });
  const env = envFor(server);
  const r = await downloadRepo(env, {
    repo: server.repo,
    revision: server.commit,
    localDir: dir.path,
    ...FAST,
  });
  assert.equal(r.ok, true);
  assert.equal(r.retries, 1);
  assert.ok(env.logs.some((l) => /file listing: .*503.*attempt 2\//.test(l)), env.logs.join("\n"));
  await assertFilesMatch(server, dir.path);
});

Deno.test("a commit the Hub does not know fails on the revision's word; its early listing changes nothing", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  const unknown = "0123456789abcdef0123456789abcdef01234567";
  await assert.rejects(
    downloadRepo(envFor(server), { repo: server.repo, revision: unknown, localDir: dir.path, ...FAST }),
    (e: unknown) =>
      e instanceof MlagentError && e.exitCode === 1 &&
      new RegExp(`revision "${unknown}" does not exist`).test(e.message),
  );
  assert.deepEqual([...Deno.readDirSync(dir.path)], []);
});

Deno.test("download with HF_HUB_OFFLINE=1 touches no network and lists what is missing", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, ...FAST });
  await Deno.remove(`${dir.path}/tokenizer/vocab.txt`);
  const n = server.requests.length;
  const r = await downloadRepo(envFor(server, { HF_HUB_OFFLINE: "1" }), {
    repo: server.repo,
    localDir: dir.path,
  });
  assert.equal(server.requests.length, n);
  assert.equal(r.ok, false);
  assert.equal(r.offline, true);
  assert.deepEqual(r.missing, ["tokenizer/vocab.txt"]);
});

Deno.test("verifyLocalModel() reads hf download records, catches a truncated file and a rewritten one", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  const env = envFor(server);
  await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  // Files finished by `hf download` only: no mlagent manifest, the .metadata records and hf's own listing.
  await Deno.remove(`${dir.path}/.cache/huggingface/mlagent_manifest.json`);
  await Deno.mkdir(`${dir.path}/.cache/huggingface/trees`);
  await Deno.writeTextFile(`${dir.path}/.cache/huggingface/trees/${server.commit}.json`, server.hfTreeJson());
  let v = await verifyLocalModel(env, {
    repo: server.repo,
    localDir: dir.path,
    requiredFiles: ["config.json"],
  });
  assert.equal(v.complete, true, JSON.stringify(v));
  assert.equal(v.listing, "hf");
  v = await verifyLocalModel(env, {
    repo: server.repo,
    localDir: dir.path,
    requiredFiles: ["vae/missing.bin"],
  });
  assert.deepEqual(v.missing, ["vae/missing.bin"]);
  assert.match(v.reason ?? "", /has no file "vae\/missing\.bin"/);

  await using dir2 = await tempDir();
  await downloadRepo(env, { repo: server.repo, localDir: dir2.path, ...FAST });
  await Deno.truncate(`${dir2.path}/model.safetensors`, 10);
  const bytes = await Deno.readFile(`${dir2.path}/transformer/diffusion.bin`);
  bytes[5] ^= 1;
  await Deno.writeFile(`${dir2.path}/transformer/diffusion.bin`, bytes);
  v = await verifyLocalModel(env, { repo: server.repo, localDir: dir2.path });
  assert.equal(v.complete, false);
  assert.deepEqual(v.partial, ["model.safetensors"]);
  assert.deepEqual(v.corrupt, ["transformer/diffusion.bin"]);
  // A later download heals both.
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir2.path, ...FAST });
  assert.equal(r.files_fetched, 2);
  await assertFilesMatch(server, dir2.path);
});

Deno.test("download fetches a large file as parallel ranges and resumes each range after a cut", async () => {
  await using server = smallRepo({ lfsSize: 3_000_000 });
  await using dir = await tempDir();
  server.addFault({
    path: "model.safetensors",
    on: "body",
    fault: { kind: "cut", afterBytes: 200_000 },
    times: 2,
  });
  const env = envFor(server);
  const r = await downloadRepo(env, {
    repo: server.repo,
    localDir: dir.path,
    ...FAST,
    rangeThresholdBytes: 1_000_000,
    rangeParts: 4,
    splitBelowBytesPerS: Infinity,
  });
  assert.equal(r.ok, true);
  const ranges = server.requests.filter((q) => q.path.startsWith("/cdn/") && q.range).map((q) => q.range);
  assert.ok(ranges.length >= 4 + 4, JSON.stringify(ranges));
  assert.ok(server.sent("model.safetensors") <= 3_000_000 * 1.01);
  await assertFilesMatch(server, dir.path);
});

Deno.test("a fresh file's headers come from its GET, with no HEAD; a file fetched as ranges from byte 0 asks a HEAD", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  assert.equal(
    (await downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, ...FAST })).ok,
    true,
  );
  assert.deepEqual(server.requests.filter((q) => q.method === "HEAD"), []);
  assert.equal(server.requests.filter((q) => q.method === "GET" && q.path.includes("/resolve/")).length, 5);
  await assertFilesMatch(server, dir.path);

  // Ranges from the first byte: a GET on /resolve/ of a regular file would bring its whole body first.
  server.setFile({ path: "big.bin", content: { size: 3_000_000, seed: 31 }, lfs: false });
  await using dir2 = await tempDir();
  const r = await downloadRepo(envFor(server), {
    repo: server.repo,
    localDir: dir2.path,
    ...FAST,
    include: ["big.bin"],
    rangeThresholdBytes: 1_000_000,
    rangeParts: 4,
    splitBelowBytesPerS: Infinity,
  });
  assert.equal(r.ok, true);
  const big = server.requests.filter((q) => q.path.endsWith("/big.bin"));
  assert.equal(big[0].method, "HEAD");
  assert.ok(big.slice(1).every((q) => q.method === "GET" && q.range !== null), JSON.stringify(big));
  assert.ok(server.sent("big.bin") <= 3_000_000 * 1.01, String(server.sent("big.bin")));
  assert.deepEqual(
    await Deno.readFile(`${dir2.path}/big.bin`),
    contentBytes(server.entry("big.bin")!.file.content),
  );
});

Deno.test("download ranges are many in-order chunks of a big file and the hash follows the gapless prefix", () => {
  const MiB = 1024 * 1024;
  assert.equal(rangeChunkBytes(1024 * MiB, 4), 32 * MiB);
  assert.equal(rangeChunkBytes(10 * 1024 * MiB, 4), 256 * MiB);
  assert.equal(rangeChunkBytes(3_000_000, 4), 750_000); // a small "large" file still gets one range per part
  const seg = (start: number, end: number, pos: number) => ({ start, end, pos });
  assert.equal(contiguousEnd([seg(0, 10, 10), seg(10, 20, 15), seg(20, 30, 30)]), 15);
  assert.equal(contiguousEnd([seg(10, 20, 20), seg(0, 10, 10)]), 20);
  assert.equal(contiguousEnd([seg(0, 10, 4), seg(10, 20, 20)]), 4);
});

Deno.test("a slow stream is split when its thread waits on the link, not when the CPU is what is slow", () => {
  assert.equal(schedBusyMs("3892092 3311163 1\n"), 7.203255);
  assert.equal(schedBusyMs("garbage"), null);
  assert.equal(worthSplitting(100, 1000), true); // mostly asleep waiting for bytes
  assert.equal(worthSplitting(600, 1000), false); // running or runnable 60% of the window
  assert.equal(worthSplitting(null, 1000), true); // no schedstat (not Linux, a test's /proc): the rate decides
  const real = schedBusyMs(Deno.readTextFileSync("/proc/self/schedstat"));
  assert.ok(real !== null && real > 0);
});

Deno.test("download splits a slow single stream of a large file into ranges and still verifies it", async () => {
  await using server = smallRepo({ lfsSize: 3_000_000 });
  await using dir = await tempDir();
  // The one stream stalls after 500 kB: judged slow, the rest of the file goes to other connections.
  server.addFault({
    path: "model.safetensors",
    on: "body",
    fault: { kind: "stall", afterBytes: 500_000, ms: 800 },
  });
  const r = await downloadRepo(envFor(server), {
    repo: server.repo,
    localDir: dir.path,
    ...FAST,
    rangeThresholdBytes: 1_000_000,
    rangeParts: 4,
    splitAfterMs: 200,
  });
  assert.equal(r.ok, true);
  assert.equal(r.retries, 0);
  const gets = server.requests.filter((q) => q.path.startsWith("/cdn/") && q.method === "GET");
  // One plain GET per large file (both start as one stream); only the stalled one was split.
  assert.equal(gets.filter((q) => !q.range).length, 2, JSON.stringify(gets.map((q) => q.range)));
  assert.ok(gets.filter((q) => q.range).length >= 2, JSON.stringify(gets.map((q) => q.range)));
  // The first stream stops at its shortened end; the ranges do not fetch its bytes again.
  assert.ok(server.sent("model.safetensors") <= 3_000_000 * 1.4, String(server.sent("model.safetensors")));
  await assertFilesMatch(server, dir.path);
});

Deno.test("download follows the Hub's relative redirect to /api/resolve-cache/ for regular files", async () => {
  await using server = smallRepo({ resolveCache: true, requireToken: "hf_cache_token" });
  await using dir = await tempDir();
  const r = await downloadRepo(envFor(server, { HF_TOKEN: "hf_cache_token" }), {
    repo: server.repo,
    localDir: dir.path,
    ...FAST,
  });
  assert.equal(r.ok, true);
  assert.ok(server.requests.some((q) => q.path.startsWith("/api/resolve-cache/")));
  // The redirect stays on the Hub host, so the token goes along; the CDN still never sees it.
  assert.ok(
    server.requests.filter((q) => q.path.startsWith("/api/resolve-cache/")).every((q) =>
      q.authorization === "Bearer hf_cache_token"
    ),
  );
  await assertFilesMatch(server, dir.path);
});

Deno.test("download checks free space against the bytes still to fetch before starting", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await using bin = await tempDir();
  await writeFakeBin(bin.path, "df", {
    stdout: "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/x 1000000 999000 1000 100% /\n",
  });
  const env = envFor(server, { PATH: `${bin.path}:${Deno.env.get("PATH")}` });
  await assert.rejects(
    downloadRepo(env, { repo: server.repo, localDir: `${dir.path}/t`, backoffBaseMs: 1 }),
    (e: unknown) => e instanceof MlagentError && e.exitCode === 1 && /not enough free space/.test(e.message),
  );
  assert.equal(server.requests.filter((q) => q.path.includes("/resolve/")).length, 0);
});

Deno.test("download retries a resolve answer that gets no headers within the stall timeout", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  server.addFault({ path: "config.json", on: "resolve", fault: { kind: "stall", afterBytes: 0, ms: 1500 } });
  const env = envFor(server);
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST, stallTimeoutMs: 300 });
  assert.equal(r.ok, true);
  assert.ok(env.logs.some((l) => /config\.json: no answer .* within 300 ms/.test(l)), env.logs.join("\n"));
  await assertFilesMatch(server, dir.path);
});

Deno.test("download puts a total row and a row per file in flight on the progress board, all ended after", async () => {
  await using server = smallRepo();
  server.addFault({
    path: "model.safetensors",
    on: "body",
    fault: { kind: "stall", afterBytes: 1000, ms: 1300 },
  });
  await using dir = await tempDir();
  const env = envFor(server);
  const updates: string[] = [];
  const open = new Set<string>();
  env.progress = {
    row(label) {
      open.add(label);
      return { update: (text) => void updates.push(`${label} ${text}`), done: () => void open.delete(label) };
    },
  };
  await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.ok(updates.some((l) => /^acme\/tiny-model: .*\/.* \(\d\/5 files\)$/.test(l)), updates.join("\n"));
  assert.ok(updates.some((l) => /^ {2}model\.safetensors .*\/293\.0 KiB/.test(l)), updates.join("\n"));
  assert.deepEqual([...open], [], "every row is ended");
});

Deno.test("verifyLocalModel() after a narrow --include reports the files a wider include still needs", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  const env = envFor(server);
  await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST, include: ["*.json"] });
  assert.equal(
    (await verifyLocalModel(env, { repo: server.repo, localDir: dir.path, include: ["*.json"] })).complete,
    true,
  );
  const all = await verifyLocalModel(env, { repo: server.repo, localDir: dir.path });
  assert.equal(all.complete, false);
  assert.deepEqual(all.missing, [
    "model.safetensors",
    "tokenizer/__init__.py",
    "tokenizer/vocab.txt",
    "transformer/diffusion.bin",
  ]);
});

Deno.test("download fetches required files even outside --include, and fails naming a required file the repo lacks", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  const env = envFor(server);
  const r = await downloadRepo(env, {
    repo: server.repo,
    localDir: dir.path,
    ...FAST,
    include: ["*.json"],
    requiredFiles: ["model.safetensors"],
  });
  assert.equal(r.files, 2);
  assert.ok((await Deno.stat(`${dir.path}/model.safetensors`)).isFile);
  await assert.rejects(
    downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST, requiredFiles: ["vae/missing.bin"] }),
    (e: unknown) => e instanceof MlagentError && e.exitCode === 1 && /vae\/missing\.bin/.test(e.message),
  );
});

Deno.test("download asks the Hub for a fresh CDN link when the signed one is refused mid-file", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "cut", afterBytes: 100_000 } });
  server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "status", status: 403 } });
  const env = envFor(server);
  const r = await downloadRepo(env, { repo: server.repo, localDir: dir.path, ...FAST });
  assert.equal(r.ok, true);
  assert.ok(env.logs.some((l) => /CDN link was refused/.test(l)), env.logs.join("\n"));
  // The first resolve answer is the GET's (its headers stand for a HEAD); the fresh link, a HEAD.
  const resolves = server.requests.filter((q) =>
    q.path.includes("/resolve/") && q.path.endsWith("/model.safetensors")
  );
  assert.deepEqual(resolves.map((q) => q.method), ["GET", "HEAD"]);
  assert.ok(server.sent("model.safetensors") < 300_000 * 1.01);
  await assertFilesMatch(server, dir.path);
});
