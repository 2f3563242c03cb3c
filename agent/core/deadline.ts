/** Deadlines for work that may hang (a probe, a read on a dead mount), kept through the Env's clock so tests can drive them. */
import type { Env } from "./env.ts";

export type Timed<T> =
  | { kind: "done"; value: T; ms: number }
  | { kind: "timed-out"; ms: number }
  | { kind: "error"; error: unknown; ms: number };

/** Races `f` against a deadline. The loser is never awaited: a hung probe stays behind, the report goes on. */
export function within<T>(env: Env, ms: number, f: () => Promise<T>): Promise<Timed<T>> {
  const t0 = env.now();
  const elapsed = () => Math.round(env.now() - t0);
  const stop = new AbortController();
  const work = f().then(
    (value): Timed<T> => ({ kind: "done", value, ms: elapsed() }),
    (error): Timed<T> => ({ kind: "error", error, ms: elapsed() }),
  );
  const deadline = env.sleep(ms, stop.signal).then((): Timed<T> => ({ kind: "timed-out", ms: elapsed() }));
  return Promise.race([work, deadline]).finally(() => stop.abort());
}

export interface SideBySideTask<T> {
  /** Its own deadline, ms. */
  deadlineMs: number;
  run(): Promise<T>;
}

/**
 * Runs independent tasks at once, each under its own deadline, and waits for all of them under `overallMs`
 * (the prologue's approach, without its job-specific context; `health` uses it). A task still running at
 * the overall deadline counts as timed out, like one past its own, and is never awaited again.
 */
export async function runSideBySide<T>(
  env: Env,
  tasks: SideBySideTask<T>[],
  overallMs: number,
): Promise<Timed<T>[]> {
  const started = env.now();
  const running = tasks.map((t) => within(env, Math.max(1, Math.min(t.deadlineMs, overallMs)), t.run));
  const all = await within(env, overallMs, () => Promise.all(running));
  if (all.kind === "done") return all.value;
  const late: Timed<T> = { kind: "timed-out", ms: Math.round(env.now() - started) };
  return await Promise.all(running.map((p) => Promise.race([p, Promise.resolve(late)])));
}
