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
