/** `status --format prometheus`: parsed back by a strict text-format (0.0.4) parser, line by line. */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { FIXTURES, tempDir } from "../support/env.ts";
import { writeFakeBin } from "../support/fake_bin.ts";
import { makeNode, testProfile, writeProfile, writeVenv } from "../support/node_states.ts";
import { escapeLabelValue } from "../../agent/status/prometheus.ts";
import { parseExposition, type Sample } from "../support/prometheus.ts";

const get = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

Deno.test("the exposition parser in this test rejects what node_exporter rejects", () => {
  assert.throws(() => parseExposition("a 1\na 2\n"), /duplicate series/);
  assert.throws(() => parseExposition('# TYPE a gauge\na{x="1} 1\n'), /bad labels/);
  assert.throws(() => parseExposition("# TYPE a gauge\na one\n"), /bad value/);
  assert.throws(() => parseExposition('# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n'), /split/);
  assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

Deno.test("status --format prometheus writes a textfile that parses line by line and carries the node's numbers", async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  // A cache path with a quote and a backslash: label values must be escaped.
  const cache = `${n.tmp}/ca"che\\dir`;
  await Deno.mkdir(cache, { recursive: true });
  await Deno.writeTextFile(
    `${cache}/.mlagent-cache.json`,
    JSON.stringify({
      bytes: 123456,
      entries: 7,
      corrupt_entries: 2,
      last_heal_at: "2026-01-02T03:04:05.000Z",
    }),
  );
  const vars = { ...n.vars, MLAGENT_CACHE_DIR: cache };
  await writeFakeBin(n.bin, "nvidia-smi", [
    { whenArgsContain: "-q", exitCode: 1 },
    { whenArgsContain: "--query", exitCode: 1 },
    { whenArgsContain: "-L", exitCode: 1 },
    { stdoutFile: `${FIXTURES}/nvidia-smi/table/table_525.85.12_8xA30_one-GPU-ERR.txt` },
  ]);
  const p = testProfile("ready-one");
  await writeProfile(n, p);
  await writeVenv(n.root, "ready-one", { status: "ready", profile: p });
  await writeVenv(n.root, "broken", { status: "failed", profile: testProfile("broken") });
  const doctor = await runMlagent(["doctor", "--json"], { env: vars });
  assert.equal(doctor.code, 1, "the ERR! GPU fails the doctor");

  const out = `${d.path}/textfile/mlagent.prom`;
  await Deno.mkdir(`${d.path}/textfile`);
  const r = await runMlagent(["status", "--format", "prometheus", "--output", out, "ready-one"], {
    env: vars,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    [...Deno.readDirSync(`${d.path}/textfile`)].map((e) => e.name),
    ["mlagent.prom"],
    "no temp file left",
  );
  const { samples, types } = parseExposition(await Deno.readTextFile(out));

  assert.equal(get(samples, "mlagent_venv_ready", { profile: "ready-one" })[0].value, 1);
  assert.equal(get(samples, "mlagent_venv_ready", { profile: "broken" })[0].value, 0);
  assert.equal(get(samples, "mlagent_venv_state", { profile: "broken", state: "failed" })[0].value, 1);
  assert.equal(get(samples, "mlagent_gpu_count")[0].value, 8);
  assert.equal(get(samples, "mlagent_gpu_healthy")[0].value, 0);
  assert.ok(get(samples, "mlagent_gpu_err_fields", { gpu: "3" })[0].value > 0);
  assert.equal(get(samples, "mlagent_gpu_err_fields", { gpu: "0" })[0].value, 0);
  assert.equal(get(samples, "mlagent_gpu_ecc_uncorrected_volatile", { gpu: "0" })[0].value, 0);
  assert.equal(get(samples, "mlagent_doctor_ok")[0].value, 0);
  assert.equal(get(samples, "mlagent_doctor_check_failed", { check: "gpu.health" })[0].value, 1);
  assert.equal(get(samples, "mlagent_cache_bytes", { path: cache })[0].value, 123456);
  assert.equal(get(samples, "mlagent_cache_corrupt_entries")[0].value, 2);
  assert.equal(
    get(samples, "mlagent_cache_last_heal_timestamp_seconds")[0].value,
    Date.parse("2026-01-02T03:04:05Z") / 1000,
  );
  assert.equal(get(samples, "mlagent_locks_stale")[0].value, 0);
  assert.ok(Math.abs(get(samples, "mlagent_status_timestamp_seconds")[0].value - Date.now() / 1000) < 60);
  for (const [name, type] of types) assert.equal(type, "gauge", name);

  // Without --output the same text goes to stdout.
  const stdout = await runMlagent(["status", "--format", "prometheus"], { env: vars });
  assert.equal(stdout.code, 0);
  parseExposition(stdout.stdout);
  const both = await runMlagent(["status", "--json", "--format", "prometheus"], { env: vars });
  assert.equal(both.code, 2);
});
