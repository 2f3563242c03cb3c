/**
 * An install checks the room for the models before anything is written: a models dir on a small real tmpfs
 * cannot take what the Hub lists for the pinned revision, and the install says so, naming the model, the
 * filesystem and the shortfall, without creating the venv. Offline, the profile's size_gib stands in.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { installVars, tempDir } from "../support/env.ts";
import { smallRepo } from "../support/hf_server.ts";
import { testProfile } from "../support/node_states.ts";
import { CAN_MOUNT } from "../support/mounts.ts";

// Needs mount(8) for a small tmpfs; without it this test shows as ignored.
Deno.test({
  name:
    "install refuses before writing anything when the models cannot fit: the Hub's listing online, size_gib offline",
  ignore: !CAN_MOUNT,
  fn: async () => {
    await using hub = smallRepo({ lfsSize: 48 * 1024 * 1024 });
    await using tmp = await tempDir("mlagent-space-");
    const small = `${tmp.path}/small`;
    await Deno.mkdir(small);
    const m = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=16m", "tmpfs", small] })
      .output();
    assert.equal(m.code, 0);
    try {
      const vars = {
        ...installVars(tmp.path, "http://127.0.0.1:1/simple/"),
        MLAGENT_MODELS_DIR: `${small}/models`,
        HF_ENDPOINT: hub.url,
        HF_HOME: `${tmp.path}/hf`,
      };
      const file = `${tmp.path}/big.json`;
      await Deno.writeTextFile(
        file,
        JSON.stringify(testProfile("big", { models: [{ repo: hub.repo, size_gib: 2 }] })),
      );
      const r = await runMlagent(["install", file, "--json"], { env: vars, timeoutMs: 120_000 });
      assert.equal(r.code, 1, r.stderr);
      const err =
        r.json<{ error: { message: string; space: { roles: string[]; short_bytes: number }[] } }>().error;
      assert.match(
        err.message,
        new RegExp(
          `not enough free space \\(nothing was written\\): model ${hub.repo} need \\S+ MiB on ${small}, \\S+ MiB free`,
        ),
      );
      assert.deepEqual(err.space[0].roles, [`model ${hub.repo}`]);
      assert.ok(
        err.space[0].short_bytes > 60 * 1024 * 1024,
        "the listing's ~100 MiB, not the profile's 2 GiB",
      );
      assert.equal(hub.requests.some((q) => q.path.includes("/resolve/")), false, "no file was fetched");
      await assert.rejects(Deno.stat(`${vars.MLAGENT_ROOT}/big`), Deno.errors.NotFound);

      const off = await runMlagent(["install", file, "--json"], { env: { ...vars, HF_HUB_OFFLINE: "1" } });
      assert.equal(off.code, 1, off.stderr);
      assert.match(off.json<{ error: { message: string } }>().error.message, /model \S+ need 2\.0 GiB on /);

      const venvOnly = await runMlagent(["install", file, "--no-models", "--dry-run"], { env: vars });
      assert.equal(venvOnly.code, 0, venvOnly.stderr);
    } finally {
      await new Deno.Command("umount", { args: ["-l", small] }).output();
    }
  },
});
