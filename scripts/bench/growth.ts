/**
 * How each cost grows: the same operation at size N and 2N, side by side in one run (the two sizes
 * alternate, the order flipping each round, medians), in process wherever the operation is a library call
 * so Deno's start-up does not hide the growth. One row per dimension, value t(2N)/t(N): 2 is linear, less
 * means a fixed part dominates, more means something grows faster than the count (target <= 2.4).
 * - files in a model: `mlagent download` (spawned) of a repo of N vs 2N small files from the local Hub
 *   look-alike, then the completeness check status and prologue run over it (inspectModels, in process);
 * - venvs on a node: gatherStatus over N vs 2N venvs in mixed states;
 * - entries in a cache: the scan behind `cache heal --dry-run` (scanCache) over N vs 2N files;
 * - contenders for a lock: N vs 2N `mlagent lock run` processes started at once, each doing a short section,
 *   and `lock list` (listLocks) over N vs 2N stale records;
 * - files in a venv: the full integrity check (a stat per RECORD file) at N vs 2N files.
 * The generators are the other benches' own, at two sizes.
 */
import type { BenchRow } from "../bench.ts";
import { realEnv } from "../../agent/core/env.ts";
import { scanCache } from "../../agent/cache/mod.ts";
import { checkIntegrity } from "../../agent/install/integrity.ts";
import { listLocks } from "../../agent/lock/mod.ts";
import { gatherStatus, inspectModels } from "../../agent/status/mod.ts";
import { hermeticVars } from "../../tests/support/env.ts";
import { mlagentArgv } from "../../tests/support/cli.ts";
import { HubServer, type ServedFile } from "../../tests/support/hf_server.ts";
import { lockRunSh } from "../../tests/support/lock_helpers.ts";
import { makeNode, testProfile } from "../../tests/support/node_states.ts";
import { median, settleDisk, spawnQuiet, timed } from "../bench_util.ts";
import { generateCache } from "./cache.ts";
import { writeVenv as writeIntegrityVenv } from "./integrity.ts";
import { contend, writeRecords } from "./lock.ts";
import { writeMixedVenvs } from "./status.ts";

const TARGET = 2.4;
const MODEL_FILES = 150;
const VENVS = 100;
/** uv wheels and pip http entries of the cache at N: about 25,000 files. */
const CACHE_WHEELS = 2200;
const CACHE_HTTP = 1500;
const CONTENDERS = 4;
/** Each contender's section: a 50 ms sleep between two time stamps. */
const SECTION_S = 0.05;
const LOCK_RECORDS = 5000;
/** Distributions of 500 files each in the venv at N: 10,000 files. */
const VENV_PACKAGES = 20;

/** `rounds` timings of each of two operations, alternating, the order flipped every round. */
async function sideBySide(
  rounds: number,
  small: () => Promise<unknown>,
  large: () => Promise<unknown>,
): Promise<[number[], number[]]> {
  const s: number[] = [];
  const l: number[] = [];
  await settleDisk();
  for (let i = 0; i < rounds; i++) {
    if (i % 2) {
      l.push(await timed(large));
      s.push(await timed(small));
    } else {
      s.push(await timed(small));
      l.push(await timed(large));
    }
  }
  return [s, l];
}

const ms = (x: number) => (x >= 100 ? Math.round(x).toString() : x.toFixed(1));

/** `sizes`: N and 2N, or [N, about 2N] where a generator's unit is not the item counted. */
function growthRow(
  name: string,
  sizes: number | [number, number],
  item: string,
  small: number[],
  large: number[],
  bound: string,
): BenchRow {
  const [n, n2] = typeof sizes === "number" ? [sizes, 2 * sizes] : sizes;
  const ts = median(small);
  const tl = median(large);
  const ratio = tl / ts;
  const perItem = (tl - ts) / (n2 - n);
  return {
    name: `${name}, ${n} vs ${n2} ${item}: t(2N)/t(N)`,
    value: ratio,
    unit: "x",
    target: `<= ${TARGET}`,
    met: ratio <= TARGET,
    detail: `N=${n}: ${ms(ts)} ms, 2N=${n2}: ${ms(tl)} ms, medians of ${small.length}; ` +
      `${perItem >= 1 ? perItem.toFixed(1) : perItem.toFixed(3)} ms per added ${
        item.replace(/s$/, "")
      }; ${bound}`,
  };
}

async function models(dir: string): Promise<BenchRow[]> {
  const repoFiles = (n: number): ServedFile[] =>
    Array.from({ length: n }, (_, i) => ({
      path: `shards/part-${String(i).padStart(4, "0")}.bin`,
      content: { size: 4096 + i, seed: i + 1 },
      lfs: i % 2 === 0,
    }));
  await using small = new HubServer({ repo: "bench/small", files: repoFiles(MODEL_FILES) });
  await using large = new HubServer({ repo: "bench/large", files: repoFiles(2 * MODEL_FILES) });
  const models = `${dir}/models`;
  let round = 0;
  const download = (server: HubServer, label: string) => async () => {
    const local = `${models}/${label}-${round}`;
    const r = await spawnQuiet(
      mlagentArgv(["download", server.repo, "--local-dir", local]),
      hermeticVars({ HF_ENDPOINT: server.url, HF_HOME: `${dir}/hf-${label}-${round}` }),
    );
    if (r.code !== 0) throw new Error(`mlagent download ${server.repo} failed: ${r.stderr.slice(-500)}`);
  };
  // The first spawn pays for compiling the module graph; keep it out of both sides.
  await download(small, "warm")();
  const dl: [number[], number[]] = [[], []];
  for (; round < 3; round++) {
    const [s, l] = await sideBySide(1, download(small, "small"), download(large, "large"));
    dl[0].push(...s);
    dl[1].push(...l);
  }
  const env = realEnv({ vars: hermeticVars({ MLAGENT_MODELS_DIR: models }), quiet: true });
  const check = (server: HubServer, label: string, files: number) => async () => {
    const profile = testProfile(label, { models: [{ repo: server.repo, local_dir: `${label}-0` }] });
    const [m] = await inspectModels(env, profile);
    if (!m.complete || m.files !== files) {
      throw new Error(`${server.repo} not whole: ${m.files} of ${files} files, ${m.reason}`);
    }
  };
  await check(small, "small", MODEL_FILES)();
  const [cs, cl] = await sideBySide(
    9,
    check(small, "small", MODEL_FILES),
    check(large, "large", 2 * MODEL_FILES),
  );
  return [
    growthRow(
      "files in a model: mlagent download (spawned)",
      MODEL_FILES,
      "files",
      dl[0],
      dl[1],
      "a HEAD and a GET per file, each file and its .metadata record written; start-up is the fixed part",
    ),
    growthRow(
      "files in a model: completeness check (inspectModels)",
      MODEL_FILES,
      "files",
      cs,
      cl,
      "one record read and one stat per file, nothing hashed",
    ),
  ];
}

async function venvs(dir: string): Promise<BenchRow> {
  const nodes = await Promise.all([makeNode(`${dir}/small`), makeNode(`${dir}/large`)]);
  await writeMixedVenvs(nodes[0], VENVS);
  await writeMixedVenvs(nodes[1], 2 * VENVS);
  const [es, el] = nodes.map((n) => realEnv({ vars: hermeticVars(n.vars), quiet: true }));
  const status = (env: typeof es, count: number) => async () => {
    const r = await gatherStatus(env, { profiles: [] });
    if (r.venvs.length !== count) throw new Error(`status saw ${r.venvs.length} of ${count} venvs`);
  };
  await status(es, VENVS)();
  await status(el, 2 * VENVS)();
  const [s, l] = await sideBySide(15, status(es, VENVS), status(el, 2 * VENVS));
  return growthRow(
    "venvs on a node: gatherStatus",
    VENVS,
    "venvs",
    s,
    l,
    "one state read, one interpreter link stat and (ready ones) a dist-info listing per venv",
  );
}

async function cache(dir: string): Promise<BenchRow> {
  Deno.mkdirSync(`${dir}/small`, { mode: 0o700 });
  Deno.mkdirSync(`${dir}/large`, { mode: 0o700 });
  const gs = generateCache(`${dir}/small`, { wheels: CACHE_WHEELS, httpEntries: CACHE_HTTP });
  const gl = generateCache(`${dir}/large`, { wheels: 2 * CACHE_WHEELS, httpEntries: 2 * CACHE_HTTP });
  const env = realEnv({ vars: hermeticVars(), quiet: true });
  const scan = (root: string, corrupt: number) => async () => {
    const r = await scanCache(env, root, { sizes: false });
    if (r.corrupt.length !== corrupt) throw new Error(`scan found ${r.corrupt.length} of ${corrupt} corrupt`);
  };
  await scan(`${dir}/small`, gs.corrupt)();
  await scan(`${dir}/large`, gl.corrupt)();
  const [s, l] = await sideBySide(7, scan(`${dir}/small`, gs.corrupt), scan(`${dir}/large`, gl.corrupt));
  return growthRow(
    "entries in a cache: cache scan (scanCache)",
    [gs.files, gl.files],
    "files",
    s,
    l,
    "one readdir per directory and a stat or small read per entry",
  );
}

async function locks(dir: string): Promise<BenchRow[]> {
  let round = 0;
  const spans: Record<number, number[]> = { [CONTENDERS]: [], [2 * CONTENDERS]: [] };
  const contenders = (n: number) => async () => {
    const log = `${dir}/contend-${n}-${round}.log`;
    const work = (i: number) =>
      `echo "begin ${i} $(date +%s%N)" >> '${log}'; sleep ${SECTION_S}; echo "end ${i} $(date +%s%N)" >> '${log}'`;
    const r = await contend(dir, (i) => mlagentArgv(lockRunSh("growth", work(i))), log, n);
    spans[n].push(r.spanMs);
  };
  await contenders(CONTENDERS)(); // warm Deno's module cache
  spans[CONTENDERS] = [];
  const wall: [number[], number[]] = [[], []];
  for (round = 1; round <= 3; round++) {
    const [s, l] = await sideBySide(1, contenders(CONTENDERS), contenders(2 * CONTENDERS));
    wall[0].push(...s);
    wall[1].push(...l);
  }
  // What a hand-off costs: first begin to last end, less the sections themselves, per gap between two.
  const handoff = (n: number) => (median(spans[n]) - n * SECTION_S * 1000) / (n - 1);
  const contendRow = growthRow(
    "contenders for a lock: mlagent lock run (spawned, all at once)",
    CONTENDERS,
    "contenders",
    wall[0],
    wall[1],
    `serialized hand-offs: ${ms(handoff(CONTENDERS))} ms per hand-off at N, ${
      ms(handoff(2 * CONTENDERS))
    } ms at 2N beyond each ${SECTION_S * 1000} ms section; ${
      ms(median(wall[1]) / (2 * CONTENDERS))
    } ms wall per contender at 2N, mostly concurrent Deno start-ups`,
  );

  await writeRecords(`${dir}/list-small`, "killed-here", LOCK_RECORDS);
  await writeRecords(`${dir}/list-large`, "killed-here", 2 * LOCK_RECORDS);
  const env = realEnv({ vars: hermeticVars({ MLAGENT_ROOT: `${dir}/no-venvs` }), quiet: true });
  const list = (locks: string, n: number) => async () => {
    const found = (await listLocks(env, [{ dir: locks, prefix: "" }])).length;
    if (found !== n) throw new Error(`listed ${found} of ${n} lock records`);
  };
  await list(`${dir}/list-small`, LOCK_RECORDS)();
  const [s, l] = await sideBySide(
    5,
    list(`${dir}/list-small`, LOCK_RECORDS),
    list(`${dir}/list-large`, 2 * LOCK_RECORDS),
  );
  return [
    contendRow,
    growthRow(
      "lock records: lock list (listLocks)",
      LOCK_RECORDS,
      "records",
      s,
      l,
      "one readdir, then one read and parse per record and one liveness probe per holder",
    ),
  ];
}

async function venvFiles(dir: string): Promise<BenchRow> {
  const ds = await writeIntegrityVenv(`${dir}/small`, VENV_PACKAGES);
  const dl = await writeIntegrityVenv(`${dir}/large`, 2 * VENV_PACKAGES);
  const env = realEnv({ quiet: true });
  const files = ds.length * 500;
  const check = (venv: string, dists: typeof ds, n: number) => async () => {
    const r = await checkIntegrity(env, venv, dists, "full");
    if (!r.ok || r.files !== n) throw new Error(`integrity check of ${venv}: ${r.files} of ${n} files`);
  };
  await check(`${dir}/small`, ds, files)();
  await check(`${dir}/large`, dl, 2 * files)();
  const [s, l] = await sideBySide(7, check(`${dir}/small`, ds, files), check(`${dir}/large`, dl, 2 * files));
  return growthRow(
    "files in a venv: integrity check, full (checkIntegrity)",
    files,
    "files",
    s,
    l,
    "one RECORD read per distribution and one stat per file",
  );
}

export async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const parts: [string, (dir: string) => Promise<BenchRow | BenchRow[]>][] = [
    ["models", models],
    ["venvs", venvs],
    ["cache", cache],
    ["locks", locks],
    ["venv-files", venvFiles],
  ];
  for (const [label, part] of parts) {
    const dir = await Deno.makeTempDir({ prefix: `mlagent-bench-growth-${label}-` });
    try {
      rows.push(...[await part(dir)].flat());
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  return rows;
}

if (import.meta.main) {
  for (const r of await run()) console.log(JSON.stringify(r));
}
