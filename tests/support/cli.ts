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

/** The terminal escape, spelled out: a control character in a regex literal reads as a typo. */
export const ESC = "\x1b";

/**
 * Runs mlagent on a real pseudo-terminal (`script`): the transcript is what a person at it saw, progress
 * redraws included.
 */
export async function runMlagentOnTerminal(
  args: string[],
  vars: Record<string, string | undefined>,
): Promise<{ code: number; transcript: string }> {
  const line = mlagentArgv(args).map((a) => `'${a}'`).join(" ");
  const out = await new Deno.Command("script", {
    args: ["-qec", line, "/dev/null"],
    env: hermeticVars(vars),
    clearEnv: true,
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, transcript: new TextDecoder().decode(out.stdout) };
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
