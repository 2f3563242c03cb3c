/**
 * Helpers the benchmarks in scripts/bench/ share. This file sits outside scripts/bench/ because
 * scripts/bench.ts loads every module there as a benchmark.
 */

export const REPO_ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The middle value (the mean of the two middle ones for an even count). */
/**
 * Writes back every dirty page before a measurement: fixtures just written (200 venvs, 50,000 cache files, a
 * 512 MiB download) are otherwise written back during whatever runs next, on the same two cores.
 */
export async function settleDisk(): Promise<void> {
  await new Deno.Command("sync").output().catch(() => {});
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Milliseconds `f` takes. */
export async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

/**
 * Runs argv with exactly `env`, stdin closed and output captured. `detached` starts it in its own session,
 * as mlagent's runner starts its children.
 */
export async function spawnQuiet(
  argv: string[],
  env: Record<string, string>,
  opts: { detached?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: opts.detached ?? false,
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}
