/**
 * The offline resolution rehearsal: a local index of tiny pure-Python stand-ins that carry the real names,
 * versions and Requires-Dist of what the built-in profiles pin (tests/fixtures/rehearsal/dists.json, with
 * its sources), and a node (fake nvidia-smi and nvcc, a real Python meeting the profile) to run the real
 * `mlagent install` against it. pip then resolves exactly as it would against PyPI, only with these versions
 * on offer: a pin that another stage can move, moves here too.
 *
 * ```ts
 * await using index = await startRehearsalIndex();          // built once per content, shared
 * const node = await rehearsalNode(dir);                    // fake GPU node in dir
 * const run = await rehearseInstall(node, index, profile);  // spawned `mlagent install NAME --no-models --json`
 * ```
 *
 * Direct `git+https://` references cannot be served offline (pip clones them, and a commit hash cannot be
 * forged in a local repo), so the rehearsal installs a copy of the profile in which each such requirement is
 * rewritten to the stand-in that commit builds (GIT_STAND_INS: CLIP at dcba3cb is `clip==1.0`), and says so
 * in `rewrites`. The copy sits in MLAGENT_PROFILE_PATH under the built-in's own name, so the command line is
 * the user's (`mlagent install hunyuan-video-i2v`) and every other field is the built-in's, byte for byte.
 */
import { parseRequirement } from "../../agent/profiles/requirement.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import { pythonSatisfies } from "../../agent/install/interpreter.ts";
import { type CliResult, runMlagent } from "./cli.ts";
import { FIXTURES, installVars } from "./env.ts";
import { writeFakeBin } from "./fake_bin.ts";
import { type DistSpec, type LocalIndex, normalizeName, startIndex, testDists } from "./pypi.ts";
import { pythonsWithVenv } from "./pythons.ts";

export const REHEARSAL_FIXTURES = `${FIXTURES}/rehearsal`;

interface DistRecord {
  name: string;
  version: string;
  requires: string[];
  kind?: "wheel" | "sdist";
  module?: string;
  extras?: string[];
}

/** Git sources a profile names, and the stand-in (name==version) each commit builds. */
export const GIT_STAND_INS: Record<string, { name: string; version: string }> = {
  // openai/CLIP setup.py declares version "1.0" at every commit.
  "git+https://github.com/openai/CLIP.git": { name: "clip", version: "1.0" },
};

/**
 * Behaviour the built-in verify steps call, in pure Python: version strings come from the wheel's version;
 * torch.tensor, torchvision.ops.nms (a real greedy NMS) and torch.cuda are just enough for the verify code.
 */
const INIT_PY: Record<string, (version: string) => string> = {
  torch: (v) =>
    `__version__ = ${JSON.stringify(v)}
class _Tensor(list):
    def tolist(self):
        return [x.tolist() if isinstance(x, _Tensor) else x for x in self]
def tensor(data):
    return _Tensor(tensor(x) if isinstance(x, (list, tuple)) else x for x in data)
class version:
    cuda = "12.4"
class cuda:
    @staticmethod
    def is_available():
        return True
    @staticmethod
    def get_device_name(index=0):
        return "stand-in GPU (mlagent rehearsal)"
`,
  torchvision: (v) =>
    `__version__ = ${JSON.stringify(v)}
import torch
def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
    return inter / (area(a) + area(b) - inter)
class ops:
    @staticmethod
    def nms(boxes, scores, threshold):
        keep = []
        for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
            if all(_iou(boxes[i], boxes[k]) <= threshold for k in keep):
                keep.append(i)
        return torch.tensor(keep)
`,
  "flash-attn": (v) =>
    `__version__ = ${JSON.stringify(v)}
def flash_attn_func(*args, **kwargs):
    raise NotImplementedError("stand-in")
def flash_attn_varlen_func(*args, **kwargs):
    raise NotImplementedError("stand-in")
`,
  ultralytics: (v) =>
    `__version__ = ${JSON.stringify(v)}
class YOLO:
    def __init__(self, model="yolo11n.pt"):
        self.model = model
`,
};

/** The real build imports torch (no build isolation); so does the stand-in's, and fails without it. */
const BUILD_HOOK: Record<string, string> = {
  "flash-attn": "import torch\nprint('stand-in flash-attn build against torch', torch.__version__)",
};

/** The stand-in set from tests/fixtures/rehearsal/dists.json; throws when a requirement names nothing served. */
export function rehearsalDists(): DistSpec[] {
  const doc = JSON.parse(Deno.readTextFileSync(`${REHEARSAL_FIXTURES}/dists.json`)) as {
    dists: DistRecord[];
  };
  const served = new Set(doc.dists.map((d) => normalizeName(d.name)));
  const missing: string[] = [];
  for (const d of doc.dists) {
    for (const r of d.requires) {
      const name = normalizeName(/^[A-Za-z0-9._-]+/.exec(r)?.[0] ?? r);
      if (!served.has(name)) missing.push(`${d.name} ${d.version} requires ${r}`);
    }
  }
  if (missing.length) throw new Error(`dists.json names unserved packages:\n${missing.join("\n")}`);
  return doc.dists.map((d) => {
    const key = normalizeName(d.name);
    return {
      name: d.name,
      version: d.version,
      requires: d.requires,
      kind: d.kind ?? "wheel",
      module: d.module,
      extras: d.extras,
      initPy: INIT_PY[key]?.(d.version),
      buildHook: d.kind === "sdist" ? BUILD_HOOK[key] : undefined,
    };
  });
}

/** The stand-in index (wheels built once per content under .work/test-wheels). */
export async function startRehearsalIndex(): Promise<LocalIndex> {
  const dists = await testDists(rehearsalDists());
  return await startIndex(dists.dir);
}

/** A copy of the profile with each git+https requirement replaced by its stand-in pin; what was replaced. */
export function standInGitSources(profile: Profile): { profile: Profile; rewrites: string[] } {
  const rewrites: string[] = [];
  const copy = structuredClone(profile);
  for (const stage of copy.stages) {
    stage.packages = stage.packages.map((text) => {
      const req = parseRequirement(text);
      if (req.kind !== "vcs" || !req.url) return text;
      const standIn = GIT_STAND_INS[req.url];
      if (!standIn) throw new Error(`no stand-in for the git source ${req.url}: add it to GIT_STAND_INS`);
      const pin = `${standIn.name}==${standIn.version}`;
      rewrites.push(`${text} -> ${pin}`);
      return pin;
    });
  }
  return { profile: copy, rewrites };
}

export interface RehearsalNode {
  dir: string;
  /** Variables for mlagent: PATH with the fake nvidia-smi/nvcc first, every location inside dir. */
  vars: Record<string, string | undefined>;
}

/**
 * A GPU node in `dir`: nvidia-smi answers with an H100 80GB (driver 590.48.01) table, nvcc says CUDA 12.5,
 * both from tests/fixtures. `gpu: false` leaves nvidia-smi out (a CPU node).
 */
export async function rehearsalNode(dir: string, opts: { gpu?: boolean } = {}): Promise<RehearsalNode> {
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin, { recursive: true });
  if (opts.gpu !== false) {
    await writeFakeBin(bin, "nvidia-smi", [
      // Only the table fixture was captured for this node; the XML and CSV queries fail as on old wrappers.
      { whenArgsContain: "-q -x", exitCode: 2, stderr: "Invalid combination of input arguments." },
      { whenArgsContain: "--query", exitCode: 2, stderr: "Invalid combination of input arguments." },
      { whenArgsContain: "-L", stdout: "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-rehearsal)\n" },
      { stdoutFile: `${FIXTURES}/nvidia-smi/table/table_590.48.01_1xH100-80GB-HBM3_load.txt` },
    ]);
  }
  await writeFakeBin(bin, "nvcc", { stdoutFile: `${FIXTURES}/nvcc/nvcc_12.5_V12.5.40.txt` });
  return {
    dir,
    vars: {
      PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      MLAGENT_CUDA_SEARCH_PATH: `${dir}/no-cuda`,
      MLAGENT_PROFILE_PATH: `${dir}/profiles`,
      TMPDIR: undefined,
    },
  };
}

/** An interpreter on this machine that meets the profile's constraint (the newest), or null. */
export async function pythonFor(constraint: string): Promise<string | null> {
  const fits = (await pythonsWithVenv()).filter((p) => pythonSatisfies(p.version, constraint));
  const key = (v: string) => v.split(".").map((n) => n.padStart(4, "0")).join(".");
  fits.sort((a, b) => key(b.version).localeCompare(key(a.version)));
  return fits[0]?.executable ?? null;
}

export interface InstallReport {
  ok: boolean;
  status: string;
  action: string;
  cuda_variant: string | null;
  packages: Record<string, string>;
  stages: { name: string; action: string }[];
  verify: { name: string; ok: boolean; skipped: boolean }[];
  error?: { message: string; stage?: string; verify_step?: string };
}

export interface Rehearsal {
  result: CliResult;
  report: InstallReport;
  rewrites: string[];
  /** The venv's directory. */
  venv: string;
  python: string;
}

/**
 * Runs `mlagent install <profile.name> --no-models --json` on the node against the index, the profile
 * (git sources stood in) placed in MLAGENT_PROFILE_PATH. `root` separates venvs of runs that must not share.
 */
export async function rehearseInstall(
  node: RehearsalNode,
  index: LocalIndex,
  profile: Profile,
  opts: { root: string; env?: Record<string, string | undefined>; timeoutMs?: number },
): Promise<Rehearsal> {
  const python = await pythonFor(profile.python);
  if (!python) throw new Error(`no Python on this machine meets ${profile.python} (${profile.name})`);
  const { profile: installed, rewrites } = standInGitSources(profile);
  await Deno.mkdir(`${node.dir}/profiles`, { recursive: true });
  await Deno.writeTextFile(`${node.dir}/profiles/${profile.name}.json`, JSON.stringify(installed, null, 2));
  const base = installVars(`${node.dir}/${opts.root}`, index.url);
  const result = await runMlagent([
    "install",
    profile.name,
    "--no-models",
    "--json",
    ...(Deno.env.get("REH_VERBOSE") ? ["--verbose"] : []),
  ], {
    env: { ...base, ...node.vars, MLAGENT_PYTHON: python, MLAGENT_INSTALLER: "pip", ...opts.env },
    timeoutMs: opts.timeoutMs ?? 300_000,
  });
  return {
    result,
    report: result.json<InstallReport>(),
    rewrites,
    venv: `${base.MLAGENT_ROOT}/${profile.name}`,
    python,
  };
}

/** `pip check` in the venv: "" when every installed distribution's requirements hold. */
export async function pipCheck(venv: string): Promise<string> {
  const out = await new Deno.Command(`${venv}/bin/python`, {
    args: ["-m", "pip", "check", "--disable-pip-version-check"],
    stdout: "piped",
    stderr: "piped",
    env: { PIP_CONFIG_FILE: "/dev/null" },
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return out.code === 0 ? "" : text || new TextDecoder().decode(out.stderr).trim();
}
