/**
 * System faults during an install are named for what they are. A real tmpfs of a few MiB stands in for a
 * full scratch disk: the venv cannot be created there, and the user must read "no space left", not
 * "python3-venv missing", and never find the venv left "installing" as if an installer had died.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { installVars, tempDir } from "../support/env.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { testProfile } from "../support/node_states.ts";
import { CAN_MOUNT } from "../support/mounts.ts";

// Needs mount(8) for a small tmpfs; without it this test shows as ignored.
Deno.test({
  name: "a full disk while the venv is created says so, and the venv is not left 'installing'",
  ignore: !CAN_MOUNT,
  fn: async () => {
    const dists = await testDists();
    await using index = await startIndex(dists.dir);
    await using tmp = await tempDir("mlagent-enospc-");
    const small = `${tmp.path}/small`;
    await Deno.mkdir(small);
    const m = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=3m", "tmpfs", small] })
      .output();
    assert.equal(m.code, 0);
    try {
      const vars = { ...installVars(tmp.path, index.url), MLAGENT_ROOT: `${small}/venvs` };
      const file = `${tmp.path}/full.json`;
      await Deno.writeTextFile(file, JSON.stringify(testProfile("full")));
      const r = await runMlagent(["install", file, "--json", "--no-models"], {
        env: vars,
        timeoutMs: 120_000,
      });
      assert.equal(r.code, 1, r.stderr);
      const err = r.json<{ error: { message: string; hint: string } }>().error;
      assert.match(`${err.message}\n${err.hint}`, /no space left on the device/i);
      assert.doesNotMatch(err.hint, /python3-venv/);
      assert.doesNotMatch(r.stderr, /at \S+\.ts:\d+/, "no stack trace");
      let recorded: string | null = null;
      try {
        recorded = JSON.parse(await Deno.readTextFile(`${small}/venvs/full/.mlagent/state.json`)).status;
      } catch { /* the state could not be written at all */ }
      if (recorded !== "failed") {
        assert.match(err.message, /could not be recorded/, `state says ${recorded}`);
      }
    } finally {
      await new Deno.Command("umount", { args: ["-l", small] }).output();
    }
  },
});
