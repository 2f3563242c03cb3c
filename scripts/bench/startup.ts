/**
 * Start-up: `mlagent --version` and `mlagent --help` (deno run of main.ts) against `deno run` of an empty
 * file, alternated in one run; medians. The ratio is what mlagent adds on top of the runtime's own start:
 * only the invoked command's modules load (the command table imports each command lazily), and nothing
 * runs at import time. The start-up share of a real command is reported beside it (status --json).
 */
import type { BenchRow } from "../bench.ts";
import { median, REPO_ROOT, spawnQuiet, timed } from "../bench_util.ts";

const RUNS = 9;

export async function run(): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "mlagent-bench-startup-" });
  try {
    await Deno.writeTextFile(`${dir}/empty.ts`, "");
    const vars: Record<string, string> = {
      ...Deno.env.toObject(),
      NO_COLOR: "1",
      MLAGENT_ROOT: `${dir}/venvs`,
      MLAGENT_STATE_DIR: `${dir}/state`,
      MLAGENT_CACHE_DIR: `${dir}/cache`,
      MLAGENT_LOCK_DIR: `${dir}/locks`,
    };
    const deno = (args: string[]) => [Deno.execPath(), "run", "--allow-all", "--quiet", ...args];
    const cases = {
      empty: deno([`${dir}/empty.ts`]),
      version: deno([`${REPO_ROOT}/main.ts`, "--version"]),
      help: deno([`${REPO_ROOT}/main.ts`, "--help"]),
      status: deno([`${REPO_ROOT}/main.ts`, "status", "--json"]),
    };
    // Warm the module cache once (the first run compiles TypeScript).
    for (const argv of Object.values(cases)) await spawnQuiet(argv, vars);
    const times: Record<keyof typeof cases, number[]> = { empty: [], version: [], help: [], status: [] };
    for (let i = 0; i < RUNS; i++) {
      for (const [name, argv] of Object.entries(cases) as [keyof typeof cases, string[]][]) {
        times[name].push(await timed(() => spawnQuiet(argv, vars)));
      }
    }
    const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<
      keyof typeof cases,
      number
    >;
    const ratio = m.version / m.empty;
    return [
      {
        name: "mlagent --version / deno run of an empty file",
        value: ratio,
        unit: "x",
        target: "<= 1.3",
        met: ratio <= 1.3,
        detail: `${m.version.toFixed(0)} ms vs ${m.empty.toFixed(0)} ms`,
      },
      {
        name: "mlagent --help / deno run of an empty file",
        value: m.help / m.empty,
        unit: "x",
        target: "<= 1.3",
        met: m.help / m.empty <= 1.3,
        detail: `${m.help.toFixed(0)} ms`,
      },
      {
        name: "status --json (empty node): start-up share",
        value: m.empty / m.status,
        unit: "share",
        target: "report",
        met: true,
        detail: `${m.status.toFixed(0)} ms in all, ${m.empty.toFixed(0)} ms of it the runtime's start`,
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
