/**
 * CUDA toolkit: nvcc on PATH, under CUDA_HOME/CUDA_PATH, or in /usr/local/cuda*, its version, and whether the
 * driver runs it (NVIDIA's minimum-driver table in agent/data). With a profile, also which PyTorch CUDA
 * wheel variant the driver can run.
 */
import {
  cudaMajorMinor,
  driverSupportsCuda,
  explainMinorCompat,
  minDriverForCuda,
  selectCudaVariant,
  wheelVariants,
} from "../agent/compat.ts";
import type { Env } from "../agent/core/env.ts";
import { findOnPath } from "../agent/core/run.ts";
import type { GpuFacts } from "./gpu.ts";
import { type CheckContext, type CheckResult, result } from "./types.ts";

export interface NvccVersion {
  /** "12.5" */
  release: string;
  /** "12.5.40" */
  version: string;
}

export interface CudaFacts {
  nvcc: string | null;
  /** How nvcc was found: PATH, CUDA_HOME, CUDA_PATH, or the /usr/local/cuda* dir. */
  found_via: string | null;
  release: string | null;
  version: string | null;
  /** Other toolkit dirs seen under the search roots (not run). */
  other_toolkits: string[];
  /** Why nvcc was there but gave no version. */
  problem: string | null;
}

/** `nvcc --version` -> release and full version; the "Build" line of 11.x+ and Windows trailing spaces are fine. */
export function parseNvccVersion(text: string): NvccVersion | null {
  const m = /release\s+(\d+\.\d+),\s*V(\d+\.\d+(?:\.\d+)?)/m.exec(text);
  return m ? { release: m[1], version: m[2] } : null;
}

/** Finds and asks nvcc. `searchRoots` holds the dirs scanned for cuda* toolkits (default /usr/local). */
export async function gatherCuda(
  env: Env,
  timeoutMs = 10_000,
  searchRoots: string[] = ["/usr/local"],
): Promise<CudaFacts> {
  const facts: CudaFacts = {
    nvcc: null,
    found_via: null,
    release: null,
    version: null,
    other_toolkits: [],
    problem: null,
  };
  const candidates: [string[], string][] = [[["nvcc"], "PATH"]];
  for (const v of ["CUDA_HOME", "CUDA_PATH"]) {
    if (env.vars[v]) candidates.push([[`${env.vars[v].replace(/\/$/, "")}/bin/nvcc`], v]);
  }
  for (const root of searchRoots) {
    const dirs: string[] = [];
    try {
      for await (const e of env.fs.readDir(root)) {
        if (/^cuda(-[\d.]+)?$/.test(e.name) && (e.isDirectory || e.isSymlink)) dirs.push(e.name);
      }
    } catch { /* no such root */ }
    // "cuda" (the admin's default symlink) first, then newest versioned dir.
    dirs.sort((a, b) => (a === "cuda" ? -1 : b === "cuda" ? 1 : b.localeCompare(a, "en", { numeric: true })));
    for (const d of dirs) candidates.push([[`${root}/${d}/bin/nvcc`], `${root}/${d}`]);
  }
  for (const [argv, via] of candidates) {
    if (facts.nvcc) {
      if (via !== "PATH" && !via.startsWith("CUDA_")) facts.other_toolkits.push(via);
      continue;
    }
    const r = await env.run([...argv, "--version"], { timeoutMs });
    if (r.kind === "not-found") continue;
    if (r.kind === "timed-out") {
      facts.nvcc = argv[0];
      facts.found_via = via;
      facts.problem = `nvcc --version did not answer within ${r.afterMs} ms`;
      continue;
    }
    const v = parseNvccVersion(r.stdout + r.stderr);
    facts.nvcc = argv[0] === "nvcc" ? (findOnPath("nvcc", env.vars.PATH) ?? "nvcc") : argv[0];
    facts.found_via = via;
    if (v) {
      facts.release = v.release;
      facts.version = v.version;
    } else {
      facts.problem = `nvcc --version exited ${r.code} without a version: ${
        (r.stdout + r.stderr).trim().split("\n")[0] ?? ""
      }`;
    }
  }
  return facts;
}

/** cuda.toolkit, cuda.driver_compat and (with a profile) cuda.wheels. */
export function evaluateCuda(
  facts: CudaFacts,
  gpu: Pick<GpuFacts, "driver_version" | "cuda_version"> | null,
  ctx: Pick<CheckContext, "profile"> & { forcedVariant?: string },
): CheckResult[] {
  const profile = ctx.profile;
  const needsNvcc = profile?.builds_extensions ?? false;
  const out: CheckResult[] = [];
  const cudaFacts = { cuda: { ...facts } };
  const driver = gpu?.driver_version ?? null;
  const driverCuda = gpu?.cuda_version ?? null;

  // The wheel variant comes first: the toolkit must match its major to build extensions against torch.
  let chosen: { name: string; cuda: string } | null = null;
  let wheels: CheckResult | null = null;
  if (profile && profile.cuda_variants.length) {
    const pick = selectCudaVariant(driver, driverCuda, wheelVariants(profile), ctx.forcedVariant);
    if ("error" in pick) {
      wheels = result(
        "cuda.wheels",
        profile.gpu.required ? "fail" : "warn",
        pick.error,
        driver
          ? "upgrade the NVIDIA driver, or add an older CUDA variant to the profile"
          : "run on a GPU node, or set MLAGENT_CUDA_VARIANT to build for another node",
      );
    } else {
      chosen = pick.variant;
      wheels = result(
        "cuda.wheels",
        pick.support === "yes" ? "pass" : pick.support === "minor-compat" ? "warn" : "fail",
        `installs will use ${pick.variant.name} (CUDA ${pick.variant.cuda}): ${pick.reason}`,
        pick.support === "yes"
          ? null
          : "upgrade the driver, or force an older variant with MLAGENT_CUDA_VARIANT",
        { cuda_variant: { name: pick.variant.name, cuda: pick.variant.cuda, support: pick.support } },
      );
    }
  }

  if (!facts.nvcc) {
    out.push(result(
      "cuda.toolkit",
      needsNvcc ? "fail" : "skip",
      needsNvcc
        ? `nvcc not found (PATH, CUDA_HOME, CUDA_PATH, /usr/local/cuda*); profile ${
          profile!.name
        } builds CUDA extensions`
        : "nvcc not found; only needed by profiles that build CUDA extensions (PyTorch wheels bring their own CUDA runtime)",
      needsNvcc
        ? `load a CUDA toolkit${
          chosen ? ` matching ${chosen.name} (CUDA ${chosen.cuda})` : ""
        } (e.g. \`module load cuda\`) or set CUDA_HOME to its install dir`
        : null,
      cudaFacts,
    ));
  } else if (!facts.release) {
    out.push(result(
      "cuda.toolkit",
      needsNvcc ? "fail" : "warn",
      `${facts.nvcc} (via ${facts.found_via}): ${facts.problem}`,
      "check the toolkit install; run `nvcc --version` by hand",
      cudaFacts,
    ));
  } else {
    let status: CheckResult["status"] = "pass";
    let msg = `nvcc ${facts.version} at ${facts.nvcc} (via ${facts.found_via})`;
    let remedy: string | null = null;
    if (needsNvcc && chosen) {
      const [tMajor] = facts.release.split(".");
      const [wMajor] = chosen.cuda.split(".");
      if (tMajor !== wMajor) {
        status = "fail";
        msg +=
          `; PyTorch's ${chosen.name} wheels were built with CUDA ${chosen.cuda}: extensions built with CUDA ${facts.release} will not load`;
        remedy =
          `use a CUDA ${wMajor}.x toolkit (e.g. \`module load cuda/${chosen.cuda}\`) and set CUDA_HOME to it`;
      } else if (cudaMajorMinor(facts.release) !== cudaMajorMinor(chosen.cuda)) {
        status = "warn";
        msg +=
          `; the ${chosen.name} wheels use CUDA ${chosen.cuda} (same major: extensions build, with a version warning)`;
        remedy = `Prefer a CUDA ${chosen.cuda} toolkit for extension builds`;
      }
    }
    out.push(result("cuda.toolkit", status, msg, remedy, cudaFacts));
  }

  if (!facts.release || !driver) {
    out.push(result(
      "cuda.driver_compat",
      "skip",
      !facts.release
        ? "no CUDA toolkit to compare with the driver"
        : "no NVIDIA driver to compare the toolkit with",
    ));
  } else {
    const s = driverSupportsCuda(driver, facts.release, driverCuda);
    const min = minDriverForCuda(facts.release);
    const drv = `driver ${driver}${driverCuda ? ` (CUDA ${driverCuda})` : ""}`;
    if (s === "yes") {
      out.push(result("cuda.driver_compat", "pass", `CUDA ${facts.release} toolkit runs on ${drv}`));
    } else if (s === "minor-compat") {
      out.push(result(
        "cuda.driver_compat",
        "warn",
        `CUDA ${facts.release} toolkit is newer than ${drv}: ${explainMinorCompat(facts.release, driver)}`,
        `upgrade the driver to >= ${min ?? "the toolkit's release"}, or use a CUDA ${
          driverCuda ?? "older"
        } toolkit`,
      ));
    } else {
      // A profile that builds nothing never runs this toolkit: say so, but do not block its install.
      const unused = profile && !needsNvcc;
      out.push(result(
        "cuda.driver_compat",
        unused ? "warn" : "fail",
        `CUDA ${facts.release} toolkit needs driver >= ${
          min ?? "a newer release than NVIDIA's table lists"
        }; ${drv} cannot run it${
          unused ? ` (profile ${profile!.name} builds no extensions, so it does not need it)` : ""
        }`,
        `use a toolkit no newer than CUDA ${driverCuda ?? "the driver supports"}, or upgrade the driver`,
      ));
    }
  }
  if (wheels) out.push(wheels);
  return out;
}

/** The cuda.* checks; `gpu` comes from gatherGpu so nvidia-smi runs once per doctor. */
export async function checkCuda(ctx: CheckContext, gpu: GpuFacts | null): Promise<CheckResult[]> {
  // Sites that keep toolkits elsewhere (/opt/nvidia, /sw/cuda) list their roots in MLAGENT_CUDA_SEARCH_PATH.
  const roots = ctx.cudaSearchRoots ??
    (ctx.env.vars.MLAGENT_CUDA_SEARCH_PATH?.split(":").filter(Boolean) || undefined);
  return evaluateCuda(await gatherCuda(ctx.env, ctx.probeTimeoutMs, roots), gpu, {
    profile: ctx.profile,
    forcedVariant: ctx.env.vars.MLAGENT_CUDA_VARIANT || undefined,
  });
}
