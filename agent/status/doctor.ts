import { readJson } from "../core/atomic.ts";
import type { Env } from "../core/env.ts";
import { stateDir } from "../core/paths.ts";
import type { DoctorSummary } from "./types.ts";

/** Where `mlagent doctor` keeps its verdict: the node's (plain doctor), or one profile's. */
export function doctorVerdictFile(profile: string | null): string {
  return profile ? `last-doctor.${profile}.json` : "last-doctor.json";
}

/** The node's last doctor verdict: a plain `mlagent doctor`, never a `doctor --profile` run. */
export async function readDoctorSummary(env: Env): Promise<DoctorSummary> {
  const path = `${stateDir(env)}/${doctorVerdictFile(null)}`;
  const empty = blankDoctorSummary(path);
  const r = await readJson<Record<string, unknown>>(env, path);
  if (r.kind === "missing") {
    return { ...empty, problem: "mlagent doctor has not run on this node (for this user)" };
  }
  if (r.kind === "corrupt") return { ...empty, state: "corrupt", problem: `${path} is corrupt: ${r.error}` };
  const v = r.value;
  if (!v || typeof v !== "object" || typeof v.ok !== "boolean" || !Array.isArray(v.checks)) {
    return { ...empty, state: "corrupt", problem: `${path} is corrupt: not a doctor report` };
  }
  const checks = v.checks as { id?: unknown; status?: unknown }[];
  const ids = (s: string) => checks.filter((c) => c?.status === s).map((c) => String(c.id));
  const at = typeof v.checked_at === "string" ? v.checked_at : null;
  const t = at ? Date.parse(at) : NaN;
  return {
    state: v.ok ? "ok" : "failed",
    ok: v.ok,
    checked_at: at,
    age_ms: Number.isFinite(t) ? Math.max(0, env.now() - t) : null,
    profile: typeof v.profile === "string" ? v.profile : null,
    failed: ids("fail"),
    warned: ids("warn"),
    problem: null,
    facts: v.facts && typeof v.facts === "object" ? v.facts as Record<string, unknown> : null,
    file: path,
  };
}

/** A summary with nothing read yet: `file` is where the verdict would be. */
export function blankDoctorSummary(file: string): DoctorSummary {
  return {
    state: "missing",
    ok: null,
    checked_at: null,
    age_ms: null,
    profile: null,
    failed: [],
    warned: [],
    problem: null,
    facts: null,
    file,
  };
}
