/** The job's venv and models, as the prologue reports them. */
import { formatBytes } from "../core/output.ts";
import type { ModelReport, VenvReport } from "../status/mod.ts";
import type { PrologueCheck } from "./types.ts";
import { check } from "./verdict.ts";

export function venvCheck(v: VenvReport, running: boolean, pyProblem: string | null): PrologueCheck {
  if (v.ready && running) return check("venv.ready", "pass", `${v.path}: ${v.message}`);
  if (v.ready && pyProblem) {
    return check("venv.ready", "fail", `${v.path}: state says ready but ${pyProblem}`, {
      fault: "node",
      remedy:
        "The venv's base interpreter does not run on this node; reinstall it (mlagent install --force) or fix the node's Python",
    });
  }
  const interpreterGone = v.condition === "interpreter-gone";
  // Most conditions' messages do not say where; "missing" and "no-state" already name the path.
  const where = v.message.includes(v.path) ? "" : `${v.path}: `;
  return check("venv.ready", "fail", `${where}${v.condition}: ${v.message}`, {
    fault: interpreterGone ? "node" : "job",
    remedy: v.condition === "installing"
      ? "wait for the running install, or submit with a dependency on the install job"
      : `run \`mlagent install ${v.profile ?? v.name}\` once (or add --install to the prologue)`,
  });
}

/** "2 missing (a.bin, b.bin)": how many, and the first few by name. */
const named = (files: string[], what: string) =>
  files.length
    ? `${files.length} ${what} (${files.slice(0, 3).join(", ")}${files.length > 3 ? ", ..." : ""})`
    : "";

export function modelsCheck(models: ModelReport[]): PrologueCheck {
  const bad = models.filter((m) => !m.complete);
  if (models.length === 0) return check("models.complete", "skip", "the profile names no models");
  if (bad.length === 0) {
    return check(
      "models.complete",
      "pass",
      `${models.length} model(s) complete (${formatBytes(models.reduce((a, m) => a + m.bytes, 0))})`,
    );
  }
  return check(
    "models.complete",
    "fail",
    bad.map((m) =>
      `${m.repo} at ${m.local_dir}: ${
        [
          m.reason,
          named(m.missing, "missing"),
          named(m.partial, "partial"),
          named(m.corrupt, "corrupt"),
        ]
          .filter(Boolean).join(", ") || "incomplete"
      }`
    ).join("; "),
    {
      fault: "job",
      remedy: "run `mlagent install PROFILE` (fetches models) or `mlagent download REPO --local-dir DIR`",
    },
  );
}
