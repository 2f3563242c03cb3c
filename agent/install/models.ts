/**
 * The install's model step: each model of the profile judged by the one check status and prologue use
 * (verifyLocalModel); anything short of complete (a file missing, a part left by a killed run, a file nothing
 * vouches for) is fetched, resuming parts, whether or not the venv was rebuilt.
 */
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import type { Profile } from "../profiles/types.ts";
import { downloadRepo, verifyLocalModel, type VerifyResult } from "../download/mod.ts";
import type { InstallPlan, InstallReport } from "./types.ts";

/** Pure: the first reasons a model dir is not complete, in a few words. */
function whyIncomplete(v: Required<VerifyResult>): string {
  const n = (k: string, list: string[]) =>
    list.length
      ? `${list.length} ${k} (${list.slice(0, 2).join(", ")}${list.length > 2 ? ", ..." : ""})`
      : "";
  return [
    n("missing", v.missing),
    n("partial", v.partial),
    n("corrupt", v.corrupt),
    v.reason ?? "",
  ].filter(Boolean).join("; ") || "not complete";
}

export async function fetchModels(
  env: Env,
  profile: Profile,
  models: InstallPlan["models"],
): Promise<InstallReport["models"]> {
  const out: InstallReport["models"] = [];
  for (const [i, m] of models.entries()) {
    const spec = profile.models[i];
    try {
      // The hub cache's folder is found from the repo id (and HF_HUB_CACHE), as hf finds it.
      const target = m.layout === "hub-cache" ? { layout: m.layout } : { localDir: m.local_dir };
      const have = await verifyLocalModel(env, {
        repo: m.repo,
        revision: m.revision,
        ...target,
        requiredFiles: spec.required_files,
        include: spec.include,
        exclude: spec.exclude,
      });
      if (have.complete) {
        out.push({ repo: m.repo, local_dir: have.local_dir, ok: true, skipped: false, files: have.files });
        continue;
      }
      env.log.info(`model ${m.repo}: ${whyIncomplete(have)}; fetching into ${m.local_dir}`);
      const r = await downloadRepo(env, {
        repo: m.repo,
        revision: m.revision,
        include: spec.include,
        exclude: spec.exclude,
        ...target,
        requiredFiles: spec.required_files,
      });
      // In the hub cache the snapshot folder is known only once the revision is resolved.
      out.push({ repo: m.repo, local_dir: r.local_dir, ok: r.ok, skipped: false, files: r.files });
    } catch (e) {
      if (!(e instanceof MlagentError)) throw e;
      env.log.error(`model ${m.repo}: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ""}`);
      out.push({ repo: m.repo, local_dir: m.local_dir, ok: false, skipped: false });
    }
  }
  return out;
}

/** The plan as text, for --dry-run. */
