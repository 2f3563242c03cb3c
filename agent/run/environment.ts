/**
 * The environment a profile's code runs in, built once for `mlagent run` (handed to the child) and
 * `mlagent env` (printed for a shell to evaluate), so the two can never disagree.
 *
 * - VIRTUAL_ENV and PATH (the venv's bin first), as `activate` sets them; PYTHONHOME unset (it would point the
 *   venv's interpreter at another installation's standard library).
 * - MLAGENT_PROFILE, MLAGENT_VENV, MLAGENT_MODELS_DIR, and one MLAGENT_MODEL_<NAME> per model: the model's
 *   directory, NAME being its repo id upper-cased with every run of other characters than A-Z and 0-9 made
 *   one `_` (tencent/HunyuanVideo-I2V -> MLAGENT_MODEL_TENCENT_HUNYUANVIDEO_I2V).
 * - HF_HOME (as the user set it, else huggingface_hub's default) and HF_HUB_OFFLINE=1: the weights are
 *   already on disk, and a compute node must not reach out (or stall on a firewall) to re-check them.
 * - CUDA_VISIBLE_DEVICES and everything else stay as the scheduler and the user set them.
 */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { hfHome, modelsRoot } from "../core/paths.ts";
import { layoutOf, modelTarget } from "../download/mod.ts";
import type { Profile } from "../profiles/types.ts";

export interface ModelVariable {
  repo: string;
  /** Where its files are: the local dir, or (layout "hub-cache") the snapshot folder in the hub cache. */
  local_dir: string;
  layout: "local-dir" | "hub-cache";
  /** The dir whose download lock guards it (the local dir, or the repo's folder in the hub cache). */
  lock_root: string;
  /** The variable naming local_dir, MLAGENT_MODEL_<NAME>. */
  variable: string;
}

export interface ProfileEnvironment {
  profile: string;
  venv: string;
  /** Variables to set, in the order they are printed. */
  set: { name: string; value: string }[];
  /** Variables to remove. */
  unset: string[];
  models: ModelVariable[];
}

/** Variables removed from the command's environment. */
export const UNSET_VARS = ["PYTHONHOME"];

/** Pure: MLAGENT_MODEL_<NAME> for a repo id. */
export function modelVariable(repo: string): string {
  return `MLAGENT_MODEL_${repo.toUpperCase().replace(/[^A-Z0-9]+/g, "_").replace(/^_+|_+$/g, "")}`;
}

/** The environment for `profile`'s venv at `venvDir`; throws bad input when two models map to one variable. */
export function profileEnvironment(env: Env, profile: Profile, venvDir: string): ProfileEnvironment {
  const models: ModelVariable[] = [];
  for (const m of profile.models) {
    const target = modelTarget(env, m);
    const local_dir = target.dir;
    const lock_root = layoutOf(env, m.repo, target).root;
    const variable = modelVariable(m.repo);
    const clash = models.find((o) => o.variable === variable);
    if (clash && clash.local_dir !== local_dir) {
      throw badInput(
        `profile ${profile.name}: models ${clash.repo} and ${m.repo} would both be named by ${variable}`,
        "give one of them another repo spelling, or split the profile",
      );
    }
    if (!clash) models.push({ repo: m.repo, local_dir, layout: target.layout, lock_root, variable });
  }
  const path = env.vars.PATH
    ? `${venvDir}/bin:${env.vars.PATH}`
    : `${venvDir}/bin:/usr/local/bin:/usr/bin:/bin`;
  const set = [
    { name: "VIRTUAL_ENV", value: venvDir },
    { name: "PATH", value: path },
    { name: "MLAGENT_PROFILE", value: profile.name },
    { name: "MLAGENT_VENV", value: venvDir },
    { name: "MLAGENT_MODELS_DIR", value: modelsRoot(env) },
    ...models.map((m) => ({ name: m.variable, value: m.local_dir })),
    { name: "HF_HOME", value: hfHome(env) },
    { name: "HF_HUB_OFFLINE", value: "1" },
  ];
  return { profile: profile.name, venv: venvDir, set, unset: [...UNSET_VARS], models };
}

/** The variables as a child process overlay (runner's `env`: undefined removes one). */
export function childVars(pe: ProfileEnvironment): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const v of pe.set) out[v.name] = v.value;
  for (const name of pe.unset) out[name] = undefined;
  return out;
}

/** Pure: a word for sh (POSIX): single quotes, each ' as '\''. Safe for any byte but NUL. */
export function quoteSh(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Pure: a word for fish: single quotes, in which fish reads only \\ and \' as escapes. */
export function quoteFish(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** Pure: statements a shell evaluates (`eval "$(mlagent env P)"`, `mlagent env P --format fish | source`). */
export function renderShell(pe: ProfileEnvironment, shell: "sh" | "fish"): string {
  const lines: string[] = [];
  for (const v of pe.set) {
    if (shell === "sh") lines.push(`export ${v.name}=${quoteSh(v.value)}`);
    // fish keeps PATH as a list: one element per directory.
    else if (v.name === "PATH") {
      lines.push(`set -gx PATH ${v.value.split(":").filter(Boolean).map(quoteFish).join(" ")}`);
    } else lines.push(`set -gx ${v.name} ${quoteFish(v.value)}`);
  }
  for (const name of pe.unset) lines.push(shell === "sh" ? `unset ${name}` : `set -e ${name}`);
  return lines.join("\n") + "\n";
}
