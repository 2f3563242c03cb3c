/**
 * The doctor: runs the node checks, independent probes side by side, and gathers their facts. Order of the
 * report is fixed (gpu, cuda, python, disk, placement, installer) whatever finishes first.
 */
import { checkCuda } from "./cuda.ts";
import { checkDisk } from "./disk.ts";
import { evaluateGpu, gatherGpu, type GpuFacts } from "./gpu.ts";
import { checkInstallers } from "./installers.ts";
import { evaluatePython, gatherPython } from "./python.ts";
import { checkPlacement } from "./tmpdir.ts";
import type { CheckContext, CheckResult } from "./types.ts";

export interface DoctorReport {
  ok: boolean;
  checks: CheckResult[];
  facts: Record<string, unknown>;
}

export interface DoctorOptions {
  /** Run only checks whose id starts with one of these prefixes. */
  only?: string[];
  /** GPU facts this run already gathered (install's no-op check): judged again, nvidia-smi not asked twice. */
  gpu?: GpuFacts;
}

/** Every check id, per module, in report order. Ids are part of the JSON contract. */
export const CHECK_IDS = {
  gpu: ["gpu.driver", "gpu.devices", "gpu.health"],
  cuda: ["cuda.toolkit", "cuda.driver_compat", "cuda.wheels"],
  python: ["python.interpreter", "python.headers", "python.venv"],
  disk: ["disk.space"],
  placement: ["tmpdir", "cache.fs", "venv.fs", "cache.link_mode"],
  installer: ["installer"],
} as const;

type Module = keyof typeof CHECK_IDS;

const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t = performance.now();
  const v = await f();
  return [v, Math.round(performance.now() - t)];
};

/** Runs the checks (all, or those matching `only`) and merges their facts; ok is false when any check failed. */
export async function runDoctor(ctx: CheckContext, opts: DoctorOptions = {}): Promise<DoctorReport> {
  const wanted = (id: string) => !opts.only?.length || opts.only.some((p) => id.startsWith(p));
  const wants = (m: Module) => CHECK_IDS[m].some(wanted);
  // Dependencies: cuda judges against the driver; the installer check needs the interpreter's pip.
  const needGpu = wants("gpu") || wants("cuda");
  const needPython = wants("python") || wants("installer");
  const needPlacement = wants("placement") || wants("disk");

  const known = opts.gpu;
  const gpuP: Promise<[GpuFacts, number]> | null = needGpu
    ? (known ? Promise.resolve([known, 0]) : timed(() => gatherGpu(ctx.env, ctx.probeTimeoutMs)))
    : null;
  const pythonP = needPython ? timed(() => gatherPython(ctx.env, ctx.probeTimeoutMs, ctx.profile)) : null;
  const placementP = needPlacement ? timed(() => checkPlacement(ctx)) : null;
  const cudaP = wants("cuda") ? timed(async () => checkCuda(ctx, gpuP ? (await gpuP)[0] : null)) : null;
  const diskP = wants("disk") && placementP
    ? timed(async () => checkDisk(ctx, (await placementP)[0].cacheDir))
    : null;

  const pythonRes = pythonP ? pythonP.then(([f, ms]) => [evaluatePython(f, ctx), ms, f] as const) : null;
  const installerP = wants("installer") && pythonRes
    ? timed(async () => {
      const [res] = await pythonRes;
      const py = res[0]?.facts?.python as { ensurepip?: string | null } | undefined;
      return checkInstallers(ctx, py?.ensurepip ?? null);
    })
    : null;

  const sections: [CheckResult[], number][] = [];
  if (gpuP) {
    const [facts, ms] = await gpuP;
    sections.push([evaluateGpu(facts, ctx), ms]);
  }
  if (cudaP) sections.push(await cudaP);
  if (pythonRes) {
    const [res, ms] = await pythonRes;
    sections.push([res, ms]);
  }
  if (diskP) sections.push(await diskP);
  if (placementP) {
    const [p, ms] = await placementP;
    sections.push([p.results, ms]);
  }
  if (installerP) sections.push(await installerP);

  const checks: CheckResult[] = [];
  const facts: Record<string, unknown> = {};
  for (const [results, ms] of sections) {
    for (const r of results) {
      if (r.facts) Object.assign(facts, r.facts);
      if (!wanted(r.id)) continue;
      const { facts: _f, ...rest } = r;
      checks.push({ ...rest, durationMs: r.durationMs ?? ms });
    }
  }
  return { ok: !checks.some((c) => c.status === "fail"), checks, facts };
}

/** A check as the JSON contract spells it (snake_case keys), for doctor's report and install's error. */
export function checkJson(c: CheckResult) {
  return {
    id: c.id,
    status: c.status,
    message: c.message,
    remedy: c.remedy,
    duration_ms: c.durationMs ?? null,
  };
}
