/**
 * `mlagent status` with its venv root on a network mount whose server stopped answering (a real sshfs mount,
 * its sftp-server frozen): the root is a part that timed out, the other parts still report, and the command
 * ends by its deadline instead of hanging in the kernel where no signal reaches it.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";
import { makeNode } from "../support/node_states.ts";
import { freezeServer, sshfsAvailable, startSshfs } from "../support/sshfs.ts";

Deno.test({
  name: "status on a dead network mount reports the venv root as timed out, by its deadline",
  // Needs root, /dev/fuse, sshfs and openssh-server (.ci/run installs the packages where missing).
  ignore: !sshfsAvailable(),
  fn: async () => {
    await using d = await tempDir();
    await using fs = await startSshfs({ clients: 1 });
    const n = await makeNode(d.path);
    const root = `${fs.mounts[0]}/venvs`;
    await Deno.mkdir(root, { mode: 0o700 });
    // Seen just before the server dies: the client still answers for the root itself from its cache.
    await Deno.stat(root);
    // It comes back by itself after 15 s (freezeServer), past the deadline asserted below.
    const thaw = freezeServer(fs);
    try {
      const t0 = performance.now();
      const r = await runMlagent(["status", "--json", "--timeout", "2"], {
        env: { ...n.vars, MLAGENT_ROOT: root },
        timeoutMs: 20_000,
      });
      const wall = performance.now() - t0;
      assert.ok(wall < 7000, `took ${Math.round(wall)} ms against a 2 s deadline`);
      const rep = r.json<{ root: string; venvs: unknown[]; timed_out: string[]; cache: unknown }>();
      assert.equal(rep.root, root);
      assert.deepEqual(rep.venvs, []);
      assert.ok(rep.timed_out.includes("venv root"), JSON.stringify(rep.timed_out));
      assert.ok(rep.cache, "the parts off the mount still report");
    } finally {
      thaw();
    }
  },
});
