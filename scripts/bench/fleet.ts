/**
 * `mlagent fleet` over a shared directory of node files, against its budget: 5,000 node files merged in
 * under 2 s. The files are clones of real documents (the real CLI's `status --json` and `health --json` of
 * fake nodes: one healthy with three venvs, one with a GPU showing ERR!, one whose driver is too old for its
 * cu121 venvs), renamed per host, with every 50th node's status cut short and every 40th stale, so the merge
 * does its real work. Timed spawned (as an admin runs it, Deno's start-up included) and in process; medians.
 * The budget is judged on the spawned run's CPU time (user + sys, read from the waiting shell's
 * /proc/PID/stat cutime and cstime): on a shared machine the wall time is mostly waiting for a CPU, so the
 * wall time and the load average are printed beside it.
 */
import process from "node:process";
import type { BenchRow } from "../bench.ts";
import { realEnv } from "../../agent/core/env.ts";
import { gatherFleet } from "../../agent/fleet/mod.ts";
import { mlagentArgv } from "../../tests/support/cli.ts";
import { SMI_ERR, SMI_OLD_DRIVER, writeNodeFiles } from "../../tests/support/fleet_nodes.ts";
import { median, spawnQuiet, timed } from "../bench_util.ts";

const RUNS = 5;
/** USER_HZ: /proc reports CPU time in ticks of 10 ms on Linux. */
const TICK_MS = 10;

/** Wall and CPU time of a child: the shell waits for it, then prints its own stat with the child's times. */
async function spawnTimed(argv: string[], env: Record<string, string>) {
  const t = performance.now();
  const out = await new Deno.Command("sh", {
    args: ["-c", '"$@" >/dev/null 2>&1; cat /proc/$$/stat', "sh", ...argv],
    env,
    clearEnv: true,
    stdout: "piped",
  }).output();
  const wallMs = performance.now() - t;
  const stat = new TextDecoder().decode(out.stdout);
  // After "pid (comm) ", cutime and cstime (fields 16 and 17) are the 14th and 15th.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { wallMs, cpuMs: (Number(f[13]) + Number(f[14])) * TICK_MS };
}

async function cloneFleet(templates: string, out: string, nodes: number): Promise<number> {
  const docs = ["gpu-ok", "gpu-err", "gpu-old"].map((h) => ({
    host: h,
    status: Deno.readTextFileSync(`${templates}/${h}.json`),
    health: Deno.readTextFileSync(`${templates}/${h}.health.json`),
  }));
  await Deno.mkdir(out, { recursive: true });
  const stale = new Date(Date.now() - 3 * 3600_000).toISOString();
  for (let i = 0; i < nodes; i++) {
    const host = `gpu-${String(i).padStart(5, "0")}`;
    const t = docs[i % 50 === 7 ? 1 : i % 97 === 3 ? 2 : 0];
    let status = t.status.replaceAll(t.host, host);
    if (i % 50 === 0) status = status.slice(0, status.length >> 1);
    if (i % 40 === 1) status = status.replace(/"generated_at": "[^"]+"/, `"generated_at": "${stale}"`);
    Deno.writeTextFileSync(`${out}/${host}.json`, status);
    Deno.writeTextFileSync(`${out}/${host}.health.json`, t.health.replaceAll(t.host, host));
  }
  return nodes * 2;
}

export async function run(): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "mlagent-bench-fleet-" });
  try {
    const templates = `${dir}/templates`;
    await Deno.mkdir(templates);
    await writeNodeFiles(dir, templates, {
      host: "gpu-ok",
      venvs: { demo: "ready", extra: "ready", third: "ready" },
    });
    await writeNodeFiles(dir, templates, { host: "gpu-err", smi: SMI_ERR, venvs: { demo: "damaged" } });
    await writeNodeFiles(dir, templates, {
      host: "gpu-old",
      smi: SMI_OLD_DRIVER,
      venvs: { demo: "ready" },
      cuda: true,
    });
    const rows: BenchRow[] = [];
    const env = realEnv({ quiet: true });
    const vars = { ...Deno.env.toObject(), NO_COLOR: "1" };
    for (const nodes of [2500, 5000]) {
      const fleet = `${dir}/fleet-${nodes}`;
      const files = await cloneFleet(templates, fleet, nodes);
      const argv = mlagentArgv(["fleet", fleet, "--json"]);
      await spawnQuiet(argv, vars);
      const wall: number[] = [];
      const cpu: number[] = [];
      const inWall: number[] = [];
      const inCpu: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const r = await spawnTimed(argv, vars);
        wall.push(r.wallMs);
        cpu.push(r.cpuMs);
        const c0 = process.cpuUsage();
        inWall.push(
          await timed(() => gatherFleet(env, { source: fleet, maxAgeMs: 3600_000, maxSkewMs: 300_000 })),
        );
        const c = process.cpuUsage(c0);
        inCpu.push((c.user + c.system) / 1000);
      }
      const budget = files <= 5000;
      const load = Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
      rows.push({
        name: `mlagent fleet --json, ${files} node files (${nodes} nodes), spawned: CPU`,
        value: median(cpu),
        unit: "ms",
        target: budget ? "< 2000 ms" : "info",
        met: budget ? median(cpu) < 2000 : true,
        detail:
          `wall ${median(wall).toFixed(0)} ms at load ${load} on ${navigator.hardwareConcurrency} CPUs; ` +
          `in process ${median(inWall).toFixed(0)} ms wall, ${
            median(inCpu).toFixed(0)
          } ms CPU; median of ${RUNS}`,
      });
    }
    return rows;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
