/**
 * Where the cache goes: TMPDIR when it is a usable, private directory of ours, else /tmp; refusal (exit 2,
 * naming the path) of a cache path that is a file, someone else's dir or a symlink to one, or unwritable.
 * "Someone else" is uid 65534 (nobody): dirs are chowned to it, and the unwritable cases run mlagent as it
 * with setpriv (root can write anywhere).
 */
import assert from "node:assert/strict";
import { resolveCacheDir } from "../../agent/cache/mod.ts";
import { runMlagent } from "../support/cli.ts";
import { NOBODY, nobodyHome, runAsNobody } from "../support/nobody.ts";
import { tempDir, testEnv } from "../support/env.ts";

interface Info {
  path: string;
  reason: string;
  rejected: { path: string; reason: string }[];
  notices: string[];
}

async function info(vars: Record<string, string | undefined>) {
  const r = await runMlagent(["cache", "info", "--json"], { env: { MLAGENT_CACHE_DIR: undefined, ...vars } });
  return r;
}

Deno.test("cache placement: TMPDIR that is usable, missing, a file, someone else's or shared without sticky", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  await Deno.mkdir(`${d}/mine`, { mode: 0o700 });
  await Deno.writeTextFile(`${d}/afile`, "x");
  await Deno.mkdir(`${d}/theirs`, { mode: 0o700 });
  await Deno.chown(`${d}/theirs`, NOBODY, NOBODY);
  await Deno.mkdir(`${d}/shared`);
  await Deno.chmod(`${d}/shared`, 0o777);
  await Deno.mkdir(`${d}/sticky`);
  await Deno.chmod(`${d}/sticky`, 0o1777);
  const uid = Deno.uid();
  const rows: [string, string | undefined, string, RegExp][] = [
    ["usable and ours", `${d}/mine`, `${d}/mine/mlagent-cache-${uid}`, /under TMPDIR/],
    ["sticky and world-writable", `${d}/sticky`, `${d}/sticky/mlagent-cache-${uid}`, /under TMPDIR/],
    ["unset", undefined, `/tmp/mlagent-cache-${uid}`, /TMPDIR unset/],
    ["missing", `${d}/nope`, `/tmp/mlagent-cache-${uid}`, /does not exist/],
    ["a file", `${d}/afile`, `/tmp/mlagent-cache-${uid}`, /is not a directory/],
    ["owned by another user", `${d}/theirs`, `/tmp/mlagent-cache-${uid}`, /owned by uid 65534/],
    [
      "writable by others, no sticky bit",
      `${d}/shared`,
      `/tmp/mlagent-cache-${uid}`,
      /without the sticky bit/,
    ],
  ];
  for (const [name, tmpdir, want, reason] of rows) {
    const r = await info({ TMPDIR: tmpdir });
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    const j = r.json<Info>();
    assert.equal(j.path, want, name);
    assert.match(j.reason, reason, name);
    if (want === `/tmp/mlagent-cache-${uid}` && tmpdir) assert.equal(j.rejected[0]?.path, tmpdir, name);
  }
});

Deno.test("cache placement as another user: an unwritable TMPDIR falls back to /tmp; an unwritable cache dir is refused", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  await Deno.chmod(d, 0o755);
  const home = await nobodyHome(d);
  for (const sub of ["ro-tmp", "ro-cache"]) {
    await Deno.mkdir(`${d}/${sub}`);
    await Deno.chown(`${d}/${sub}`, NOBODY, NOBODY);
  }
  await Deno.chmod(`${d}/ro-tmp`, 0o500);
  await Deno.chmod(`${d}/ro-cache`, 0o500);
  const r = await runAsNobody(["cache", "info", "--json"], { TMPDIR: `${d}/ro-tmp` }, home);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Info;
  assert.equal(j.path, `/tmp/mlagent-cache-${NOBODY}`);
  assert.match(j.reason, /TMPDIR is not writable/);

  const bad = await runAsNobody(["cache", "heal"], { MLAGENT_CACHE_DIR: `${d}/ro-cache` }, home);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, new RegExp(`cache dir ${d}/ro-cache is not writable`));
});

Deno.test("cache paths that are a file, another user's dir, or a symlink to one are refused with exit 2", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  await Deno.writeTextFile(`${d}/afile`, "x");
  await Deno.mkdir(`${d}/theirs`);
  await Deno.chown(`${d}/theirs`, NOBODY, NOBODY);
  await Deno.symlink(`${d}/theirs`, `${d}/link`);
  await Deno.mkdir(`${d}/mine`);
  await Deno.symlink(`${d}/mine`, `${d}/mylink`);
  const rows: [string, RegExp][] = [
    [`${d}/afile`, /is not a directory/],
    [`${d}/theirs`, /is owned by uid 65534, not by you/],
    [`${d}/link`, /is a symlink to a directory owned by uid 65534/],
  ];
  for (const [path, why] of rows) {
    for (const sub of ["info", "heal"]) {
      const r = await runMlagent(["cache", sub], {
        env: { MLAGENT_CACHE_DIR: path, XDG_STATE_HOME: `${d}/state` },
      });
      assert.equal(r.code, 2, `${sub} ${path}: ${r.stderr}`);
      assert.ok(r.stderr.includes(path), r.stderr);
      assert.match(r.stderr, why);
    }
  }
  // A symlink to a dir of our own is fine.
  const ok = await runMlagent(["cache", "info", "--json"], { env: { MLAGENT_CACHE_DIR: `${d}/mylink` } });
  assert.equal(ok.code, 0, ok.stderr);
});

Deno.test("resolveCacheDir() creates the cache 0700 and says why when UV_CACHE_DIR or ~/.cache is on a network filesystem", async () => {
  await using dir = await tempDir();
  const env = testEnv();
  env.vars = {
    ...env.vars,
    TMPDIR: dir.path,
    HOME: `${dir.path}/home`,
    UV_CACHE_DIR: `${dir.path}/nfs/uv`,
    MLAGENT_FORCE_NETWORK_FS: `${dir.path}/nfs:${dir.path}/home`,
  };
  delete env.vars.MLAGENT_CACHE_DIR;
  await Deno.chmod(dir.path, 0o700);
  const p = await resolveCacheDir(env);
  assert.equal(p.path, `${dir.path}/mlagent-cache-${env.uid}`);
  assert.equal((await Deno.stat(p.path)).mode! & 0o777, 0o700);
  assert.equal(p.network, false);
  assert.equal(p.notices.length, 2);
  assert.match(p.notices[0], /UV_CACHE_DIR .* network.*mlagent uses the node-local cache/);
  assert.match(p.notices[1], /~\/\.cache/);
});
