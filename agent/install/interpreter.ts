/** Choosing the interpreter a venv is built from, and PEP 440 checks of its version. */
import type { Env } from "../core/env.ts";
import { failed } from "../core/errors.ts";
import type { Profile } from "../profiles/types.ts";
import { compareVersions } from "../compat.ts";
import { probePython, type PythonInfo } from "./venv.ts";
import { findOnPath } from "../core/run.ts";

/**
 * The interpreter for the venv: MLAGENT_PYTHON when set, else the first of python3, python3.13 ... python3.9,
 * python on PATH whose version meets the profile's constraint.
 */
export async function chooseInterpreter(
  env: Env,
  profile: Profile,
): Promise<{ python: PythonInfo; reason: string }> {
  const forced = env.vars.MLAGENT_PYTHON?.trim();
  const candidates = forced
    ? [forced]
    : ["python3", "python3.13", "python3.12", "python3.11", "python3.10", "python3.9", "python"];
  const seen = new Set<string>();
  const rejected: string[] = [];
  for (const c of candidates) {
    if (!forced && !findOnPath(c, env.vars.PATH)) continue;
    const info = await probePython(env, c);
    if (!info) {
      rejected.push(`${c} (does not run)`);
      continue;
    }
    if (info.inVenv && !forced) {
      rejected.push(`${c} (${info.executable} is inside a venv)`);
      continue;
    }
    if (seen.has(info.executable)) continue;
    seen.add(info.executable);
    if (pythonSatisfies(info.version, profile.python)) {
      return {
        python: info,
        reason: `${forced ? "MLAGENT_PYTHON" : c} is Python ${info.version}, which meets ${profile.python}`,
      };
    }
    rejected.push(`${c} (Python ${info.version})`);
  }
  throw failed(
    `install ${profile.name}: no Python interpreter meets ${profile.python}` +
      (rejected.length ? `; found ${rejected.join(", ")}` : "; none found on PATH"),
    "load a matching Python (module load python/3.11, pyenv, uv python install) or set MLAGENT_PYTHON",
  );
}

/** PEP 440 specifier set check for plain release versions (what interpreter constraints use). */
export function pythonSatisfies(version: string, spec: string): boolean {
  for (const raw of spec.split(",")) {
    const clause = raw.trim();
    if (!clause) continue;
    const m = clause.match(/^(~=|==|!=|<=|>=|<|>|===)\s*([0-9][0-9.]*)(\.\*)?$/);
    if (!m) return false;
    const [, op, want, star] = m;
    const c = compareVersions(version, want);
    const prefix = (version + ".").startsWith(want + ".");
    switch (op) {
      case "==":
      case "===":
        if (star ? !prefix : c !== 0) return false;
        break;
      case "!=":
        if (star ? prefix : c === 0) return false;
        break;
      case ">=":
        if (c < 0) return false;
        break;
      case "<=":
        if (c > 0) return false;
        break;
      case ">":
        if (c <= 0) return false;
        break;
      case "<":
        if (c >= 0) return false;
        break;
      case "~=": {
        const parts = want.split(".");
        if (c < 0 || !(version + ".").startsWith(parts.slice(0, -1).join(".") + ".")) return false;
        break;
      }
    }
  }
  return true;
}
