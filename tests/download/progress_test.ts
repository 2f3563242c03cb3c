/**
 * A download's progress on the board: on a real pseudo-terminal (`script`) a total row and a row per file in
 * flight, redrawn in place; through a pipe never a terminal code; with --no-progress or -q no row at all.
 */
import assert from "node:assert/strict";
import { ESC, runMlagent, runMlagentOnTerminal } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";
import { smallRepo } from "../support/hf_server.ts";
import { progressText } from "../../agent/download/progress.ts";

const MiB = 1024 * 1024;
const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("progressText() says bytes, then rate and ETA once something moved", () => {
  assert.equal(progressText(0, 4 * MiB, 0), "0 B/4.0 MiB");
  assert.match(progressText(1 * MiB, 4 * MiB, 1 * MiB), /^1\.0 MiB\/4\.0 MiB 1\.0 MiB\/s ETA 3s$/);
});

Deno.test(
  "download shows a total row and a row per file in flight on a terminal; none through a pipe or with --no-progress",
  opts,
  async () => {
    await using server = smallRepo({ lfsSize: 4 * MiB });
    await using tmp = await tempDir("mlagent-dlprogress-");
    // One pause near the end (the look-alike pauses again after every later chunk), so the file is in flight
    // across several redraws.
    const stall = () =>
      server.addFault({
        path: "model.safetensors",
        on: "body",
        fault: { kind: "stall", afterBytes: 4 * MiB - 64 * 1024, ms: 1500 },
      });
    stall();
    const vars = { HF_ENDPOINT: server.url, HF_HOME: `${tmp.path}/hf` };
    const tty = await runMlagentOnTerminal(["download", server.repo, "--local-dir", `${tmp.path}/tty`], vars);
    const seen = tty.transcript;
    assert.equal(tty.code, 0, seen);
    assert.match(seen, new RegExp(`${ESC}\\[\\d+A`), "rows are redrawn in place");
    assert.match(seen, /acme\/tiny-model: [\d.]+ \w*B\/[\d.]+ MiB .*\(\d\/5 files\)/, "the total row");
    assert.match(seen, / {2}model\.safetensors [\d.]+ \w*B\/4\.0 MiB/, "a row for the file in flight");

    stall();
    const piped = await runMlagent(["download", server.repo, "--local-dir", `${tmp.path}/pipe`], {
      env: vars,
    });
    assert.equal(piped.code, 0, piped.stderr);
    assert.ok(!piped.stderr.includes(`${ESC}[`), "no terminal codes in a log");

    stall();
    const quiet = await runMlagent([
      "download",
      server.repo,
      "--local-dir",
      `${tmp.path}/np`,
      "--no-progress",
    ], {
      env: vars,
    });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /model\.safetensors [\d.]+|files\)/, quiet.stderr);
  },
);
