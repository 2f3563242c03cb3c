/**
 * `cache heal --max-size` on a real pip cache: pip fills it through the caching front (as PyPI serves files,
 * cacheable), one package's entries are made old, and the heal prunes exactly those (header with its .body)
 * down to the budget, reports them with their bytes, leaves uv's .lock files alone, and a cache an install
 * holds is not touched at all.
 */
import assert from "node:assert/strict";
import { planPrune, scanCache } from "../../agent/cache/mod.ts";
import { cacheLockSpec, withLock } from "../../agent/lock/mod.ts";
import { runMlagent } from "../support/cli.ts";
import { filesUnder, tempDir, testEnv } from "../support/env.ts";
import { pipArgv, startCachingFront, startIndex, testDists } from "../support/pypi.ts";

interface HealJson {
  result: string;
  bytes: number;
  pruned: string[];
  pruned_bytes: number;
}

async function filledPipCache(dir: string) {
  const dists = await testDists();
  const index = await startIndex(dists.dir);
  const front = await startCachingFront(index);
  const root = `${dir}/cache`;
  await Deno.mkdir(root, { mode: 0o700 });
  const env = testEnv();
  const pip = await pipArgv();
  const r = await env.run([
    ...pip,
    "install",
    "--cache-dir",
    `${root}/pip`,
    "--target",
    `${dir}/target`,
    "--trusted-host",
    "127.0.0.1",
    "--index-url",
    front.url,
    "mla-alpha==1.0",
    "mla-helper==1.0",
  ], { timeoutMs: 120_000 });
  assert.ok(r.kind === "exited" && r.code === 0, r.kind === "exited" ? r.stderr : r.kind);
  await front.close();
  await index.close();
  return { root, env };
}

const vars = (dir: string, root: string) => ({
  MLAGENT_CACHE_DIR: root,
  XDG_STATE_HOME: `${dir}/state`,
  MLAGENT_ROOT: `${dir}/venvs`,
  MLAGENT_LOCK_DIR: `${dir}/locks`,
});

Deno.test("cache heal --max-size prunes a real pip cache's least recently used downloads, headers with bodies", async () => {
  await using dir = await tempDir();
  const { root, env } = await filledPipCache(dir.path);
  const entries = await scanCache(env, root, { sizes: true });
  assert.equal(entries.corrupt.length, 0);
  const byPackage = new Map<string, string[]>();
  for (const pkg of ["mla-alpha", "mla-beta", "mla-gamma", "mla-helper"]) {
    const m = (await scanCache(env, root, { package: pkg })).matches;
    assert.equal(m.length, 1, `one cached download of ${pkg}`);
    byPackage.set(pkg, [m[0].path, ...m[0].also]);
  }
  // mla-gamma and mla-beta were last used a month and three weeks ago; the rest just now.
  const now = Date.now() / 1000;
  for (const [pkg, ageDays] of [["mla-gamma", 30], ["mla-beta", 21]] as const) {
    for (const p of byPackage.get(pkg)!) await Deno.utime(p, now - ageDays * 86_400, now - ageDays * 86_400);
  }
  // uv's lock files are never candidates, whatever their age.
  await Deno.mkdir(`${root}/uv/archive-v0`, { recursive: true });
  await Deno.writeTextFile(`${root}/uv/.lock`, "");
  await Deno.writeTextFile(`${root}/uv/archive-v0/.lock`, "");
  await Deno.utime(`${root}/uv/archive-v0/.lock`, 0, 0);

  const size = (paths: string[]) => paths.reduce((n, p) => n + Deno.statSync(p).size, 0);
  const oldest = byPackage.get("mla-gamma")!, older = byPackage.get("mla-beta")!;
  const total = (await scanCache(env, root, { sizes: true })).bytes;
  // A budget one byte under what is left without the oldest entry: the two oldest must go, nothing else.
  const budget = total - size(oldest) - 1;
  const dry = await runMlagent(["cache", "heal", "--dry-run", "--max-size", String(budget), "--json"], {
    env: vars(dir.path, root),
  });
  assert.equal(dry.code, 0, dry.stderr);
  const want = [...oldest, ...older];
  const wantBytes = size(want);
  assert.deepEqual(dry.json<HealJson>().pruned, want);
  assert.equal(dry.json<HealJson>().pruned_bytes, wantBytes);

  const r = await runMlagent(["cache", "heal", "--max-size", String(budget), "--json"], {
    env: vars(dir.path, root),
  });
  assert.equal(r.code, 0, r.stderr);
  const j = r.json<HealJson>();
  assert.deepEqual(j.pruned, want);
  assert.equal(j.pruned_bytes, wantBytes);
  for (const p of want) await assert.rejects(Deno.stat(p), Deno.errors.NotFound);
  for (const pkg of ["mla-alpha", "mla-helper"]) for (const p of byPackage.get(pkg)!) await Deno.stat(p);
  await Deno.stat(`${root}/uv/.lock`);
  await Deno.stat(`${root}/uv/archive-v0/.lock`);
  const after = await scanCache(env, root, { sizes: true });
  assert.ok(after.bytes <= budget, `${after.bytes} bytes left, budget ${budget}`);
  assert.ok(!filesUnder(`${root}/.mlagent-trash`).length, "nothing left in the trash");
});

Deno.test("cache heal --max-size prunes nothing while an install holds the cache", async () => {
  await using dir = await tempDir();
  const { root, env } = await filledPipCache(dir.path);
  const before = filesUnder(root).sort();
  const lockEnv = { ...env, vars: { ...env.vars, ...vars(dir.path, root) } };
  await withLock(lockEnv, cacheLockSpec(lockEnv, root, "install rehearsal"), { noWait: true }, async () => {
    const r = await runMlagent(["cache", "heal", "--max-size", "1", "--json"], { env: vars(dir.path, root) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json<HealJson>().result, "busy");
  });
  // The cache's own lock dir (its fencing counter) is the only thing added.
  assert.deepEqual(filesUnder(root).filter((f) => !f.startsWith(`${root}/.mlagent-lock/`)).sort(), before);
});

Deno.test("planPrune() takes nothing when the cache fits, and the oldest first when it does not", async () => {
  await using dir = await tempDir();
  const env = testEnv();
  const root = `${dir.path}/cache`;
  // An unpacked wheel as uv keeps it (package, METADATA, RECORD), last used ageDays ago.
  const entry = async (id: string, bytes: number, ageDays: number) => {
    const d = `${root}/uv/archive-v0/${id}`;
    const di = `${d}/p_${id}-1.0.dist-info`;
    await Deno.mkdir(`${d}/p_${id}`, { recursive: true });
    await Deno.mkdir(di);
    await Deno.writeFile(`${d}/p_${id}/data.bin`, new Uint8Array(bytes));
    await Deno.writeTextFile(`${di}/METADATA`, `Name: p-${id}\nVersion: 1.0\n`);
    await Deno.writeTextFile(`${di}/RECORD`, `p_${id}/data.bin,,\np_${id}-1.0.dist-info/METADATA,,\n`);
    const t = Date.now() / 1000 - ageDays * 86_400;
    for (const p of [`${d}/p_${id}/data.bin`, `${di}/METADATA`, `${di}/RECORD`, di, `${d}/p_${id}`, d]) {
      await Deno.utime(p, t, t);
    }
  };
  await entry("torch", 4000, 3);
  await entry("numpy", 1000, 10);
  await entry("fresh", 1000, 0);
  const scan = await scanCache(env, root, { sizes: true });
  assert.deepEqual(planPrune(env, root, scan, scan.bytes).paths, []);
  const plan = planPrune(env, root, scan, scan.bytes - 1);
  assert.deepEqual(plan.paths, [`${root}/uv/archive-v0/numpy`]);
  assert.ok(plan.bytes > 1000 && plan.bytes < 1200, `${plan.bytes}`);
  // torch, used three days ago, outlives the 10-day-old numpy however large it is: the budget keeps what installs use.
  assert.deepEqual(planPrune(env, root, scan, 2000).paths, [
    `${root}/uv/archive-v0/numpy`,
    `${root}/uv/archive-v0/torch`,
  ]);
});
