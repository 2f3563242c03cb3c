/**
 * A fake node in a temp dir for status and prologue tests: a venv root with venvs in every state (state
 * files written as install writes them, bin/python a symlink to a real interpreter), a profile dir, a state
 * dir, TMPDIR, and a bin dir for fake nvidia-smi/dmesg/stat put first on PATH.
 */
import { profileSha256 } from "../../agent/profiles/mod.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import type { VenvState } from "../../agent/install/state.ts";

export interface FakeNode {
  dir: string;
  bin: string;
  root: string;
  stateDir: string;
  tmp: string;
  profiles: string;
  models: string;
  /** Variables for runMlagent / testEnv: PATH with the fake bin first, every mlagent location in the temp dir. */
  vars: Record<string, string>;
}

export async function makeNode(dir: string): Promise<FakeNode> {
  const n = {
    dir,
    bin: `${dir}/bin`,
    root: `${dir}/venvs`,
    stateDir: `${dir}/state`,
    tmp: `${dir}/tmp`,
    profiles: `${dir}/profiles`,
    models: `${dir}/models`,
  };
  for (const d of [n.bin, n.root, n.stateDir, n.tmp, n.profiles, n.models]) {
    await Deno.mkdir(d, { recursive: true });
  }
  return {
    ...n,
    vars: {
      PATH: `${n.bin}:/usr/local/bin:/usr/bin:/bin`,
      HOME: dir,
      MLAGENT_ROOT: n.root,
      MLAGENT_STATE_DIR: n.stateDir,
      MLAGENT_PROFILE_PATH: n.profiles,
      MLAGENT_MODELS_DIR: n.models,
      MLAGENT_CACHE_DIR: `${n.tmp}/cache`,
      MLAGENT_LOCK_DIR: `${dir}/locks`,
      TMPDIR: n.tmp,
    },
  };
}

export function testProfile(name: string, extra: Partial<Profile> = {}): Profile {
  return {
    name,
    description: "test profile",
    python: ">=3.8",
    gpu: { required: false },
    cuda_variants: [],
    builds_extensions: false,
    disk_gib: 0,
    stages: [{ name: "one", packages: ["mla-alpha==1.0"] }],
    verify: [],
    models: [],
    ...extra,
  };
}

export async function writeProfile(node: FakeNode, p: Profile): Promise<string> {
  const path = `${node.profiles}/${p.name}.json`;
  await Deno.writeTextFile(path, JSON.stringify(p, null, 2));
  return path;
}

let realPythonOnce: Promise<{ executable: string; version: string }> | null = null;

/** The real interpreter venvs link to, and its version (asked once per process). */
export function realPython(): Promise<{ executable: string; version: string }> {
  realPythonOnce ??= askRealPython();
  return realPythonOnce;
}

async function askRealPython(): Promise<{ executable: string; version: string }> {
  const out = await new Deno.Command("python3", {
    args: [
      "-c",
      "import os,sys;print(os.path.realpath(sys.executable));print('.'.join(map(str,sys.version_info[:3])))",
    ],
  }).output();
  const [executable, version] = new TextDecoder().decode(out.stdout).trim().split("\n");
  return { executable, version };
}

export interface VenvSpec {
  status: "ready" | "installing" | "failed";
  /** The profile the state was written for (its hash goes into plan.profile_sha256). */
  profile: Profile;
  /** "real": bin/python links to the real interpreter; "gone": the link dangles. */
  python?: "real" | "gone";
  owner?: { host: string; pid: number; pid_start_time: number | null; boot_id: string | null };
  cudaVariant?: string | null;
}

/** Writes a venv dir with pyvenv.cfg, bin/python and .mlagent/state.json as install leaves them. */
export async function writeVenv(root: string, name: string, spec: VenvSpec): Promise<string> {
  const py = await realPython();
  const venv = `${root}/${name}`;
  await Deno.mkdir(`${venv}/bin`, { recursive: true });
  await Deno.mkdir(`${venv}/.mlagent`, { recursive: true });
  await Deno.writeTextFile(`${venv}/pyvenv.cfg`, `home = ${py.executable.replace(/\/[^/]+$/, "")}\n`);
  await Deno.symlink(spec.python === "gone" ? `${venv}/no-such-python` : py.executable, `${venv}/bin/python`);
  const now = new Date().toISOString();
  const state: VenvState = {
    profile: spec.profile.name,
    status: spec.status,
    fingerprint: `fp-${name}`,
    plan: {
      profile_sha256: profileSha256(spec.profile),
      cuda_variant: spec.cudaVariant ?? null,
      python_executable: py.executable,
      python_version: py.version,
      installer: "pip",
    },
    stages: spec.profile.stages.map((s) => ({
      name: s.name,
      fingerprint: "x",
      status: spec.status === "ready" ? "done" : "pending",
    })),
    owner: spec.owner ?? { host: "elsewhere", pid: 1, pid_start_time: null, boot_id: null },
    started_at: now,
    updated_at: now,
    finished_at: spec.status === "installing" ? null : now,
    packages: {},
    error: spec.status === "failed"
      ? { stage: "one", kind: "build", message: "mla-alpha failed to build" }
      : null,
  };
  await Deno.writeTextFile(`${venv}/.mlagent/state.json`, JSON.stringify(state, null, 2));
  if (spec.status === "ready") await writeSitePackages(venv, py.version, spec.profile);
  return venv;
}

/**
 * What pip leaves for each pinned package: a module and a `<name>-<version>.dist-info` whose RECORD lists
 * every file with its size and sha256, so the integrity check finds the venv whole.
 */
export async function writeSitePackages(
  venv: string,
  pythonVersion: string,
  profile: Profile,
): Promise<void> {
  const site = `${venv}/lib/python${pythonVersion.split(".").slice(0, 2).join(".")}/site-packages`;
  for (const stage of profile.stages) {
    for (const req of stage.packages) {
      const m = req.match(/^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$/);
      if (!m) continue;
      const mod = m[1].toLowerCase().replace(/[-.]+/g, "_");
      const info = `${mod}-${m[2]}.dist-info`;
      await Deno.mkdir(`${site}/${mod}`, { recursive: true });
      await Deno.mkdir(`${site}/${info}`, { recursive: true });
      const files: Record<string, string> = {
        [`${mod}/__init__.py`]: `__version__ = "${m[2]}"\n`,
        [`${info}/METADATA`]: `Metadata-Version: 2.1\nName: ${m[1]}\nVersion: ${m[2]}\n`,
      };
      const lines: string[] = [];
      for (const [rel, text] of Object.entries(files)) {
        const bytes = new TextEncoder().encode(text);
        await Deno.writeFile(`${site}/${rel}`, bytes);
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
        const b64 = btoa(String.fromCharCode(...digest)).replaceAll("+", "-").replaceAll("/", "_").replace(
          /=+$/,
          "",
        );
        lines.push(`${rel},sha256=${b64},${bytes.length}`);
      }
      lines.push(`${info}/RECORD,,`);
      await Deno.writeTextFile(`${site}/${info}/RECORD`, lines.join("\n") + "\n");
    }
  }
}
