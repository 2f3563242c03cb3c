/**
 * `mlagent fleet` over a directory of node files the real CLI wrote for fake nodes (ready, damaged,
 * outdated and missing venvs; a GPU with ERR!; a driver too old for the venv's cu121 wheels; a cache whose
 * record counts corrupt entries), with faults injected into copies: a file cut short, one from a newer
 * schema, one from a clock hours ahead, a stale one, a second report for the same node, and the writers'
 * own temp files, which are not node files.
 */
import assert from "node:assert/strict";
import { mergeFleet, parseNodeFile, splitDocuments } from "../../agent/fleet/mod.ts";
import type { FleetReport } from "../../agent/fleet/types.ts";
import { runMlagent } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";
import { SMI_ERR, SMI_OLD_DRIVER, writeNodeFiles } from "../support/fleet_nodes.ts";
import { parseExposition } from "../support/prometheus.ts";

const HOUR = 3600_000;

async function buildFleet(dir: string): Promise<string> {
  const fleet = `${dir}/fleet`;
  await Deno.mkdir(fleet);
  await writeNodeFiles(dir, fleet, { host: "gpu-01", venvs: { demo: "ready", extra: "ready" } });
  await writeNodeFiles(dir, fleet, { host: "gpu-02", smi: SMI_ERR, venvs: { demo: "damaged" } });
  await writeNodeFiles(dir, fleet, {
    host: "gpu-03",
    smi: SMI_OLD_DRIVER,
    venvs: { demo: "outdated", torchy: "ready" },
    cuda: true,
    corruptCacheEntries: 3,
  });
  await writeNodeFiles(dir, fleet, { host: "gpu-04", health: false });

  const read = (name: string) => JSON.parse(Deno.readTextFileSync(`${fleet}/${name}`));
  const write = (name: string, doc: unknown) =>
    Deno.writeTextFileSync(`${fleet}/${name}`, JSON.stringify(doc, null, 2));
  const base = read("gpu-01.json");
  const text = Deno.readTextFileSync(`${fleet}/gpu-01.json`);
  // Cut short mid-write by a writer that did not rename into place.
  Deno.writeTextFileSync(
    `${fleet}/gpu-05.json`,
    text.replaceAll("gpu-01", "gpu-05").slice(0, Math.floor(text.length / 2)),
  );
  write("gpu-06.json", { ...base, schema_version: 2, node: { ...base.node, host: "gpu-06" } });
  write("gpu-07.json", {
    ...base,
    node: { ...base.node, host: "gpu-07" },
    generated_at: new Date(Date.now() + 2 * HOUR).toISOString(),
  });
  const old = new Date(Date.now() - 3 * HOUR);
  write("gpu-08.json", { ...base, node: { ...base.node, host: "gpu-08" }, generated_at: old.toISOString() });
  Deno.utimeSync(`${fleet}/gpu-08.json`, old, old);
  write("gpu-01-before-rename.json", {
    ...base,
    generated_at: new Date(Date.parse(base.generated_at) - 60_000).toISOString(),
  });
  Deno.writeTextFileSync(`${fleet}/.gpu-09.json.tmp-4411-12345`, "{");
  Deno.writeTextFileSync(`${fleet}/README`, "node files go here");
  return fleet;
}

Deno.test("fleet merges real node files and reports every injected fault on its node, never crashing", async (t) => {
  await using d = await tempDir();
  const fleet = await buildFleet(d.path);
  const r = await runMlagent(["fleet", fleet, "--json"]);
  assert.equal(r.code, 1, r.stderr);
  const rep = r.json<FleetReport>();
  const node = (n: string) => rep.nodes.find((x) => x.node === n)!;
  const kinds = (n: string) => node(n).problems.map((p) => p.kind);

  await t.step("per profile: ready, damaged, outdated, missing and unknown nodes", () => {
    const demo = rep.profiles.find((p) => p.profile === "demo")!;
    assert.deepEqual(demo.ready, ["gpu-01", "gpu-07", "gpu-08"]);
    assert.deepEqual(demo.damaged, ["gpu-02"]);
    assert.deepEqual(demo.outdated, ["gpu-03"]);
    assert.deepEqual(demo.missing, ["gpu-04"]);
    assert.deepEqual(demo.unknown, ["gpu-05", "gpu-06"]);
    assert.deepEqual(demo.driver_too_old, ["gpu-03"]);
    assert.deepEqual(rep.profiles.find((p) => p.profile === "torchy")!.driver_too_old, ["gpu-03"]);
  });

  await t.step("health per node: the faulty GPU, the old driver, the corrupt cache", () => {
    assert.equal(node("gpu-01").verdict, "healthy");
    assert.equal(node("gpu-01").attention, true, "gpu-01 has a duplicate file");
    assert.equal(node("gpu-02").verdict, "unhealthy");
    assert.deepEqual(node("gpu-02").gpu_faults.map((g) => [g.gpu, g.faults]), [[3, ["err"]]]);
    assert.deepEqual(node("gpu-02").faults, ["gpu.health GPU 3 ERR!"]);
    assert.equal(node("gpu-03").driver_version, "510.47.03");
    assert.deepEqual(node("gpu-03").driver_too_old.map((x) => [x.venv, x.cuda_variant]), [["demo", "cu121"], [
      "torchy",
      "cu121",
    ]]);
    assert.equal(node("gpu-03").cache_corrupt_entries, 3);
    assert.equal(node("gpu-04").health_file, null);
    assert.equal(rep.counts.unhealthy, 1);
    assert.equal(rep.counts.gpu_faults, 1);
    assert.equal(rep.counts.corrupt_caches, 1);
  });

  await t.step(
    "bad files: cut short, newer schema, clock ahead, stale, duplicate; temp files ignored",
    () => {
      assert.deepEqual(kinds("gpu-05"), ["truncated"]);
      assert.deepEqual(kinds("gpu-06"), ["newer-schema"]);
      assert.match(node("gpu-06").problems[0].detail, /schema_version 2; this mlagent reads 1/);
      assert.deepEqual(kinds("gpu-07"), ["clock-skew"]);
      assert.match(node("gpu-07").problems[0].detail, /ahead of this clock/);
      assert.deepEqual(kinds("gpu-08"), ["stale"]);
      assert.deepEqual(kinds("gpu-01"), ["duplicate"]);
      assert.equal(
        node("gpu-01").problems[0].file,
        "gpu-01-before-rename.json",
        "the older report is the duplicate",
      );
      assert.equal(node("gpu-01").status_file, "gpu-01.json");
      assert.ok(!rep.nodes.some((n) => n.node.includes("gpu-09")), "hidden temp files are not node files");
      assert.equal(rep.counts.files, 12);
      assert.deepEqual(rep.counts.problems, {
        duplicate: 1,
        truncated: 1,
        "newer-schema": 1,
        "clock-skew": 1,
        stale: 1,
      });
    },
  );

  await t.step("the text table names each node's problems", async () => {
    const text = await runMlagent(["fleet", fleet]);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^demo\s+3\s+1\s+1\s+1\s+0\s+2\s+1$/m);
    assert.match(text.stdout, /^gpu-02\s+unhealthy: gpu\.health GPU 3 ERR!$/m);
    assert.match(
      text.stdout,
      /^gpu-03\s+driver 510\.47\.03 too old for demo \(cu121\); .*torchy.*; cache: 3 corrupt entries$/m,
    );
    assert.match(text.stdout, /^gpu-05\s+truncated: gpu-05\.json: cut short after \d+ bytes/m);
  });

  await t.step("Prometheus: valid exposition, a node label, no series twice", async () => {
    const prom = await runMlagent(["fleet", fleet, "--format", "prometheus"]);
    const { samples } = parseExposition(prom.stdout);
    const has = (name: string, labels: Record<string, string>, value: number) =>
      samples.some((s) =>
        s.name === name && s.value === value && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
      );
    assert.ok(has("mlagent_fleet_node_health", { node: "gpu-02", verdict: "unhealthy" }, 1));
    assert.ok(has("mlagent_fleet_node_gpu_faults", { node: "gpu-02" }, 1));
    assert.ok(has("mlagent_fleet_node_file_problems", { node: "gpu-05", kind: "truncated" }, 1));
    assert.ok(has("mlagent_fleet_venv_ready", { node: "gpu-02", profile: "demo" }, 0));
    assert.ok(has("mlagent_fleet_driver_too_old", { node: "gpu-03", profile: "torchy" }, 1));
    assert.ok(has("mlagent_fleet_profile_nodes", { profile: "demo", state: "missing" }, 1));
    assert.ok(has("mlagent_fleet_nodes", {}, 8));
  });

  await t.step("fleet - reads the same documents from stdin, one cut short in the middle", async () => {
    const names = ["gpu-02.json", "gpu-05.json", "gpu-03.json", "gpu-03.health.json"];
    const stdin = names.map((n) => Deno.readTextFileSync(`${fleet}/${n}`)).join("\n");
    const s = await runMlagent(["fleet", "-", "--json"], { stdin });
    const rep2 = s.json<FleetReport>();
    assert.deepEqual(rep2.nodes.map((n) => n.node), ["gpu-02", "gpu-03", "stdin-2"]);
    assert.deepEqual(rep2.nodes.find((n) => n.node === "stdin-2")!.problems.map((p) => p.kind), [
      "truncated",
    ]);
    assert.equal(rep2.nodes.find((n) => n.node === "gpu-03")!.cache_corrupt_entries, 3);
  });
});

Deno.test("fleet: bad input exits 2 with a hint; an empty directory is an empty report", async () => {
  await using d = await tempDir();
  const missing = await runMlagent(["fleet", `${d.path}/nope`]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read .*nope/);
  assert.match(missing.stderr, /^hint: /m);
  const none = await runMlagent(["fleet"], { env: { MLAGENT_FLEET_DIR: undefined } });
  assert.equal(none.code, 2);
  const empty = await runMlagent(["fleet", d.path, "--json"]);
  assert.equal(empty.code, 0);
  assert.equal(empty.json<FleetReport>().counts.nodes, 0);
});

Deno.test("parseNodeFile() and splitDocuments(): odd files are named, never thrown", () => {
  const p = (text: string | null, name = "n1.json", mtime: number | null = null) =>
    parseNodeFile({ name, text, mtime_ms: mtime, problem: null });
  const kind = (x: ReturnType<typeof p>) => x.kind === "bad" ? x.problem.kind : x.kind;
  assert.equal(kind(p("")), "empty");
  assert.equal(kind(p('{"schema_version": 1, "node": {"host"')), "truncated");
  assert.equal(kind(p("<html>502 Bad Gateway</html>")), "unreadable");
  assert.equal(kind(p("[1, 2]")), "unknown-format");
  assert.equal(kind(p('{"schema_version": 1, "hello": true}')), "unknown-format");
  assert.equal(kind(p('{"schema_version": 9, "host": "x"}')), "newer-schema");
  assert.equal(p('{"schema_version": 9, "host": "x"}').node, "x");
  assert.equal(p(null, "gpu-3.health.json").node, "gpu-3");
  const status =
    '{"schema_version": 1, "node": {"host": "a"}, "venvs": [], "generated_at": "2026-01-01T00:00:00.000Z", "duration_ms": 5}';
  const now = Date.parse("2026-01-01T00:01:00Z");
  const merged = mergeFleet([p(status, "a.json", Date.parse("2026-01-01T02:00:00Z"))], {
    now,
    maxAgeMs: HOUR,
    maxSkewMs: 300_000,
    source: "x",
  });
  assert.deepEqual(
    merged.nodes[0].problems.map((x) => x.kind),
    ["clock-skew"],
    "2 h off its file's write time",
  );
  assert.deepEqual(splitDocuments('{"a": 1}\n{"b":\n  2}\n{"c": \n'), [
    '{"a": 1}',
    '{"b":\n  2}',
    '{"c": \n',
  ]);
});
