/**
 * Driver <-> CUDA compatibility from NVIDIA's published tables (kept as data in agent/data/), and the choice
 * of a PyTorch CUDA wheel variant for a driver. Pure functions: doctor and install share them.
 */
import minDriverTable from "./data/cuda_min_driver.json" with { type: "json" };
import minorCompatTable from "./data/cuda_minor_compat.json" with { type: "json" };
import type { CudaVariant, Profile } from "./profiles/types.ts";

export type { CudaVariant };

/** "yes": the driver meets the toolkit's own minimum; "minor-compat": only through CUDA minor-version compatibility. */
export type CudaSupport = "yes" | "minor-compat" | "no";

const MIN_DRIVER: Record<string, string> = minDriverTable.min_driver_linux;
const MINOR_COMPAT: Record<
  string,
  { min_driver: string; max_driver_exclusive: string | null; note: string }
> = minorCompatTable.majors;

/** Compares dotted numeric versions ("525.60.13" vs "525.85"); missing parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map((x) => parseInt(x, 10) || 0);
  const pb = b.split(".").map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** "12.1.105" or "V12.1" -> "12.1"; null when it is not a CUDA version. */
export function cudaMajorMinor(v: string): string | null {
  const m = /(\d+)\.(\d+)/.exec(v);
  return m ? `${Number(m[1])}.${Number(m[2])}` : null;
}

/**
 * The minimum Linux driver for a CUDA toolkit release (the GA row of NVIDIA's Table 3). A minor the table
 * lacks (12.7 was never released) takes the next listed minor of the same major, which is never too low;
 * a version newer than the table returns null (unknown).
 */
export function minDriverForCuda(cuda: string): string | null {
  const mm = cudaMajorMinor(cuda);
  if (!mm) return null;
  if (MIN_DRIVER[mm]) return MIN_DRIVER[mm];
  const [major] = mm.split(".");
  const later = Object.keys(MIN_DRIVER)
    .filter((k) => k.split(".")[0] === major && compareVersions(k, mm) > 0)
    .sort(compareVersions);
  return later.length ? MIN_DRIVER[later[0]] : null;
}

/** The lowest driver that runs any toolkit of this CUDA major through minor-version compatibility (11+). */
export function minorCompatFloor(cuda: string): string | null {
  const major = cudaMajorMinor(cuda)?.split(".")[0];
  return major ? MINOR_COMPAT[major]?.min_driver ?? null : null;
}

/**
 * Whether a driver runs code built with a CUDA version. `driverCuda` (the "CUDA Version" nvidia-smi prints)
 * is the newest CUDA the driver declares; when given it settles what the table cannot (versions newer than it).
 */
export function driverSupportsCuda(driver: string, cuda: string, driverCuda?: string | null): CudaSupport {
  const mm = cudaMajorMinor(cuda);
  if (!mm) return "no";
  if (driverCuda) {
    const dc = cudaMajorMinor(driverCuda);
    if (dc && compareVersions(mm, dc) <= 0) return "yes";
    if (dc && mm.split(".")[0] !== dc.split(".")[0]) return "no";
  }
  const min = minDriverForCuda(mm);
  if (min && compareVersions(driver, min) >= 0) return "yes";
  const floor = minorCompatFloor(mm);
  if (floor && compareVersions(driver, floor) >= 0) return "minor-compat";
  return "no";
}

/** One sentence on minor-version compatibility, for warn messages. */
export function explainMinorCompat(cuda: string, driver: string): string {
  const mm = cudaMajorMinor(cuda) ?? cuda;
  const major = mm.split(".")[0];
  return `CUDA ${mm} needs driver >= ${
    minDriverForCuda(mm) ?? "(newer than this table)"
  } for full support; ` +
    `driver ${driver} runs it through CUDA minor-version compatibility (any ${major}.x on >= ${
      minorCompatFloor(mm)
    }), but features that need a newer driver (PTX JIT of newer code, some APIs) fail with ` +
    `cudaErrorUnsupportedPtxVersion or CUDA_ERROR_UNSUPPORTED_PTX_VERSION`;
}

export type VariantChoice =
  | { variant: CudaVariant; reason: string; support: CudaSupport }
  | { error: string };

const isCpuVariant = (v: CudaVariant) => v.name === "cpu" || !cudaMajorMinor(v.cuda ?? "");

/**
 * A profile's CPU wheel variant as a variant named "cpu" (cuda ""), or null: only a profile that runs
 * without a GPU may take it. A GPU-required profile that declares one still never gets it, so a node whose
 * driver is missing fails the install instead of quietly building a venv that cannot run the model.
 */
export function cpuVariantOf(profile: Pick<Profile, "gpu" | "cpu_variant">): CudaVariant | null {
  if (profile.gpu.required || !profile.cpu_variant) return null;
  return { name: "cpu", cuda: "", index_url: profile.cpu_variant.index_url };
}

/** Every wheel variant an install may choose for a profile: its CUDA variants, then its CPU variant if any. */
export function wheelVariants(
  profile: Pick<Profile, "gpu" | "cuda_variants" | "cpu_variant">,
): CudaVariant[] {
  const cpu = cpuVariantOf(profile);
  return cpu ? [...profile.cuda_variants, cpu] : profile.cuda_variants;
}

/**
 * The newest CUDA wheel variant the driver supports. Fully supported variants beat ones that only run
 * through minor-version compatibility, which beat a CPU variant. `forced` (a variant name like "cu121" or a
 * CUDA version) wins regardless of the driver, so a build node without a GPU can prepare a venv for another.
 */
export function selectCudaVariant(
  driverVersion: string | null,
  driverCudaVersion: string | null,
  variants: CudaVariant[],
  forced?: string,
): VariantChoice {
  if (variants.length === 0) return { error: "the profile lists no CUDA variants" };
  const judge = (v: CudaVariant): CudaSupport => {
    if (isCpuVariant(v)) return "yes";
    if (!driverVersion && !driverCudaVersion) return "no";
    if (!driverVersion) {
      const mm = cudaMajorMinor(v.cuda)!;
      const dc = cudaMajorMinor(driverCudaVersion!)!;
      if (compareVersions(mm, dc) <= 0) return "yes";
      return mm.split(".")[0] === dc.split(".")[0] ? "minor-compat" : "no";
    }
    return driverSupportsCuda(driverVersion, v.cuda, driverCudaVersion);
  };
  const driverText = driverVersion
    ? `driver ${driverVersion}${driverCudaVersion ? ` (CUDA ${driverCudaVersion})` : ""}`
    : driverCudaVersion
    ? `a driver supporting CUDA ${driverCudaVersion}`
    : "no NVIDIA driver";

  if (forced) {
    const f = forced.trim();
    const hit = variants.find((v) => v.name === f || (!isCpuVariant(v) && cudaMajorMinor(v.cuda) === f));
    if (!hit) {
      return {
        error: `forced CUDA variant "${f}" is not in the profile (has: ${
          variants.map((v) => v.name).join(", ")
        })`,
      };
    }
    const support = judge(hit);
    const note = support === "yes"
      ? ""
      : !driverVersion && !driverCudaVersion
      ? " (no NVIDIA driver here to judge it against)"
      : ` although ${driverText} ${
        support === "no" ? "cannot run it" : "runs it only through minor-version compatibility"
      }`;
    return { variant: hit, support, reason: `forced to ${hit.name}${note}` };
  }

  const gpu = variants.filter((v) => !isCpuVariant(v))
    .sort((a, b) => compareVersions(b.cuda, a.cuda));
  const cpu = variants.find(isCpuVariant);
  const full = gpu.find((v) => judge(v) === "yes");
  if (full) {
    const newer = gpu.filter((v) => compareVersions(v.cuda, full.cuda) > 0);
    const viaCompat = newer.filter((v) => judge(v) === "minor-compat").map((v) => v.name);
    const tooNew = newer.filter((v) => judge(v) === "no").map((v) => v.name);
    const notes = [
      ...(viaCompat.length
        ? [`${viaCompat.join(", ")} would run only through minor-version compatibility`]
        : []),
      ...(tooNew.length ? [`${tooNew.join(", ")} need a newer driver`] : []),
    ];
    return {
      variant: full,
      support: "yes",
      reason: `${full.name} is the newest variant ${driverText} fully supports` +
        (notes.length ? ` (${notes.join("; ")})` : ""),
    };
  }
  const minor = gpu.find((v) => judge(v) === "minor-compat");
  if (minor) {
    return {
      variant: minor,
      support: "minor-compat",
      reason: `${driverText} runs ${minor.name} only through CUDA minor-version compatibility: ` +
        explainMinorCompat(minor.cuda, driverVersion ?? "?"),
    };
  }
  const noDriver = !driverVersion && !driverCudaVersion;
  if (cpu) {
    return {
      variant: cpu,
      support: "yes",
      reason: noDriver
        ? `no NVIDIA driver to run the CUDA variants; using ${cpu.name}`
        : `${driverText} runs none of the CUDA variants; using ${cpu.name}`,
    };
  }
  const needs = gpu.map((v) => `${v.name} needs >= ${minDriverForCuda(v.cuda) ?? "a newer driver"}`).join(
    ", ",
  );
  return {
    error: noDriver
      ? `no NVIDIA driver: none of the profile's CUDA variants (${needs}) can be judged`
      : `${driverText} supports none of the profile's CUDA variants (${needs})`,
  };
}

/** The newest CUDA release (major.minor) whose minimum driver this driver meets; for drivers nvidia-smi did not ask. */
export function cudaForDriver(driver: string): string | null {
  const fits = Object.entries(MIN_DRIVER).filter(([, min]) => compareVersions(driver, min) >= 0)
    .map(([cuda]) => cuda).sort(compareVersions);
  return fits.length ? fits[fits.length - 1] : null;
}
