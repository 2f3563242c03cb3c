/** The doctor: runs the node checks in order and gathers their facts. (Contract stub; checks fill it.) */
import type { CheckContext, CheckResult } from "./types.ts";

export interface DoctorReport {
  ok: boolean;
  checks: CheckResult[];
  facts: Record<string, unknown>;
}

export interface DoctorOptions {
  /** Run only checks whose id starts with one of these prefixes. */
  only?: string[];
}

export function runDoctor(_ctx: CheckContext, _opts: DoctorOptions = {}): Promise<DoctorReport> {
  return Promise.resolve({ ok: true, checks: [], facts: {} });
}
