/** Installers: uv and pip, their versions, and which one installs will use (MLAGENT_INSTALLER=uv|pip forces). */
import type { Env } from "../agent/core/env.ts";
import { findOnPath } from "../agent/core/run.ts";
import { type CheckContext, type CheckResult, result } from "./types.ts";

export type Installer = "uv" | "pip";

export interface InstallerFacts {
  uv: { path: string; version: string } | null;
  uv_problem: string | null;
  /** The pip a new venv gets from ensurepip (the chosen interpreter's bundled pip). */
  pip: { source: string; version: string } | null;
  forced: string | null;
}

/** "uv 0.4.18 (7b55e9790 2024-10-01)" -> "0.4.18"; "pip 24.0 from ..." -> "24.0". */
export function parseToolVersion(text: string): string | null {
  return /^(?:uv|pip)\s+(\d+(?:\.\d+)*\S*)/m.exec(text.trim())?.[1] ?? null;
}

/** The installer to use: the forced one when it is available, else uv when present, else pip. */
export function selectInstaller(
  forced: string | null,
  uv: string | null,
  pip: string | null,
): { installer: Installer; reason: string } | { error: string } {
  if (forced) {
    if (forced !== "uv" && forced !== "pip") {
      return { error: `MLAGENT_INSTALLER must be "uv" or "pip", got "${forced}"` };
    }
    if (forced === "uv" && !uv) return { error: "MLAGENT_INSTALLER=uv but uv is not on PATH" };
    if (forced === "pip" && !pip) {
      return { error: "MLAGENT_INSTALLER=pip but no pip is available (ensurepip missing)" };
    }
    return { installer: forced, reason: `forced by MLAGENT_INSTALLER=${forced}` };
  }
  if (uv) return { installer: "uv", reason: `uv ${uv} is on PATH (faster resolves, shared cache)` };
  if (pip) return { installer: "pip", reason: "uv is not on PATH; using pip inside the venv" };
  return { error: "neither uv nor pip is available" };
}

export async function gatherInstallers(
  env: Env,
  pipVersion: string | null,
  timeoutMs = 10_000,
): Promise<InstallerFacts> {
  const facts: InstallerFacts = {
    uv: null,
    uv_problem: null,
    pip: pipVersion ? { source: "the chosen interpreter's ensurepip", version: pipVersion } : null,
    forced: env.vars.MLAGENT_INSTALLER || null,
  };
  const uvPath = findOnPath("uv", env.vars.PATH);
  if (uvPath) {
    const r = await env.run(["uv", "--version"], { timeoutMs });
    const v = r.kind === "exited" && r.code === 0 ? parseToolVersion(r.stdout) : null;
    if (v) facts.uv = { path: uvPath, version: v };
    else {facts.uv_problem = `${uvPath} --version gave no version (${
        r.kind === "exited" ? `exit ${r.code}` : r.kind
      })`;}
  }
  return facts;
}

/** installer: which tool installs will use, and why. */
export function evaluateInstallers(facts: InstallerFacts): CheckResult {
  const pick = selectInstaller(facts.forced, facts.uv?.version ?? null, facts.pip?.version ?? null);
  const seen = [
    facts.uv
      ? `uv ${facts.uv.version} at ${facts.uv.path}`
      : facts.uv_problem
      ? `uv broken: ${facts.uv_problem}`
      : null,
    facts.pip ? `pip ${facts.pip.version} from ${facts.pip.source}` : "no pip",
  ].filter(Boolean).join("; ");
  const f = { installer: { ...facts, selected: "error" in pick ? null : pick.installer } };
  if ("error" in pick) {
    return result(
      "installer",
      "fail",
      `${pick.error} (${seen})`,
      facts.forced
        ? "install uv (https://docs.astral.sh/uv/) or unset MLAGENT_INSTALLER"
        : "fix the interpreter's ensurepip (see python.venv) or install uv",
      f,
    );
  }
  return result(
    "installer",
    "pass",
    `installs will use ${pick.installer}: ${pick.reason} (${seen})`,
    null,
    f,
  );
}

export async function checkInstallers(ctx: CheckContext, pipVersion: string | null): Promise<CheckResult[]> {
  return [evaluateInstallers(await gatherInstallers(ctx.env, pipVersion, ctx.probeTimeoutMs))];
}
