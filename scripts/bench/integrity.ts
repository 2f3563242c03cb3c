/**
 * The venv integrity check (agent/install/integrity.ts) on a venv of 20,000 files: 40 pinned distributions
 * of 500 files each, RECORDs as pip writes them. The full check (every RECORD file at its size, stat only)
 * has a 300 ms budget: it runs on every no-op install, `status PROFILE` and prologue. Beside it, the listing
 * form (each dist-info at its pin) that the status overview uses, `find | wc` over the same tree for scale,
 * and the deep form (every file hashed), which is for `verify --deep` and cron, not for the hot path.
 */
import type { BenchRow } from "../bench.ts";
import { realEnv } from "../../agent/core/env.ts";
import { checkIntegrity, type PinnedDistribution } from "../../agent/install/integrity.ts";
import { median, settleDisk, spawnQuiet, timed } from "../bench_util.ts";

const PACKAGES = 40;
const FILES_EACH = 500;
const RUNS = 7;

/** A venv of `packages` pinned distributions of `filesEach` files each (default: the 20,000-file bench venv). */
export async function writeVenv(
  dir: string,
  packages = PACKAGES,
  filesEach = FILES_EACH,
): Promise<PinnedDistribution[]> {
  const site = `${dir}/lib/python3.11/site-packages`;
  const dists: PinnedDistribution[] = [];
  for (let p = 0; p < packages; p++) {
    const mod = `pkg${p}`;
    const info = `${mod}-1.0.dist-info`;
    await Deno.mkdir(`${site}/${mod}/sub`, { recursive: true });
    await Deno.mkdir(`${site}/${info}`, { recursive: true });
    const lines: string[] = [];
    for (let f = 0; f < filesEach; f++) {
      const rel = `${mod}/${f % 2 ? "sub/" : ""}m${f}.py`;
      const body = `# ${rel}\n${"x = 1\n".repeat(f % 7)}`;
      await Deno.writeTextFile(`${site}/${rel}`, body);
      lines.push(`${rel},sha256=${"A".repeat(43)},${new TextEncoder().encode(body).length}`);
    }
    lines.push(`${info}/RECORD,,`);
    await Deno.writeTextFile(`${site}/${info}/RECORD`, lines.join("\n") + "\n");
    dists.push({ name: mod, version: "1.0", requirement: `${mod}==1.0`, stage: "one" });
  }
  return dists;
}

export async function run(): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "mlagent-bench-integrity-" });
  try {
    const dists = await writeVenv(dir);
    await settleDisk();
    const env = realEnv({ quiet: true });
    const warm = await checkIntegrity(env, dir, dists, "full");
    if (!warm.ok || warm.files !== PACKAGES * FILES_EACH) {
      throw new Error(`bench venv is not whole: ${JSON.stringify(warm.problems.slice(0, 3))}`);
    }
    const full: number[] = [];
    const listing: number[] = [];
    const find: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      full.push(await timed(() => checkIntegrity(env, dir, dists, "full")));
      listing.push(await timed(() => checkIntegrity(env, dir, dists, "listing")));
      find.push(
        await timed(() => spawnQuiet(["find", dir, "-type", "f", "-size", "+0"], Deno.env.toObject())),
      );
    }
    const deep = await timed(() => checkIntegrity(env, dir, dists, "deep"));
    const f = median(full);
    return [
      {
        name: `integrity check, full (stat), venv of ${PACKAGES * FILES_EACH} files`,
        value: f,
        unit: "ms",
        target: "< 300 ms",
        met: f < 300,
        detail: `\`find -type f -size +0\` over the same tree ${median(find).toFixed(0)} ms`,
      },
      {
        name: "integrity check, listing (dist-info at its pin)",
        value: median(listing),
        unit: "ms",
        target: "report",
        met: true,
      },
      {
        name: "integrity check, deep (every file hashed)",
        value: deep,
        unit: "ms",
        target: "report",
        met: true,
        detail: "for verify --deep and cron",
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
