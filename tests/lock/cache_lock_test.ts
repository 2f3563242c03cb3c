/**
 * Where a cache's lock lives: inside the cache root (`.mlagent-lock/`), so it works where the user owns the
 * cache but not its parent (a site's root-owned `/local/cache/USER`), and so every process on that cache
 * meets on it whatever its MLAGENT_LOCK_DIR or XDG_RUNTIME_DIR. Runs mlagent as nobody (uid 65534) with
 * setpriv: root could write the parent anyway.
 */
import assert from "node:assert/strict";
import { tempDir } from "../support/env.ts";
import { NOBODY, nobodyHome, runAsNobody, spawnAsNobody } from "../support/nobody.ts";
import { fileExists, waitUntil } from "../support/lock_helpers.ts";

Deno.test("cache heal and clean work in a cache whose root-owned parent the user cannot write, and meet on one lock", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  await Deno.chmod(d, 0o755);
  const home = await nobodyHome(d);
  // /local/cache is root's (0755); /local/cache/nobody is nobody's own cache.
  const cache = `${d}/local/cache/nobody`;
  await Deno.mkdir(`${cache}/pip/http`, { recursive: true });
  await Deno.writeTextFile(`${cache}/pip/http/entry`, "cached bytes");
  await Deno.chmod(`${d}/local`, 0o755);
  await Deno.chmod(`${d}/local/cache`, 0o755);
  for (const p of [cache, `${cache}/pip`, `${cache}/pip/http`, `${cache}/pip/http/entry`]) {
    await Deno.chown(p, NOBODY, NOBODY);
  }
  await Deno.chmod(cache, 0o700);
  const base = { MLAGENT_CACHE_DIR: cache, MLAGENT_ROOT: `${home}/venvs` };

  const heal = await runAsNobody(["cache", "heal", "--json"], {
    ...base,
    MLAGENT_LOCK_DIR: `${home}/locks-a`,
  }, home);
  assert.equal(heal.code, 0, heal.stderr);
  assert.equal(JSON.parse(heal.stdout).result, "nothing");
  assert.ok(await fileExists(`${cache}/.mlagent-lock/.mlagent-fencing`), "the lock lives inside the cache");
  assert.ok(!(await fileExists(`${cache}.lock`)), "nothing beside the cache");

  // A holder with one lock dir, a heal and a clean with another: they still meet on the cache's lock.
  const marker = `${home}/holding`;
  const holder = spawnAsNobody(
    ["lock", "run", `cache:${cache}`, "--", "sh", "-c", `touch '${marker}'; exec sleep 30`],
    { ...base, MLAGENT_LOCK_DIR: `${home}/locks-a` },
    home,
  );
  try {
    await waitUntil("the holder runs its command", () => fileExists(marker), 60_000);
    const other = { ...base, MLAGENT_LOCK_DIR: `${home}/locks-b`, XDG_RUNTIME_DIR: `${home}/run` };
    const busy = await runAsNobody(["cache", "heal", "--json"], other, home);
    assert.equal(busy.code, 0, busy.stderr);
    assert.equal(JSON.parse(busy.stdout).result, "busy", busy.stdout);
    const inUse = await runAsNobody(["cache", "clean", "--yes"], other, home);
    assert.equal(inUse.code, 3, inUse.stderr);
    assert.match(inUse.stderr, /^error: cache .* is in use/);
    const list = await runAsNobody(["lock", "list", "--json"], other, home);
    assert.equal(list.code, 0, list.stderr);
    const locks = JSON.parse(list.stdout).locks as { name: string; status: string; path: string }[];
    assert.deepEqual(
      locks.map((l) => [l.name, l.status, l.path]),
      [[`cache:${cache}`, "held", `${cache}/.mlagent-lock/cache.lock`]],
    );
  } finally {
    try {
      holder.kill("SIGTERM");
    } catch { /* already gone */ }
    await holder.output();
  }

  const clean = await runAsNobody(["cache", "clean", "--yes", "--json"], base, home);
  assert.equal(clean.code, 0, clean.stderr);
  assert.ok(!(await fileExists(`${cache}/pip/http/entry`)), "the cache's content is gone");
  assert.ok((await Deno.stat(`${cache}/.mlagent-lock`)).isDirectory, "its lock dir stays");
  const again = await runAsNobody(["cache", "heal"], base, home);
  assert.equal(again.code, 0, again.stderr);
});

Deno.test("as another user, MLAGENT_LOCK_DIR under a root-owned dir or owned by root is refused with exit 2", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  await Deno.chmod(d, 0o755);
  const home = await nobodyHome(d);
  await Deno.mkdir(`${d}/rootdir`, { mode: 0o755 });
  await Deno.chmod(`${d}/rootdir`, 0o755);
  const rows: [string, RegExp][] = [
    [
      `${d}/rootdir/locks`,
      /^error: cannot create the lock directory \(MLAGENT_LOCK_DIR\) \S+: permission denied$/,
    ],
    [`${d}/rootdir`, /^error: the lock directory \(MLAGENT_LOCK_DIR\) \S+ is owned by uid 0, not by you/],
  ];
  for (const [lockDir, line] of rows) {
    const r = await runAsNobody(["lock", "run", "x", "--", "true"], { MLAGENT_LOCK_DIR: lockDir }, home);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0], line);
    assert.ok(lines[0].includes(lockDir), lines[0]);
    assert.match(lines[1], /^hint: /);
  }
});
