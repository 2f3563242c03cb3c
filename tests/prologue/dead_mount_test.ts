/**
 * `mlagent prologue` with its venv root on a network mount whose server stopped answering: a real sshfs mount
 * whose sftp-server is frozen (freezeServer), so every call on it waits, as on an NFS mount whose server died.
 * The prologue still ends by its deadline and names the mount as the node's fault. A probe it killed while its
 * call waited in the mount dies once the mount answers again; nothing else of it is left.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { processesWithVar } from "../support/daemon.ts";
import { FIXTURES, tempDir } from "../support/env.ts";
import { writeFakeBin } from "../support/fake_bin.ts";
import { makeNode, testProfile, writeProfile } from "../support/node_states.ts";
import { freezeServer, sshfsAvailable, startSshfs } from "../support/sshfs.ts";

for (const venvThere of [false, true]) {
  Deno.test({
    name: `prologue on a dead network mount (${
      venvThere ? "the venv there, in the client's cache" : "no venv yet"
    }) ends by its deadline, blames the node, and leaves nothing running`,
    // Needs root, /dev/fuse, sshfs and openssh-server (.ci/run installs the packages where missing).
    ignore: !sshfsAvailable(),
    fn: () => deadMount(venvThere),
  });
}

async function deadMount(venvThere: boolean) {
  await using d = await tempDir();
  await using fs = await startSshfs({ clients: 1 });
  const n = await makeNode(d.path);
  await writeFakeBin(n.bin, "nvidia-smi", {
    stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  await writeFakeBin(n.bin, "dmesg", { stdout: "" });
  await writeProfile(n, testProfile("demo"));
  const root = `${fs.mounts[0]}/venvs`;
  await Deno.mkdir(root, { mode: 0o700 });
  // Made through the mount just before it dies: the client still answers for these from its cache.
  if (venvThere) {
    await Deno.mkdir(`${root}/demo/.mlagent`, { recursive: true, mode: 0o700 });
    await Deno.stat(`${root}/demo`);
  }
  // It comes back by itself after 15 s (freezeServer), past the deadline asserted below.
  const thaw = freezeServer(fs);
  const marker = crypto.randomUUID();
  try {
    const t0 = performance.now();
    const r = await runMlagent(["prologue", "--profile", "demo", "--json", "--timeout", "3"], {
      env: {
        ...n.vars,
        MLAGENT_ROOT: root,
        SLURM_JOB_ID: "7",
        CUDA_VISIBLE_DEVICES: "0",
        DEAD_MOUNT_MARK: marker,
      },
      timeoutMs: 20_000,
    });
    const wall = performance.now() - t0;
    assert.ok(wall < 8000, `took ${Math.round(wall)} ms against a 3 s deadline`);
    const rep = r.json<
      { verdict: string; checks: { id: string; status: string; fault: string; message: string }[] }
    >();
    assert.equal(rep.verdict, "node-fault", r.stdout);
    assert.equal(r.code, 1, "Slurm drains a node whose prologue exits 1");
    for (const id of ["venv.ready", "disk.space"]) {
      const c = rep.checks.find((x) => x.id === id)!;
      assert.equal(c.status, "fail", JSON.stringify(c));
      assert.equal(c.fault, "node");
      assert.match(c.message, /did not answer a stat within \d+ ms \(dead network mount\?\)/);
      assert.ok(c.message.includes(root), c.message);
    }
    assert.equal(
      rep.checks.find((x) => x.id === "gpu.visible")!.status,
      "pass",
      "the other checks still report",
    );
    // A probe killed while its call waits in the mount cannot die before the mount answers (FUSE waits
    // uninterruptibly once its server has read the request): it must have been killed already.
    const stuck = processesWithVar("DEAD_MOUNT_MARK", marker);
    for (const p of stuck) {
      const status = Deno.readTextFileSync(`/proc/${p}/status`);
      const pending = BigInt(`0x${/^ShdPnd:\s*(\w+)/m.exec(status)?.[1] ?? "0"}`) |
        BigInt(`0x${/^SigPnd:\s*(\w+)/m.exec(status)?.[1] ?? "0"}`);
      assert.ok(pending & (1n << 8n), `pid ${p} outlived mlagent without a SIGKILL pending:\n${status}`);
    }
    thaw();
    // Once the server answers again, nothing of the prologue's is left.
    const end = Date.now() + 10_000;
    while (processesWithVar("DEAD_MOUNT_MARK", marker).length && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(processesWithVar("DEAD_MOUNT_MARK", marker), []);
  } finally {
    thaw();
  }
}
