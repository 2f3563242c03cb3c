/**
 * A real pip cache filled by real pip installs from the local test index, then broken the ways it breaks in
 * the field: a cached download truncated (http-v2 `.body` shorter than its Content-Length) and a locally
 * built wheel cut in half. pip fails as pip does; the heal removes exactly the broken entries; the retry
 * succeeds, and the index's request log proves only the broken packages were downloaded again.
 */
import assert from "node:assert/strict";
import { classifyInstallFailure } from "../../agent/install/classify.ts";
import { healAfterFailure, scanCache } from "../../agent/cache/mod.ts";
import type { Env } from "../../agent/core/env.ts";
import { runMlagent } from "../support/cli.ts";
import { filesUnder, tempDir, testEnv } from "../support/env.ts";
import { filesFetched, pipArgv, startCachingFront, startIndex, testDists } from "../support/pypi.ts";

interface PipTarget {
  pip: string[];
  cacheDir: string;
  target: string;
  indexUrl: string;
}

/** A bare `pip install --target` through the caching front, with its own cache dir, as a user's pip runs. */
function pipInstall(env: Env, t: PipTarget, packages: string[]) {
  return env.run([
    ...t.pip,
    "install",
    "--cache-dir",
    t.cacheDir,
    "--target",
    t.target,
    "--trusted-host",
    "127.0.0.1",
    "--index-url",
    t.indexUrl,
    ...packages,
  ], { timeoutMs: 120_000 });
}

Deno.test("a pip cache with a truncated download and a half wheel heals to exactly those and refetches only them", async () => {
  await using dir = await tempDir();
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using front = await startCachingFront(index);
  const root = `${dir.path}/cache`;
  await Deno.mkdir(root, { mode: 0o700 });
  const env = testEnv();
  env.vars = {
    ...env.vars,
    XDG_STATE_HOME: `${dir.path}/state`,
    MLAGENT_LOCK_DIR: `${dir.path}/locks`,
    MLA_SLOW_BUILD_S: "0",
  };
  const pip = await pipArgv();
  const install = (target: string) =>
    pipInstall(env, { pip, cacheDir: `${root}/pip`, target: `${dir.path}/${target}`, indexUrl: front.url }, [
      "mla-alpha==1.0",
      "mla-slow==1.0",
    ]);

  const fill = await install("t1");
  assert.ok(fill.kind === "exited" && fill.code === 0, JSON.stringify(fill));
  const healthy = await scanCache(env, root, { package: "mla-beta" });
  assert.equal(healthy.corrupt.length, 0);
  const beta = healthy.matches;
  assert.equal(beta.length, 1, "one cached download of mla-beta");

  // Break it the field ways: a download cut short, a built wheel cut in half.
  const body = beta[0].also[0] ?? beta[0].path;
  const bodySize = (await Deno.stat(body)).size;
  await Deno.truncate(body, bodySize >> 1);
  const wheel = [...healthy.corrupt, ...filesUnder(`${root}/pip/wheels`)].find((p) =>
    String(p).endsWith(".whl")
  ) as string;
  assert.ok(wheel, "pip cached the wheel it built for mla-slow");
  await Deno.truncate(wheel, (await Deno.stat(wheel)).size >> 1);
  const broken = await scanCache(env, root);
  assert.deepEqual(
    broken.corrupt.map((c) => [c.package, c.path === body || c.also.includes(body) || c.path === wheel])
      .sort(),
    [["mla-beta", true], ["mla-slow", true]],
  );

  index.requests.length = 0;
  const failedRun = await install("t2");
  assert.ok(failedRun.kind === "exited" && failedRun.code !== 0, "pip fails on the broken cache");
  const verdict = classifyInstallFailure(`${failedRun.stdout}\n${failedRun.stderr}`);
  assert.equal(verdict.kind, "cache-corrupt");
  const healed = await healAfterFailure(env, {
    cacheDir: `${root}/pip`,
    installer: "pip",
    verdict,
    attempt: 1,
  });
  assert.equal(healed.action, "targeted");
  assert.equal((await scanCache(env, root)).corrupt.length, 0);

  index.requests.length = 0;
  const retry = await install("t3");
  assert.ok(retry.kind === "exited" && retry.code === 0, retry.kind === "exited" ? retry.stderr : retry.kind);
  // Only the two broken packages came from the index again; mla-alpha and mla-gamma stayed cached.
  assert.deepEqual(filesFetched(index), ["mla_beta-1.0-py3-none-any.whl", "mla_slow-1.0.tar.gz"]);
  const log = (await Deno.readTextFile(`${dir.path}/state/mlagent/cache-heal.log`)).trim().split("\n");
  assert.equal(JSON.parse(log.at(-1)!).action, "targeted");
});

Deno.test("cache heal while pip installs from the same cache: the install never fails", async () => {
  await using dir = await tempDir();
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using front = await startCachingFront(index);
  const root = `${dir.path}/cache`;
  await Deno.mkdir(root, { mode: 0o700 });
  const env = testEnv();
  const pip = await pipArgv();
  const vars = {
    MLAGENT_CACHE_DIR: root,
    XDG_STATE_HOME: `${dir.path}/state`,
    MLAGENT_ROOT: `${dir.path}/venvs`,
    MLAGENT_LOCK_DIR: `${dir.path}/locks`,
  };
  const install = (target: string, ...packages: string[]) =>
    pipInstall(
      env,
      { pip, cacheDir: `${root}/pip`, target: `${dir.path}/${target}`, indexUrl: front.url },
      packages,
    );
  const fill = await install("t0", "mla-alpha==1.0", "mla-helper==1.0");
  assert.ok(fill.kind === "exited" && fill.code === 0);
  // A cached download the installs below do not need is broken, so every heal renames and deletes in the
  // tree while they read their (healthy) entries from it.
  const scan = await scanCache(env, root, { package: "mla-helper" });
  const helper = scan.matches[0];
  await Deno.truncate(helper.also[0], 10);

  let heals = 0;
  let done = false;
  const installs = Promise.all([install("t1", "mla-alpha==1.0"), install("t2", "mla-alpha==1.0")]).finally(
    () => done = true,
  );
  const healer = (async () => {
    while (!done) {
      const r = await runMlagent(["cache", "heal", "--json"], { env: vars });
      assert.equal(r.code, 0, r.stderr);
      heals++;
    }
  })();
  const [a, b] = await installs;
  await healer;
  assert.ok(heals >= 1);
  for (const r of [a, b]) {
    assert.ok(r.kind === "exited" && r.code === 0, r.kind === "exited" ? r.stderr : r.kind);
  }
});

Deno.test("cache heal reports busy and exits 0 while an install holds the cache lock", async () => {
  await using dir = await tempDir();
  const root = `${dir.path}/cache`;
  await Deno.mkdir(root, { mode: 0o700 });
  const vars = {
    MLAGENT_CACHE_DIR: root,
    XDG_STATE_HOME: `${dir.path}/state`,
    MLAGENT_ROOT: `${dir.path}/venvs`,
    MLAGENT_LOCK_DIR: `${dir.path}/locks`,
  };
  const { acquire, cacheLockSpec } = await import("../../agent/lock/mod.ts");
  const env = testEnv();
  env.vars = { ...env.vars, ...vars };
  const lock = await acquire(env, cacheLockSpec(env, root, "install"), { handleSignals: false });
  try {
    const r = await runMlagent(["cache", "heal", "--json"], { env: vars });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json<{ result: string }>().result, "busy");
    const clean = await runMlagent(["cache", "clean", "--yes"], { env: vars });
    assert.equal(clean.code, 3, clean.stderr);
    assert.match(clean.stderr, /in use/);
  } finally {
    await lock.release();
  }
});
