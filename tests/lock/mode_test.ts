import assert from "node:assert/strict";
import type { Env } from "../../agent/core/env.ts";
import { acquire, cacheLockSpec, lockModeFor, namedLockSpec, venvLockSpec } from "../../agent/lock/mod.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";

function envFor(dir: string, extra: Record<string, string> = {}) {
  return testEnv({ vars: hermeticVars({ MLAGENT_LOCK_DIR: `${dir}/locks`, ...extra }) });
}

/** An Env whose lock files refuse flock the way Lustre without -o flock does (ENOSYS). */
function flocklessEnv(env: Env): Env {
  const open: Env["fs"]["open"] = async (path, options) => {
    const file = await Deno.open(path, options);
    if (!String(path).endsWith(".lock")) return file;
    const fail = () => Promise.reject(new Error("Function not implemented (os error 38)"));
    return new Proxy(file, {
      get(target, prop) {
        if (prop === "tryLock" || prop === "lock") return fail;
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  };
  return { ...env, fs: { ...env.fs, open } };
}

Deno.test("lockModeFor() picks flock on local disks, a lease on network filesystems, and obeys overrides", async () => {
  await using dir = await tempDir();
  const env = envFor(dir.path);
  assert.equal(lockModeFor(env, `${dir.path}/x.lock`), "flock");
  const nfs = envFor(dir.path, { MLAGENT_FORCE_NETWORK_FS: dir.path });
  assert.equal(lockModeFor(nfs, `${dir.path}/x.lock`), "lease");
  assert.equal(lockModeFor(nfs, `${dir.path}/x.lock`, "flock"), "flock");
  assert.equal(lockModeFor(envFor(dir.path, { MLAGENT_LOCK_MODE: "lease" }), `${dir.path}/x.lock`), "lease");
  assert.throws(
    () => lockModeFor(envFor(dir.path, { MLAGENT_LOCK_MODE: "posix" }), "/x"),
    /auto, flock or lease/,
  );
});

Deno.test("acquire() on a network filesystem takes a lease with the owner record in the claim", async () => {
  await using dir = await tempDir();
  const env = envFor(dir.path, { MLAGENT_FORCE_NETWORK_FS: dir.path });
  const spec = venvLockSpec(`${dir.path}/venvs/model-a`, "install");
  const lock = await acquire(env, spec, { handleSignals: false });
  try {
    assert.equal(lock.mode, "lease");
    const claim = JSON.parse(await Deno.readTextFile(spec.path));
    assert.equal(claim.name, "venv:model-a");
    assert.equal(claim.purpose, "install");
    assert.equal(claim.pid, Deno.pid);
    assert.equal(claim.token, lock.token);
  } finally {
    await lock.release();
  }
  await assert.rejects(Deno.stat(spec.path), Deno.errors.NotFound);
});

Deno.test("acquire() falls back to a lease where flock fails with ENOSYS, and says so with --verbose", async () => {
  await using dir = await tempDir();
  const env = envFor(dir.path);
  const lock = await acquire(flocklessEnv(env), namedLockSpec(env, "lustre", "test"), {
    handleSignals: false,
  });
  try {
    assert.equal(lock.mode, "lease");
    assert.ok(env.logs.some((l) => /flock failed on .*lustre\.lock .*os error 38.*using a lease/.test(l)));
  } finally {
    await lock.release();
  }
});

Deno.test("cacheLockSpec() keys one cache by its canonical path, whatever the spelling or the lock dir", async () => {
  await using dir = await tempDir();
  const env = envFor(dir.path);
  await Deno.mkdir(`${dir.path}/real-cache`);
  await Deno.symlink(`${dir.path}/real-cache`, `${dir.path}/alias`);
  const a = cacheLockSpec(env, `${dir.path}/real-cache/`, "heal");
  const b = cacheLockSpec(env, `${dir.path}/alias`, "heal");
  assert.equal(a.path, b.path);
  assert.equal(a.path, `${await Deno.realPath(dir.path)}/real-cache/.mlagent-lock/cache.lock`);
  // Inside the cache wherever it is: the parent's owner and mode, and the lock dir, play no part.
  await Deno.mkdir(`${dir.path}/public`, { mode: 0o777 });
  await Deno.chmod(`${dir.path}/public`, 0o1777);
  const shared = cacheLockSpec(env, `${dir.path}/public/cache`, "heal");
  assert.equal(shared.path, `${dir.path}/public/cache/.mlagent-lock/cache.lock`);
  const elsewhere = cacheLockSpec(envFor(`${dir.path}/other`), `${dir.path}/public/cache`, "heal");
  assert.equal(elsewhere.path, shared.path);
});
