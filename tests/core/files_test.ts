/**
 * readBoundedText against the files a careless or hostile user hands mlagent (real files, a real FIFO,
 * /dev/zero), and against a file another writer is still appending to between the stat and the read.
 */
import assert from "node:assert/strict";
import type { Env } from "../../agent/core/env.ts";
import { readBoundedText } from "../../agent/core/files.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";

const env = () => testEnv({ vars: hermeticVars() });

Deno.test("readBoundedText() reads a regular file whole, drops a byte-order mark, and says when it is missing", async () => {
  await using d = await tempDir();
  const text = '{"name": "x"}\n'.repeat(5000); // 70 KiB: more than one read
  await Deno.writeTextFile(`${d.path}/big.json`, text);
  await Deno.writeTextFile(`${d.path}/bom.json`, "\uFEFF{}");
  await Deno.writeTextFile(`${d.path}/empty`, "");
  assert.deepEqual(await readBoundedText(env(), `${d.path}/big.json`, 1 << 20), { kind: "ok", text });
  assert.deepEqual(await readBoundedText(env(), `${d.path}/bom.json`, 1 << 20), { kind: "ok", text: "{}" });
  assert.deepEqual(await readBoundedText(env(), `${d.path}/empty`, 1 << 20), { kind: "ok", text: "" });
  assert.deepEqual(await readBoundedText(env(), `${d.path}/absent`, 1 << 20), { kind: "missing" });
});

Deno.test("readBoundedText() takes a file of exactly the limit and refuses one byte more, unread", async () => {
  await using d = await tempDir();
  await Deno.writeTextFile(`${d.path}/at`, "a".repeat(100));
  await Deno.writeTextFile(`${d.path}/over`, "a".repeat(101));
  assert.deepEqual(await readBoundedText(env(), `${d.path}/at`, 100), { kind: "ok", text: "a".repeat(100) });
  assert.deepEqual(await readBoundedText(env(), `${d.path}/over`, 100), {
    kind: "refused",
    why: "is 101 bytes, more than the 100 allowed",
  });
});

Deno.test("readBoundedText() refuses a directory, a FIFO and /dev/zero without opening them", async () => {
  await using d = await tempDir();
  const fifo = `${d.path}/fifo`;
  assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
  await Deno.symlink("/dev/zero", `${d.path}/zero`);
  // Opening the FIFO would block until a writer came: the answer must come at once.
  assert.deepEqual(await readBoundedText(env(), fifo, 1 << 20), {
    kind: "refused",
    why: "is a FIFO, not a regular file",
  });
  assert.deepEqual(await readBoundedText(env(), `${d.path}/zero`, 1 << 20), {
    kind: "refused",
    why: "is a character device, not a regular file",
  });
  assert.deepEqual(await readBoundedText(env(), d.path, 1 << 20), {
    kind: "refused",
    why: "is a directory, not a regular file",
  });
});

/** An Env whose stat of `path` lets another writer append `more` bytes right after it answered. */
function appendingAfterStat(path: string, more: string): Env {
  const e = env();
  const stat: Env["fs"]["stat"] = async (p) => {
    const st = await Deno.stat(p);
    if (String(p) === path) await Deno.writeTextFile(path, more, { append: true });
    return st;
  };
  return { ...e, fs: { ...e.fs, stat } };
}

Deno.test("readBoundedText() reads a file that grew after its stat to its end, and refuses one that grew past the limit", async () => {
  await using d = await tempDir();
  const path = `${d.path}/growing`;
  await Deno.writeTextFile(path, "head\n");
  // Grown to many times its stat'ed size, still within the limit: every byte is read.
  const tail = "more\n".repeat(20_000);
  assert.deepEqual(await readBoundedText(appendingAfterStat(path, tail), path, 1 << 20), {
    kind: "ok",
    text: "head\n" + tail,
  });
  // Grown past the limit: refused, having read no more than one byte beyond it.
  await Deno.writeTextFile(path, "head\n");
  assert.deepEqual(await readBoundedText(appendingAfterStat(path, "x".repeat(200)), path, 100), {
    kind: "refused",
    why: "grew past the 100 bytes allowed",
  });
});
