/** Spawns main.ts exactly as a user would run mlagent, with hermetic variables. */
import { hermeticVars, REPO_ROOT } from "./env.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as the one JSON document --json promises. */
  json<T = Record<string, unknown>>(): T;
}

export interface CliOptions {
  /** Variables over hermeticVars(); undefined removes one. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  stdin?: string;
  timeoutMs?: number;
}

export const MAIN_TS = `${REPO_ROOT}/main.ts`;

/** argv for spawning mlagent directly (for tests that manage the child themselves). */
export function mlagentArgv(args: string[]): string[] {
  return [Deno.execPath(), "run", "--allow-all", "--quiet", MAIN_TS, ...args];
}

export async function runMlagent(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const [cmd, ...rest] = mlagentArgv(args);
  const child = new Deno.Command(cmd, {
    args: rest,
    cwd: opts.cwd ?? REPO_ROOT,
    env: hermeticVars(opts.env),
    clearEnv: true,
    stdin: opts.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const out = await child.output();
  clearTimeout(timer);
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  return {
    code: out.code,
    stdout,
    stderr,
    json<T>() {
      try {
        return JSON.parse(stdout) as T;
      } catch {
        throw new Error(`stdout is not one JSON document (exit ${out.code}):\n${stdout}\nstderr:\n${stderr}`);
      }
    },
  };
}
