/** Numbers from environment variables, read one way: plain decimals, or bad input naming the variable. */
import type { Env } from "./env.ts";
import { badInput } from "./errors.ts";

/**
 * The variable as a number >= `min` (> 0 with `positive`), `fallback` when unset or empty. "0x10", "1e3",
 * "ten" and negative values are refused (exit 2) rather than read as something the user did not mean.
 */
export function numberVar<F extends number | undefined>(
  env: Env,
  name: string,
  fallback: F,
  { min = 0, positive = false }: { min?: number; positive?: boolean } = {},
): number | F {
  const raw = env.vars[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isFinite(n) || n < min || (positive && n === 0)) {
    throw badInput(
      `${name} must be a number ${positive ? "> 0" : `>= ${min}`}, got ${JSON.stringify(raw)}`,
      `unset ${name} or fix it`,
    );
  }
  return n;
}
