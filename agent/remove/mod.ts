/**
 * `mlagent remove`: a profile's venv (and with models, its model dirs) deleted safely, or a dry run saying
 * what would go and how many bytes.
 *
 * The venv goes under the exclusive venv lock install takes, so a running `mlagent run` (a shared holder) is
 * waited for, and an install is never cut. It is renamed aside to a hidden sibling first, in one atomic
 * step: status, run and the prologue see either the whole venv or none, never a half-deleted one whose
 * state still says ready. A removal killed after the rename leaves only that hidden dir, which the next
 * removal of the same profile deletes. A model dir another known profile also uses is kept, and said so.
 */
import type { Env } from "../core/env.ts";
import { badInput, MlagentError } from "../core/errors.ts";
import { asideLeftovers, removeDirAside, treeBytes } from "../core/files.ts";
import { modelDir, venvDir as venvDirOf } from "../core/paths.ts";
import { requireTrustedDir } from "../core/trust.ts";
import { hubCacheRepoDir } from "../download/mod.ts";
import { resolveProfile } from "../install/recorded.ts";
import { acquire, venvLockSpec } from "../lock/mod.ts";
import { modelUses, removeModelDir, requireOwnDir, type WaitOptions } from "../models/mod.ts";
import { PROFILE_NAME_PATTERN } from "../profiles/mod.ts";
import type { Profile } from "../profiles/types.ts";

export interface RemoveOptions {
  ref: string;
  root?: string;
  models: boolean;
  yes: boolean;
  lock: WaitOptions;
}

export interface RemovedModelReport {
  repo: string;
  local_dir: string;
  /** remove: ours alone (removed with --yes); keep: another profile uses it; missing: not there. */
  action: "remove" | "keep" | "missing";
  reason: string | null;
  bytes: number;
  removed: boolean;
}

export interface RemoveReport {
  ok: boolean;
  dry_run: boolean;
  profile: string;
  venv: { path: string; exists: boolean; bytes: number; removed: boolean };
  models: RemovedModelReport[];
  /** Hidden dirs of earlier removals killed half-way. */
  leftovers: string[];
  /** Bytes freed (with --yes) or that would be (dry run). */
  freed_bytes: number;
  waited_ms: number;
}

/** The profile, or (for a venv whose profile can no longer be read) just its name. */
async function profileOrName(
  env: Env,
  ref: string,
  root?: string,
): Promise<{ name: string; profile: Profile | null }> {
  try {
    const { profile } = await resolveProfile(env, ref, root);
    return { name: profile.name, profile };
  } catch (e) {
    // A venv whose profile is gone (a deleted file, a renamed built-in) can still be removed by name.
    if (
      e instanceof MlagentError && PROFILE_NAME_PATTERN.test(ref) &&
      (await isDir(env, venvDirOf(env, ref, root)))
    ) {
      env.log.warn(`profile "${ref}" cannot be read (${e.message}); removing its venv by name`);
      return { name: ref, profile: null };
    }
    throw e;
  }
}

export async function removeProfile(env: Env, opts: RemoveOptions): Promise<RemoveReport> {
  const { name, profile } = await profileOrName(env, opts.ref, opts.root);
  const venv = venvDirOf(env, name, opts.root);
  requireTrustedDir(env, venv.slice(0, venv.lastIndexOf("/")), "venv root");
  requireOwnDir(env, venv, "venv");
  if (opts.models && !profile) {
    throw badInput(
      `remove: profile "${name}" cannot be read, so which model dirs are its own is unknown`,
      `remove the venv alone (drop --models), then the models with mlagent models rm`,
    );
  }
  const exists = await isDir(env, venv);
  const leftovers = await asideLeftovers(env, venv);
  const models = opts.models && profile ? await planModels(env, profile, opts.root) : [];
  let venvBytes = exists ? await treeBytes(env, venv) : 0;
  let leftoverBytes = 0;
  for (const l of leftovers) leftoverBytes += await treeBytes(env, l);
  if (!exists && !leftovers.length && !models.some((m) => m.action === "remove")) {
    throw badInput(`remove: there is no venv for ${name} at ${venv}`, "see: mlagent status");
  }
  const report: RemoveReport = {
    ok: true,
    dry_run: !opts.yes,
    profile: name,
    venv: { path: venv, exists, bytes: venvBytes, removed: false },
    models,
    leftovers,
    freed_bytes: 0,
    waited_ms: 0,
  };
  if (!opts.yes) {
    report.freed_bytes = venvBytes + leftoverBytes +
      models.filter((m) => m.action === "remove").reduce((a, m) => a + m.bytes, 0);
    return report;
  }
  const t0 = env.now();
  const lock = await acquire(env, venvLockSpec(venv, `remove ${name}`), opts.lock);
  report.waited_ms = env.now() - t0;
  try {
    for (const l of leftovers) await env.fs.remove(l, { recursive: true });
    if (await isDir(env, venv)) {
      // Measured again under the lock: an install may have changed it while we waited.
      venvBytes = await treeBytes(env, venv);
      await removeDirAside(env, venv);
      report.venv = { ...report.venv, bytes: venvBytes, removed: true };
    }
  } finally {
    await lock.release();
  }
  report.freed_bytes = (report.venv.removed ? venvBytes : 0) + leftoverBytes;
  for (const m of models) {
    if (m.action !== "remove") continue;
    const r = await removeModelDir(env, m.local_dir, `remove ${name}`, opts.lock);
    m.bytes = r.bytes;
    m.removed = r.removed;
    report.freed_bytes += r.bytes;
  }
  return report;
}

async function planModels(env: Env, profile: Profile, root?: string): Promise<RemovedModelReport[]> {
  const uses = await modelUses(env, root);
  const out: RemovedModelReport[] = [];
  for (const m of profile.models) {
    if (m.layout === "hub-cache") {
      out.push({
        repo: m.repo,
        local_dir: hubCacheRepoDir(env, m.repo),
        action: "keep",
        reason:
          "in the Hugging Face hub cache, which hf and other programs share: remove it with `hf cache delete`",
        bytes: 0,
        removed: false,
      });
      continue;
    }
    const dir = modelDir(env, m.repo, m.local_dir);
    if (out.some((o) => o.local_dir === dir)) continue;
    const others = [...new Set((uses.get(dir) ?? []).map((u) => u.profile.name))].filter((n) =>
      n !== profile.name
    );
    const installedOthers: string[] = [];
    for (const o of others) if (await isDir(env, venvDirOf(env, o, root))) installedOthers.push(o);
    if (!(await isDir(env, dir))) {
      out.push({
        repo: m.repo,
        local_dir: dir,
        action: "missing",
        reason: "not there",
        bytes: 0,
        removed: false,
      });
    } else if (installedOthers.length) {
      out.push({
        repo: m.repo,
        local_dir: dir,
        action: "keep",
        reason: `installed profile${installedOthers.length > 1 ? "s" : ""} ${installedOthers.join(", ")} use${
          installedOthers.length > 1 ? "" : "s"
        } it too`,
        bytes: await treeBytes(env, dir),
        removed: false,
      });
    } else {
      requireOwnDir(env, dir, "model dir");
      out.push({
        repo: m.repo,
        local_dir: dir,
        action: "remove",
        reason: null,
        bytes: await treeBytes(env, dir),
        removed: false,
      });
    }
  }
  return out;
}

async function isDir(env: Env, path: string): Promise<boolean> {
  try {
    return (await env.fs.stat(path)).isDirectory;
  } catch {
    return false;
  }
}
