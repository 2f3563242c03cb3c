/** The job's venv and models, and probing paths that may sit on a hung network mount. */
import type { Env } from "../core/env.ts";
import { LEAF } from "../core/run.ts";
import { formatBytes } from "../core/output.ts";
import type { ModelReport, VenvReport } from "../status/mod.ts";
import type { PrologueCheck } from "./types.ts";
import { check } from "./verdict.ts";

/**
 * Asks a `stat` child about a path and each of its parents, as the checks then stat them in process (the
 * trust check walks up to /); true when it answered in time, existing or not. A walk down to the path does
 * not ask the server for its parents' attributes: a dead mount's own root may hang a stat while a name
 * below it still answers from the client's cache.
 */
export async function pathAnswers(env: Env, path: string, timeoutMs: number): Promise<boolean> {
  const r = await env.run(["stat", "-c", "%F", "--", ...selfAndParents(path)], { ...LEAF, timeoutMs });
  return r.kind !== "timed-out";
}

/** "/a/b/c" -> ["/a/b/c", "/a/b", "/a", "/"]. */
export function selfAndParents(path: string): string[] {
  const out = [path];
  for (let p = path; p !== "/";) {
    p = p.slice(0, p.lastIndexOf("/")) || "/";
    out.push(p);
  }
  return out;
}

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
