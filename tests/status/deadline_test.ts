/**
 * status ends on time whatever hangs: a state file whose read never returns (the Env's fs seam standing in
 * for a dead NFS mount) makes that venv "unreadable" and names the part as timed out; the rest reports, the
 * parts that wait on another (the cache's lock on the cache) included.
 */
import assert from "node:assert/strict";
import { gatherStatus } from "../../agent/status/mod.ts";
import { tempDir, testEnv } from "../support/env.ts";
import { makeNode, testProfile, writeProfile, writeVenv } from "../support/node_states.ts";

// The abandoned read is never settled; the test body still returns.
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "gatherStatus() reports a venv whose state read hangs as unreadable, within its deadline",
  opts,
  async () => {
    await using d = await tempDir();
    const n = await makeNode(d.path);
    const ok = testProfile("fine");
    const stuck = testProfile("stuck");
    for (const p of [ok, stuck]) {
      await writeProfile(n, p);
      await writeVenv(n.root, p.name, { status: "ready", profile: p });
    }
    const hangs = (path: string | URL) => String(path).endsWith("/stuck/.mlagent/state.json");
    const env = testEnv({
      vars: { ...testEnv().vars, ...n.vars },
      fs: {
        ...Deno,
        // The cache's lock answers in 200 ms: in time, if it is looked at beside the stuck venv, not after it.
        stat: (path: string | URL) =>
          hangs(path)
            ? new Promise<Deno.FileInfo>(() => {})
            : String(path).endsWith(".lock")
            ? new Promise<void>((r) => setTimeout(r, 200)).then(() => Deno.stat(path))
            : Deno.stat(path),
        open: (path: string | URL, o?: Deno.OpenOptions) =>
          hangs(path) ? new Promise<Deno.FsFile>(() => {}) : Deno.open(path, o),
      },
    });
    const t0 = performance.now();
    const r = await gatherStatus(env, { profiles: [], timeoutMs: 4000 });
    const wall = performance.now() - t0;
    assert.ok(wall < 8000, `took ${wall} ms`);
    const byName = Object.fromEntries(r.venvs.map((v) => [v.name, v]));
    assert.equal(byName.fine.condition, "ready");
    assert.equal(byName.stuck.condition, "unreadable");
    assert.match(byName.stuck.message, /did not finish within \d+ ms/);
    assert.deepEqual(r.timed_out, ["venv stuck"]);
  },
);
