/**
 * `mlagent install` against the same work done by hand, side by side in one run, on a local PEP 503 index
 * (tests/support/pypi.ts) serving a dependency chain, a helper wheel and an sdist built without isolation.
 * - no-op: `mlagent install` of a ready venv (spawned `deno run main.ts`, start-up included) against
 *   `pip install -r` of the same set in the same venv (pip finds everything satisfied). Target <= 0.2x.
 *   Beside them, in the same loop: `deno run` of an empty file and `mlagent --version`, so the detail says
 *   how much of the no-op is the runtime's start, mlagent's start, and the no-op's own work.
 * - cold: `mlagent install` into a fresh root with a fresh cache (doctor, venv, stages, verify, state)
 *   against `python -m venv` plus the same pip commands run bare. Target <= 1.15x. Beside them, the doctor
 *   alone (`mlagent doctor --profile`, start-up included), which every install runs first: most of the
 *   distance to the bare commands.
 * Runs alternate, medians are compared; nothing is subtracted from mlagent's side.
 */
import type { BenchRow } from "../bench.ts";
import { hermeticVars } from "../../tests/support/env.ts";
import { mlagentArgv } from "../../tests/support/cli.ts";
import { startIndex, testDists } from "../../tests/support/pypi.ts";
import { median, spawnQuiet } from "../bench_util.ts";

const NOOP_RUNS = 7;
const COLD_RUNS = 3;

const STAGES = [
  { name: "helper", packages: ["mla-helper==1.0"] },
  { name: "chain", packages: ["mla-alpha==1.0"] },
  { name: "build", packages: ["mla-needs-helper==1.0"], no_build_isolation: true },
];

async function timed(argv: string[], env: Record<string, string>): Promise<number> {
  const t = performance.now();
  const out = await spawnQuiet(argv, env);
  const ms = performance.now() - t;
  if (out.code !== 0) throw new Error(`${argv.join(" ")} exited ${out.code}: ${out.stderr.slice(-800)}`);
  return ms;
}

export async function run(): Promise<BenchRow[]> {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  const dir = await Deno.makeTempDir({ prefix: "mlagent-bench-install-" });
  try {
    const profileFile = `${dir}/bench.json`;
    await Deno.writeTextFile(
      profileFile,
      JSON.stringify({
        name: "bench",
        description: "install bench",
        python: ">=3.8",
        gpu: { required: false },
        cuda_variants: [],
        builds_extensions: false,
        disk_gib: 0,
        stages: STAGES,
        verify: [{ name: "imports", code: "import mla_alpha, mla_needs_helper" }],
        models: [],
      }),
    );
    const base = hermeticVars({ HOME: `${dir}/home`, MLAGENT_INDEX_URL: index.url });
    const mlagent = (root: string, cache: string) => ({
      argv: mlagentArgv(["install", profileFile, "--quiet"]),
      env: { ...base, MLAGENT_ROOT: root, MLAGENT_CACHE_DIR: cache, MLAGENT_LOCK_DIR: `${dir}/locks` },
    });

    // Cold: fresh root and cache each time on both sides. The interpreter mlagent chose is used bare too.
    const cold = { mlagent: [] as number[], bare: [] as number[], doctor: [] as number[] };
    let python = "";
    for (let i = 0; i < COLD_RUNS; i++) {
      const m = mlagent(`${dir}/cold-m-${i}`, `${dir}/cache-m-${i}`);
      cold.mlagent.push(await timed(m.argv, m.env));
      const state = JSON.parse(await Deno.readTextFile(`${dir}/cold-m-${i}/bench/.mlagent/state.json`));
      python = state.plan.python_executable;
      const venv = `${dir}/cold-b-${i}`;
      const cache = `${dir}/cache-b-${i}`;
      const t = performance.now();
      await timed([python, "-m", "venv", venv], base);
      for (const s of STAGES) {
        await timed([
          `${venv}/bin/python`,
          "-m",
          "pip",
          "install",
          "--disable-pip-version-check",
          "--cache-dir",
          cache,
          "--index-url",
          index.url,
          ...(s.no_build_isolation ? ["--no-build-isolation"] : []),
          ...s.packages,
        ], base);
      }
      await timed([`${venv}/bin/python`, "-c", "import mla_alpha, mla_needs_helper"], base);
      cold.bare.push(performance.now() - t);
      // Its verdict does not matter here (a warning or a failure on this node): only how long it takes.
      const d = mlagent(`${dir}/cold-m-${i}`, `${dir}/cache-m-${i}`);
      const t1 = performance.now();
      await spawnQuiet(mlagentArgv(["doctor", "--profile", profileFile, "--quiet"]), d.env);
      cold.doctor.push(performance.now() - t1);
    }

    // No-op: the first cold venv is ready; pip is asked for the same set in the same venv.
    const ready = mlagent(`${dir}/cold-m-0`, `${dir}/cache-m-0`);
    const reqs = `${dir}/requirements.txt`;
    await Deno.writeTextFile(reqs, STAGES.flatMap((s) => s.packages).join("\n") + "\n");
    const pipR = [
      `${dir}/cold-m-0/bench/bin/python`,
      "-m",
      "pip",
      "install",
      "--disable-pip-version-check",
      "--index-url",
      index.url,
      "--no-build-isolation",
      "-r",
      reqs,
    ];
    const empty = `${dir}/empty.ts`;
    await Deno.writeTextFile(empty, "");
    const noop = {
      mlagent: [] as number[],
      pip: [] as number[],
      deno: [] as number[],
      version: [] as number[],
    };
    for (let i = 0; i < NOOP_RUNS; i++) {
      noop.mlagent.push(await timed(ready.argv, ready.env));
      noop.pip.push(await timed(pipR, base));
      noop.deno.push(await timed([Deno.execPath(), "run", "--quiet", empty], base));
      noop.version.push(await timed(mlagentArgv(["--version"]), base));
    }

    const noopRatio = median(noop.mlagent) / median(noop.pip);
    const coldRatio = median(cold.mlagent) / median(cold.bare);
    return [
      {
        name: "install no-op vs pip install -r (same set, same venv)",
        value: noopRatio,
        unit: "x",
        target: "<= 0.2",
        met: noopRatio <= 0.2,
        detail: `mlagent ${Math.round(median(noop.mlagent))} ms, pip ${
          Math.round(median(noop.pip))
        } ms, medians of ${NOOP_RUNS}; of mlagent's: deno run of an empty file ${
          Math.round(median(noop.deno))
        } ms, mlagent --version ${Math.round(median(noop.version))} ms`,
      },
      {
        name: "install cold vs venv + the same pip commands bare",
        value: coldRatio,
        unit: "x",
        target: "<= 1.15",
        met: coldRatio <= 1.15,
        detail: `mlagent ${Math.round(median(cold.mlagent))} ms, bare ${
          Math.round(median(cold.bare))
        } ms, medians of ${COLD_RUNS}; of mlagent's: the doctor alone ${
          Math.round(median(cold.doctor))
        } ms (it asks every interpreter on the node who it is, and the one it takes in full); ${python}`,
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
