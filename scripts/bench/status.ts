/**
 * The prologue's cost against its probes alone, and `status --json` over 200 venvs.
 *
 * Prologue: a fake node (fake nvidia-smi printing a real XML capture, fake dmesg, a ready venv whose
 * bin/python is the real interpreter) judged by runPrologue in this process, against the same probes spawned
 * directly in the same arrangement (nvidia-smi, dmesg, stat of each path then df, the venv's python probe
 * (the same script), side by side as the prologue runs them). Measured alternately, medians. The spawned `mlagent prologue` row
 * adds Deno's start-up and module loading, which a person waits for but the probes do not share.
 *
 * Status: 200 venvs in mixed states (ready, failed, outdated, installing, interpreter gone), `status --json`
 * spawned as a user runs it, and gatherStatus in process.
 */
import type { BenchRow } from "../bench.ts";
import { realEnv } from "../../agent/core/env.ts";
import { runPrologue } from "../../agent/prologue/mod.ts";
import { PYTHON_PROBE } from "../../agent/install/venv.ts";
import { gatherStatus } from "../../agent/status/mod.ts";
import { loadProfile } from "../../agent/profiles/mod.ts";
import { SMI_XML_ARGV } from "../../checks/gpu.ts";
import {
  type FakeNode,
  makeNode,
  testProfile,
  writeProfile,
  writeVenv,
} from "../../tests/support/node_states.ts";
import { mlagentArgv } from "../../tests/support/cli.ts";
import { median, REPO_ROOT, settleDisk, spawnQuiet, timed } from "../bench_util.ts";

const RUNS = 9;
const VENVS = 200;
const spawn = async (argv: string[], env: Record<string, string>) => (await spawnQuiet(argv, env)).code;

/** `count` venvs with their profiles, in turn ready, failed, outdated, installing and interpreter gone. */
export async function writeMixedVenvs(n: FakeNode, count: number): Promise<void> {
  const kinds = ["ready", "failed", "outdated", "installing", "gone"] as const;
  for (let i = 0; i < count; i++) {
    const kind = kinds[i % kinds.length];
    const p = testProfile(`v${String(i).padStart(3, "0")}`);
    await writeProfile(n, p);
    await writeVenv(n.root, p.name, {
      status: kind === "failed" ? "failed" : kind === "installing" ? "installing" : "ready",
      profile: kind === "outdated"
        ? testProfile(p.name, { stages: [{ name: "one", packages: ["x==0"] }] })
        : p,
      python: kind === "gone" ? "gone" : "real",
    });
  }
}

export async function run(): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "mlagent-bench-status-" });
  try {
    const n = await makeNode(dir);
    const xml = `${REPO_ROOT}/tests/fixtures/nvidia-smi/xml/q_x_595.58.03_1xRTX3080.xml`;
    await Deno.writeTextFile(`${n.bin}/nvidia-smi`, `#!/bin/sh\ncat '${xml}'\n`, { mode: 0o755 });
    await Deno.writeTextFile(`${n.bin}/dmesg`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const vars: Record<string, string> = {
      ...Deno.env.toObject(),
      ...n.vars,
      PATH: `${n.bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      NO_COLOR: "1",
      PIP_CONFIG_FILE: "/dev/null",
      CUDA_VISIBLE_DEVICES: "0",
      SLURM_JOB_ID: "1",
    };
    const demo = testProfile("demo");
    await writeProfile(n, demo);
    await writeVenv(n.root, "demo", { status: "ready", profile: demo });
    const env = realEnv({ vars, quiet: true });
    const profile = await loadProfile(env, "demo");

    const probesAlone = () =>
      Promise.all([
        spawn([`${n.bin}/nvidia-smi`, ...SMI_XML_ARGV.slice(1)], vars),
        spawn([`${n.bin}/dmesg`, "--time-format", "iso"], vars),
        Promise.all([n.root, n.tmp].map((p) => spawn(["stat", "-c", "%F", "--", p], vars)))
          .then(() => spawn(["df", "-P", "-k", n.root, n.tmp], vars)),
        spawn(["stat", "-c", "%F", "--", n.root], vars)
          .then(() => spawn([`${n.root}/demo/bin/python`, "-I", "-c", PYTHON_PROBE], vars)),
      ]);
    const prologueInProcess = () =>
      runPrologue(env, {
        profile,
        profileRef: "demo",
        scheduler: "slurm",
        timeoutMs: 30_000,
        install: false,
      });
    const prologueCli = () => spawn(mlagentArgv(["prologue", "--profile", "demo", "--json"]), vars);

    // Warm up the page cache and Deno's module cache.
    await settleDisk();
    await probesAlone();
    const warm = await prologueInProcess();
    if (warm.verdict !== "run") throw new Error(`bench node is not healthy: ${JSON.stringify(warm.checks)}`);
    await prologueCli();
    const probes: number[] = [];
    const inProc: number[] = [];
    const cli: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      probes.push(await timed(probesAlone));
      inProc.push(await timed(prologueInProcess));
      cli.push(await timed(prologueCli));
    }

    // 200 venvs in mixed states.
    await writeMixedVenvs(n, VENVS);
    await settleDisk();
    const statusCli = () => spawn(mlagentArgv(["status", "--json"]), vars);
    const statusInProcess = () => gatherStatus(env, { profiles: [] });
    await statusCli();
    const sCli: number[] = [];
    const sIn: number[] = [];
    const version: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      sCli.push(await timed(statusCli));
      sIn.push(await timed(statusInProcess));
      version.push(await timed(() => spawn(mlagentArgv(["--version"]), vars)));
    }

    const p = median(probes);
    const ratio = median(inProc) / p;
    const cliRatio = median(cli) / p;
    const s = median(sCli);
    return [
      {
        name: "prologue (in process) / its probes alone",
        value: ratio,
        unit: "x",
        target: "<= 1.2",
        met: ratio <= 1.2,
        detail: `${median(inProc).toFixed(0)} ms vs ${p.toFixed(0)} ms, median of ${RUNS}`,
      },
      {
        name: "mlagent prologue (spawned, with Deno start-up) / its probes",
        value: cliRatio,
        unit: "x",
        target: "info",
        met: true,
        detail: `${median(cli).toFixed(0)} ms; \`mlagent --version\` alone ${median(version).toFixed(0)} ms`,
      },
      {
        name: `mlagent status --json over ${VENVS} venvs (spawned)`,
        value: s,
        unit: "ms",
        target: "< 500 ms",
        met: s < 500,
        detail: `in process ${median(sIn).toFixed(0)} ms; start-up (\`mlagent --version\`) ${
          median(version).toFixed(0)
        } ms, ${Math.round((100 * median(version)) / s)}% of it`,
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
