/** `mlagent remove` and `models rm` on what is not the caller's, and a dry run that changes nothing. */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";
import { makeNode, testProfile, writeProfile, writeVenv } from "../support/node_states.ts";

const IS_ROOT = Deno.uid() === 0;

Deno.test({
  name: "remove refuses a venv another user owns (exit 2, naming the owner), and models rm their model dir",
  ignore: !IS_ROOT,
}, async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  const theirs = testProfile("theirs");
  await writeProfile(n, theirs);
  const venv = await writeVenv(n.root, "theirs", { status: "ready", profile: theirs });
  await Deno.chown(venv, 65534, 65534);
  const r = await runMlagent(["remove", "theirs", "--yes"], { env: n.vars });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /refusing to remove venv .*theirs: it belongs to .*65534/);
  assert.ok((await Deno.stat(`${venv}/.mlagent/state.json`)).isFile);
  const model = `${n.models}/org/their-model/.cache/huggingface`;
  await Deno.mkdir(model, { recursive: true });
  await Deno.chown(`${n.models}/org/their-model`, 65534, 65534);
  const m = await runMlagent(["models", "rm", "org/their-model", "--yes"], { env: n.vars });
  assert.equal(m.code, 2, m.stderr);
  assert.ok((await Deno.stat(model)).isDirectory);
});

Deno.test("remove without --yes is a dry run naming the bytes, and changes nothing", async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  const p = testProfile("mine");
  await writeProfile(n, p);
  const venv = await writeVenv(n.root, "mine", { status: "ready", profile: p });
  const r = await runMlagent(["remove", "mine", "--json"], { env: n.vars });
  assert.equal(r.code, 0, r.stderr);
  const doc = r.json<{ dry_run: boolean; freed_bytes: number; venv: { removed: boolean } }>();
  assert.equal(doc.dry_run, true);
  assert.equal(doc.venv.removed, false);
  assert.ok(doc.freed_bytes > 0);
  assert.ok((await Deno.stat(`${venv}/.mlagent/state.json`)).isFile);
  const none = await runMlagent(["remove", "never-installed"], { env: n.vars });
  assert.equal(none.code, 2, "an unknown profile with no venv");
});
