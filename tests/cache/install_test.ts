/**
 * `mlagent install` heals its own cache: a real pip cache filled by a real install, then broken the ways it
 * breaks in the field (a locally built wheel cut in half, a cached download truncated). The reinstall
 * recovers by itself, and the index's request log proves only the broken packages were downloaded again.
 */
import assert from "node:assert/strict";
import { scanCache } from "../../agent/cache/mod.ts";
import { runMlagent } from "../support/cli.ts";
import { testProfile } from "../support/node_states.ts";
import { filesUnder, installVars, tempDir, testEnv } from "../support/env.ts";
import { filesFetched, startCachingFront, startIndex, testDists } from "../support/pypi.ts";

Deno.test("mlagent install recovers from a half wheel and a truncated download in its cache, refetching only those", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using front = await startCachingFront(index);
  const vars = {
    ...installVars(d, front.url),
    XDG_STATE_HOME: `${d}/state`,
    MLA_SLOW_BUILD_S: "0",
    // pip caches downloads only from https or trusted hosts; PyPI is https, the test index is loopback http.
    PIP_TRUSTED_HOST: "127.0.0.1",
  };
  // The broken wheel's stage runs first: a whole-cache clear there would refetch the later stage's wheels.
  const profile = testProfile("cache-heal", {
    stages: [
      { name: "built", packages: ["mla-slow==1.0"] },
      { name: "chain", packages: ["mla-alpha==1.0"] },
    ],
    verify: [{ name: "imports", code: "import mla_slow, mla_alpha, mla_beta, mla_gamma" }],
  });
  await Deno.writeTextFile(`${d}/p.json`, JSON.stringify(profile));
  const first = await runMlagent(["install", `${d}/p.json`, "--json"], { env: vars, timeoutMs: 180_000 });
  assert.equal(first.code, 0, first.stderr);

  const env = testEnv();
  const cache = `${d}/cache`;
  const scan = await scanCache(env, cache, { package: "mla-beta" });
  assert.equal(scan.corrupt.length, 0);
  const beta = scan.matches;
  assert.equal(beta.length, 1, `one cached download of mla-beta in ${cache}`);
  const betaFile = beta[0].also[0] ?? beta[0].path;
  await Deno.truncate(betaFile, (await Deno.stat(betaFile)).size >> 1);
  const wheels = filesUnder(`${cache}/pip/wheels`).filter((p) => p.endsWith(".whl"));
  assert.equal(wheels.length, 1, "pip cached the wheel it built for mla-slow");
  await Deno.truncate(wheels[0], (await Deno.stat(wheels[0])).size >> 1);
  assert.equal((await scanCache(env, cache)).corrupt.length, 2);

  index.requests.length = 0;
  const again = await runMlagent(["install", `${d}/p.json`, "--force", "--json"], {
    env: vars,
    timeoutMs: 180_000,
  });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /healed the pip cache/);
  assert.deepEqual(filesFetched(index), ["mla_beta-1.0-py3-none-any.whl", "mla_slow-1.0.tar.gz"]);
  assert.equal((await scanCache(env, cache)).corrupt.length, 0);
  const log = (await Deno.readTextFile(`${d}/state/mlagent/cache-heal.log`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.deepEqual(log.map((l) => [l.trigger, l.action, l.package]), [[
    "install-failure",
    "targeted",
    "mla-slow",
  ]]);
});
