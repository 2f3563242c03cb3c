/** A profile's verify steps: short Python snippets run in the venv, each with its own timeout. */
import type { Env } from "../core/env.ts";
import { describeRun } from "../core/run.ts";
import type { VerifyStep } from "../profiles/types.ts";
import { tailLines, venvPython } from "./venv.ts";

export interface VerifyStepResult {
  name: string;
  ok: boolean;
  /** Not run: it needs a GPU and the node has none. */
  skipped: boolean;
  duration_ms: number;
  /** Why it failed ("exit 1", "did not finish within 120 s"); null when it passed or was skipped. */
  failure: string | null;
  /** The last lines of its stderr (else stdout) when it failed: usually the traceback's end. */
  output_tail: string | null;
}

/** Runs one step in the venv (cwd the venv, so a stray file in the caller's dir cannot shadow a module). */
export async function runVerifyStep(
  env: Env,
  venvDir: string,
  step: VerifyStep,
  { gpuPresent, signal }: { gpuPresent: boolean; signal?: AbortSignal },
): Promise<VerifyStepResult> {
  if (step.requires_gpu && !gpuPresent) {
    return { name: step.name, ok: true, skipped: true, duration_ms: 0, failure: null, output_tail: null };
  }
  const t0 = env.now();
  const timeoutS = step.timeout_s ?? 600;
  const r = await env.run([venvPython(venvDir), "-c", step.code], {
    timeoutMs: timeoutS * 1000,
    cwd: venvDir,
    signal,
  });
  const ok = r.kind === "exited" && r.code === 0;
  return {
    name: step.name,
    ok,
    skipped: false,
    duration_ms: env.now() - t0,
    failure: ok ? null : r.kind === "timed-out" ? `did not finish within ${timeoutS} s` : describeRun(r),
    output_tail: ok || r.kind === "not-found" ? null : tailLines(r.stderr || r.stdout, 12) || null,
  };
}
