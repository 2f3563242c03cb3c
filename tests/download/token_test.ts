/**
 * Tokens as users save them (issue 14): a token file or variable is cleaned as huggingface_hub cleans it, sent
 * as one clean header, and a token no HTTP header can carry is a clear error at once, naming where it came from.
 */
import assert from "node:assert/strict";
import { cleanToken, downloadRepo, readToken } from "../../agent/download/mod.ts";
import { MlagentError } from "../../agent/core/errors.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { smallRepo } from "../support/hf_server.ts";

const FAST = { backoffBaseMs: 1, skipDiskCheck: true, stallTimeoutMs: 2000 };

/**
 * Expected values produced by Python 3 running huggingface_hub's `_clean_token` expression
 * (`token.replace("\r", "").replace("\n", "").strip() or None`, utils/_auth.py @ ee0a4510) on each input.
 * The one row where mlagent differs on purpose is the BOM: Python keeps it (and the HTTP layer then refuses
 * the header); mlagent drops a leading BOM as the editor's, not the token's.
 */
const PYTHON_CLEANED: [string, string, string | undefined][] = [
  ["trailing LF (echo > token)", "hf_abc\n", "hf_abc"],
  ["CRLF (Windows editor)", "hf_abc\r\n", "hf_abc"],
  ["spaces around, then LF", "  hf_abc  \n", "hf_abc"],
  ["tabs and CRLF", "\thf_abc\t\r\n", "hf_abc"],
  ["a newline inside (wrapped by an editor)", "hf_ab\ncd\n", "hf_abcd"],
  ["CRLF inside", "hf_ab\r\ncd", "hf_abcd"],
  ["only newlines", "\n\n", undefined],
  ["only spaces", "   ", undefined],
  ["vertical tab and form feed at the end", "hf_abc\u000b\f", "hf_abc"],
  ["Python-only whitespace (FS, NEL)", "\u001chf_abc\u0085", "hf_abc"],
  ["no-break and ideographic spaces", "\u00a0hf_abc\u3000", "hf_abc"],
  ["a BOM (Notepad's UTF-8)", "\ufeffhf_abc\n", "hf_abc"], // Python: "\ufeffhf_abc"
];

Deno.test("cleanToken() strips a token as huggingface_hub does", () => {
  for (const [name, raw, want] of PYTHON_CLEANED) assert.equal(cleanToken(raw), want, name);
});

const saved: [string, string][] = [
  ["CRLF", "hf_saved_token_1\r\n"],
  ["trailing spaces", "hf_saved_token_1   \n"],
  ["a BOM and CRLF", "\ufeffhf_saved_token_1\r\n"],
  ["a line break inside", "hf_saved_\ntoken_1\n"],
];
for (const [name, text] of saved) {
  Deno.test(`a token file saved with ${name} is sent clean and works`, async () => {
    await using server = smallRepo({ requireToken: "hf_saved_token_1" });
    await using dir = await tempDir();
    await Deno.writeTextFile(`${dir.path}/token`, text);
    const env = testEnv({
      vars: hermeticVars({ HF_ENDPOINT: server.url, HF_TOKEN_PATH: `${dir.path}/token` }),
      sleep: () => Promise.resolve(),
    });
    const r = await downloadRepo(env, { repo: server.repo, localDir: `${dir.path}/m`, ...FAST });
    assert.equal(r.ok, true);
    assert.equal(r.retries, 0);
    const hub = server.requests.filter((q) => q.host.startsWith("127.0.0.1"));
    assert.ok(hub.length > 0 && hub.every((q) => q.authorization === "Bearer hf_saved_token_1"));
  });
}

Deno.test("HF_TOKEN with a trailing newline is cleaned too; an empty one falls through to the file", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/token`, "hf_from_file\n");
  const env = (vars: Record<string, string>) =>
    testEnv({ vars: hermeticVars({ HF_HOME: dir.path, ...vars }) });
  assert.equal(await readToken(env({ HF_TOKEN: "hf_from_var\n" })), "hf_from_var");
  assert.equal(await readToken(env({ HF_TOKEN: " \r\n" })), "hf_from_file");
  assert.equal(await readToken(env({ HUGGING_FACE_HUB_TOKEN: "hf_old_name " })), "hf_old_name");
  assert.equal(await readToken(env({ HF_TOKEN_PATH: `${dir.path}/absent` })), undefined);
});

for (
  const [name, text, why] of [
    ["a control character", "hf_abc\u0007def\n", /character 7 is U\+0007, which is a control character/],
    ["a NUL", "hf_abc\u0000\n", /U\+0000/],
    ["a typographic character", "hf_abc\u2019s\n", /U\+2019, which is not ASCII/],
  ] as const
) {
  Deno.test(`a token file with ${name} is refused at once, naming the file, and nothing is sent`, async () => {
    await using server = smallRepo();
    await using dir = await tempDir();
    await Deno.writeTextFile(`${dir.path}/token`, text);
    const env = testEnv({
      vars: hermeticVars({ HF_ENDPOINT: server.url, HF_TOKEN_PATH: `${dir.path}/token` }),
      sleep: () => Promise.resolve(),
    });
    const t0 = Date.now();
    await assert.rejects(
      downloadRepo(env, { repo: server.repo, localDir: `${dir.path}/m`, ...FAST }),
      (e: unknown) =>
        e instanceof MlagentError && e.exitCode === 2 &&
        e.message.includes(`the token file ${dir.path}/token cannot be sent in an HTTP header`) &&
        why.test(e.message) && !e.message.includes("hf_abc"),
    );
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(server.requests.length, 0, "not sent, not retried");
    assert.ok(!env.logs.some((l) => /attempt/.test(l)), env.logs.join("\n"));
  });
}

Deno.test("a token file that exists but cannot be read is named, not taken for no token", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/token`);
  const env = testEnv({ vars: hermeticVars({ HF_TOKEN_PATH: `${dir.path}/token` }) });
  await assert.rejects(
    readToken(env),
    (e: unknown) =>
      e instanceof MlagentError && e.exitCode === 2 &&
      e.message.startsWith(`cannot read the Hugging Face token file ${dir.path}/token`),
  );
});
