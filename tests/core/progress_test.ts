/**
 * Progress as people and batch logs want it: redrawn rows on a terminal (log lines above them), a line
 * every 10% or 30 s in a log, nothing with --quiet. The board runs on a fake clock through its seams; the
 * CLI runs under a real pseudo-terminal (`script`) and through a pipe.
 */
import assert from "node:assert/strict";
import { makeBoard } from "../../agent/core/progress.ts";
import { ESC, runMlagent, runMlagentOnTerminal } from "../support/cli.ts";
import { installVars, tempDir } from "../support/env.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { testProfile } from "../support/node_states.ts";

function fakeBoard(isTerminal: boolean, enabled = true) {
  let now = 0;
  const ticks: (() => void)[] = [];
  const raw: string[] = [];
  const lines: string[] = [];
  const board = makeBoard({
    writeRaw: (t) => void raw.push(t),
    info: (l) => void lines.push(l),
    isTerminal,
    enabled,
    now: () => now,
    every: (_ms, fn) => {
      ticks.push(fn);
      return () => ticks.splice(ticks.indexOf(fn), 1);
    },
  });
  return {
    board,
    raw,
    lines,
    advance(ms: number) {
      now += ms;
      for (const t of [...ticks]) t();
    },
    ticking: () => ticks.length,
  };
}

Deno.test("on a terminal, rows are redrawn in place and a log line goes above them", () => {
  const f = fakeBoard(true);
  const a = f.board.row("stage torch");
  const b = f.board.row("model.safetensors");
  b.update("1.0 GiB/4.0 GiB 100 MiB/s ETA 30s", 0.25);
  f.advance(120);
  const frame = f.raw.at(-1)!;
  assert.match(frame, /⠙ stage torch \(0s\)\n/);
  assert.match(frame, /model\.safetensors 1\.0 GiB\/4\.0 GiB 100 MiB\/s ETA 30s\n/);
  f.board.printLine("warning: something");
  const around = f.raw.at(-1)!;
  assert.ok(around.startsWith("\x1b[2A"), "moves up over the two rows first");
  assert.match(around, /warning: something\n.*stage torch/s, "the log line, then the rows again");
  a.done("stage torch: installed in 3s");
  assert.deepEqual(f.lines, ["stage torch: installed in 3s"]);
  b.done();
  assert.equal(f.ticking(), 0, "no timer left once the rows end");
});

Deno.test("in a log, a fraction prints every 10% and a spinner row a heartbeat every 30 s, never a redraw", () => {
  const f = fakeBoard(false);
  const t = f.board.row("model.safetensors");
  for (const x of [0.05, 0.12, 0.15, 0.31, 0.99]) t.update(`${Math.round(x * 100)}%`, x);
  assert.deepEqual(f.lines, ["model.safetensors 12%", "model.safetensors 31%", "model.safetensors 99%"]);
  t.done();
  const s = f.board.row("stage torch");
  f.advance(29_000);
  f.advance(2_000);
  f.advance(30_000);
  assert.deepEqual(f.lines.slice(3), [
    "stage torch: still running after 31s",
    "stage torch: still running after 1m01s",
  ]);
  s.done();
  assert.equal(f.raw.filter((r) => r.includes("\x1b[")).length, 0, "no terminal codes in a log");
});

Deno.test("with --quiet or --no-progress a row shows nothing", () => {
  const f = fakeBoard(true, false);
  const r = f.board.row("stage torch");
  r.update("x", 0.5);
  f.advance(60_000);
  r.done();
  assert.deepEqual([f.raw, f.lines, f.ticking()], [[], [], 0]);
});

Deno.test("install shows live rows on a terminal and plain lines through a pipe", async () => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using tmp = await tempDir("mlagent-progress-");
  const vars = installVars(tmp.path, index.url);
  const file = `${tmp.path}/p.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(testProfile("prog", { stages: [{ name: "one", packages: ["mla-gamma==1.0"] }] })),
  );
  // `script` gives the child a real pseudo-terminal; its transcript is what a person saw.
  const tty = await runMlagentOnTerminal(["install", file, "--no-models"], vars);
  const seen = tty.transcript;
  assert.equal(tty.code, 0, seen);
  assert.match(seen, new RegExp(`${ESC}\\[\\d+A`), "rows are redrawn in place");
  assert.match(seen, /creating venv .*\(\d+s\)/);
  assert.match(seen, /stage one: installed in \d+s/);
  await Deno.remove(`${vars.MLAGENT_ROOT}`, { recursive: true });
  const piped = await runMlagent(["install", file, "--no-models"], { env: vars, timeoutMs: 120_000 });
  assert.equal(piped.code, 0, piped.stderr);
  assert.ok(!piped.stderr.includes(`${ESC}[`), "no terminal codes in a log");
  assert.match(piped.stderr, /stage one: installed in \d+s/);
});

Deno.test("-q: a cron line that worked prints nothing at all; one that failed prints only its errors", async () => {
  await using tmp = await tempDir("mlagent-quiet-");
  const vars = {
    MLAGENT_CACHE_DIR: `${tmp.path}/cache`,
    MLAGENT_STATE_DIR: `${tmp.path}/state`,
    MLAGENT_ROOT: `${tmp.path}/venvs`,
  };
  for (const argv of [["cache", "heal", "--quiet"], ["status", "-q"], ["lock", "list", "-q"]]) {
    const r = await runMlagent(argv, { env: vars });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout + r.stderr, "", `${argv.join(" ")} printed something`);
  }
  const bad = await runMlagent(["status", "no-such-profile", "-q"], { env: vars });
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, "");
  assert.match(bad.stderr, /^error: unknown profile "no-such-profile"/);
});
