/**
 * `mlagent doctor --json` wall time (spawned via `deno run main.ts`, a fake nvidia-smi printing a real XML
 * capture first on PATH) against running the same probes alone: the nvidia-smi, python, nvcc and df commands
 * the doctor runs (every interpreter asked who it is, then the one it takes asked in full), spawned directly
 * from this process. Both measured alternately in one run; medians.
 * Nothing is subtracted: the doctor's time includes Deno's start-up and module loading.
 */
import type { BenchRow } from "../bench.ts";
import { realEnv } from "../../agent/core/env.ts";
import { findOnPath } from "../../agent/core/run.ts";
import { gatherPython, IDENTIFY_SCRIPT, listPythonCandidates, PROBE_SCRIPT } from "../../checks/python.ts";
import { SMI_XML_ARGV } from "../../checks/gpu.ts";
import { median, REPO_ROOT, spawnQuiet } from "../bench_util.ts";

/**
 * Spawned as mlagent's runner spawns (own session): measured here, children started in the bench's session
 * ran up to 3x slower on this machine, which would flatter the doctor.
 */
const spawn = async (argv: string[], env: Record<string, string>) =>
  (await spawnQuiet(argv, env, { detached: true })).code;

const RUNS = 7;

export async function run(): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "mlagent-bench-doctor-" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    const xml = `${REPO_ROOT}/tests/fixtures/nvidia-smi/xml/q_x_595.58.03_1xRTX3080.xml`;
    await Deno.writeTextFile(`${dir}/bin/nvidia-smi`, `#!/bin/sh\ncat '${xml}'\n`, { mode: 0o755 });
    const vars: Record<string, string> = {
      ...Deno.env.toObject(),
      PATH: `${dir}/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      MLAGENT_STATE_DIR: `${dir}/state`,
      MLAGENT_ROOT: `${dir}/venvs`,
      NO_COLOR: "1",
      PIP_CONFIG_FILE: "/dev/null",
    };

    // The probes the doctor runs on this node, found the way it finds them: every interpreter asked who it is,
    // then, after those answers, the one it takes asked in full (which one is the doctor's own answer).
    const env = realEnv({ vars });
    const seen = new Set<string>();
    const pythons: string[][] = [];
    for (const c of await listPythonCandidates(env)) {
      const real = await Deno.realPath(c.path).catch(() => null);
      if (!real || seen.has(real)) continue;
      seen.add(real);
      pythons.push([c.path, "-I", "-S", "-c", IDENTIFY_SCRIPT]);
    }
    const facts = await gatherPython(env, 10_000, null);
    const asked = facts.pythons.map((p) => [p.found_as[0], "-I", "-c", PROBE_SCRIPT, "--venv"]);
    const nvcc = findOnPath("nvcc", vars.PATH) ??
      ["/usr/local/cuda/bin/nvcc"].find((p) => findOnPath(p, undefined));
    const others: string[][] = [
      [`${dir}/bin/nvidia-smi`, ...SMI_XML_ARGV.slice(1)],
      ...(nvcc ? [[nvcc, "--version"]] : []),
      ["df", "-P", "-k", dir, "/tmp"],
    ].map((a) => [findOnPath(a[0], vars.PATH) ?? a[0], ...a.slice(1)]);
    const probes = [...others, ...pythons, ...asked];

    const doctorArgv = [
      Deno.execPath(),
      "run",
      "--allow-all",
      "--quiet",
      `${REPO_ROOT}/main.ts`,
      "doctor",
      "--json",
    ];
    const timeDoctor = async () => {
      const t = performance.now();
      const code = await spawn(doctorArgv, vars);
      if (code !== 0 && code !== 1) throw new Error(`doctor exited ${code}`);
      return performance.now() - t;
    };
    // The doctor runs independent probes side by side; so does this baseline (the fastest they can go).
    const timeProbesParallel = async () => {
      const t = performance.now();
      await Promise.all([
        ...others.map((p) => spawn(p, vars)),
        (async () => {
          await Promise.all(pythons.map((p) => spawn(p, vars)));
          // The newest alone, then (only when it did not fit) the rest side by side, as the doctor asks them.
          if (asked.length) await spawn(asked[0], vars);
          await Promise.all(asked.slice(1).map((p) => spawn(p, vars)));
        })(),
      ]);
      return performance.now() - t;
    };
    const timeProbesSequential = async () => {
      const t = performance.now();
      for (const p of probes) await spawn(p, vars);
      return performance.now() - t;
    };

    await timeDoctor(); // warm Deno's module cache, as any second run on a node is
    await timeProbesParallel();
    const d: number[] = [];
    const par: number[] = [];
    const seq: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      d.push(await timeDoctor());
      par.push(await timeProbesParallel());
      seq.push(await timeProbesSequential());
    }
    const [md, mp, ms] = [median(d), median(par), median(seq)];
    const detail = `doctor ${md.toFixed(0)} ms, probes side by side ${mp.toFixed(0)} ms, one after another ${
      ms.toFixed(0)
    } ms; ${probes.length} probes (${pythons.length} interpreters asked who they are, ${asked.length} in full); median of ${RUNS}`;
    return [
      {
        name: "doctor --json wall / its probes alone (side by side)",
        value: md / mp,
        unit: "x",
        target: "< 2",
        met: md / mp < 2,
        detail,
      },
      {
        name: "doctor --json wall / its probes alone (one after another)",
        value: md / ms,
        unit: "x",
        target: "< 2",
        met: md / ms < 2,
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
