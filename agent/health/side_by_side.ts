/**
 * Runs independent tasks at once, each under its own deadline (prologue/deadline.ts `within`), and waits for
 * all of them under one more. A task still running at the overall deadline counts as timed out, like one past
 * its own, and is never awaited again: a hung probe stays behind, the report goes on. This is the prologue
 * runner's approach without its job-specific context, so health (and later the prologue) can share it.
 */
import type { Env } from "../core/env.ts";
import { type Timed, within } from "../prologue/deadline.ts";

export interface SideBySideTask<T> {
  /** Its own deadline, ms. */
  deadlineMs: number;
  run(): Promise<T>;
}

/** Every task's outcome, in the order given; resolves by `overallMs` at the latest. */
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
