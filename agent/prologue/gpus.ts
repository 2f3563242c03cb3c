/** The job's GPUs: which of the node's devices it was given, their health, and whether the driver runs its wheels. */
import { evaluateGpu, evaluateHealth, type GpuDevice, type GpuFacts } from "../../checks/gpu.ts";
import { driverSupportsCuda, selectCudaVariant } from "../compat.ts";
import type { Profile } from "../profiles/types.ts";
import { deviceLabel, type DeviceRef, type GpuRequest } from "./scheduler.ts";
import type { VenvReport } from "../status/mod.ts";
import type { PrologueCheck } from "./types.ts";
import { check } from "./verdict.ts";

/** The devices of `facts` the job was given; `missing` lists requested devices this node does not show. */
export function matchRequestedDevices(
  request: GpuRequest | null,
  devices: GpuDevice[],
): { matched: GpuDevice[]; missing: string[] } {
  if (!request || request.devices === null) return { matched: devices, missing: [] };
  const matched: GpuDevice[] = [];
  const missing: string[] = [];
  const anyMig = devices.some((d) => d.mig_mode === "enabled");
  for (const ref of request.devices as DeviceRef[]) {
    let d: GpuDevice | undefined;
    if (ref.kind === "index") {
      // Under cgroup confinement nvidia-smi numbers the job's GPUs from 0; without it, as the node does.
      d = devices.find((x) => x.index === ref.index) ?? devices[ref.index];
    } else if (ref.kind === "uuid") {
      d = devices.find((x) => x.uuid?.toLowerCase().startsWith(ref.uuid.toLowerCase()));
    } else if (anyMig) {
      // MIG instance ids are not in nvidia-smi's GPU list; a GPU in MIG mode is what they live on.
      d = devices.find((x) => x.mig_mode === "enabled");
      if (d && matched.includes(d)) continue;
    }
    if (d) {
      if (!matched.includes(d)) matched.push(d);
    } else missing.push(deviceLabel(ref));
  }
  return { matched, missing };
}

/** gpu.visible and gpu.health for the job's GPUs, and the driver facts for the compatibility check. */
export function evaluateJobGpus(
  facts: GpuFacts,
  request: GpuRequest | null,
  profile: Profile | null,
): PrologueCheck[] {
  const need = request?.count ?? profile?.gpu.min_count ?? (profile?.gpu.required ? 1 : 0);
  const out: PrologueCheck[] = [];
  if (facts.failure && facts.devices.length === 0) {
    const [driver] = evaluateGpu(facts, { profile: null });
    if (need === 0) {
      out.push(check("gpu.visible", "skip", `no GPU asked for (${driver.message})`));
      return out;
    }
    out.push(check("gpu.visible", "fail", `${need} GPU(s) asked for, but ${driver.message}`, {
      fault: "node",
      // "Nothing to do on a CPU node" is the doctor's advice for a plain node, not for a job given GPUs.
      remedy: facts.failure.kind === "absent" || facts.failure.kind === "no-devices"
        ? "The scheduler gave this job GPUs the node cannot show: drain it and check the driver install, " +
          "the GPU count in gres.conf / LSF's GPU resources, and `lspci | grep -i nvidia`"
        : driver.remedy,
      timedOut: facts.failure.kind === "hang",
    }));
    return out;
  }
  const { matched, missing } = matchRequestedDevices(request, facts.devices);
  const src = request ? ` (${request.source})` : "";
  if (missing.length) {
    out.push(check(
      "gpu.visible",
      "fail",
      `the job was given GPU ${missing.join(", ")}${src} but this node shows only ${
        facts.devices.map((d) => d.index).join(", ") || "none"
      }`,
      {
        fault: "node",
        remedy:
          "A GPU fell off the bus or its device files are gone: drain the node, check `nvidia-smi` and `dmesg`",
      },
    ));
  } else if (matched.length < need) {
    out.push(check("gpu.visible", "fail", `${need} GPU(s) asked for${src}, ${matched.length} visible`, {
      fault: "node",
      remedy:
        "Check `nvidia-smi -L` against the scheduler's GPU count for this node (gres.conf / lsf.shared)",
    }));
  } else {
    out.push(
      check(
        "gpu.visible",
        "pass",
        `${matched.length} GPU(s) visible${request ? `, ${need} asked for${src}` : ""}`,
      ),
    );
  }
  if (profile) {
    const min = profile.gpu.min_count ?? (profile.gpu.required ? 1 : 0);
    if (request && request.count < min) {
      out.push(check(
        "gpu.request",
        "fail",
        `the job asked for ${request.count} GPU(s)${src}; profile ${profile.name} needs ${min}`,
        { fault: "job", remedy: "Submit with more GPUs (`bsub -gpu num=N`, `sbatch --gres=gpu:N`)" },
      ));
    }
  }
  const health = evaluateHealth(matched);
  out.push(check(
    "gpu.health",
    health.status === "fail" ? "fail" : health.status === "warn" ? "warn" : matched.length ? "pass" : "skip",
    matched.length ? health.message : "no GPUs to judge",
    { fault: "node", remedy: health.remedy },
  ));
  return out;
}

/** Whether the driver runs the venv's CUDA wheels (or, with no venv yet, any of the profile's variants). */
export function evaluateDriverCompat(
  facts: GpuFacts,
  profile: Profile,
  venv: VenvReport | null,
): PrologueCheck {
  const driver = facts.driver_version;
  const variants = profile.cuda_variants ?? [];
  if (variants.length === 0) {
    return check("cuda.wheels", "skip", `profile ${profile.name} has no CUDA wheels`);
  }
  if (!driver && !facts.cuda_version) {
    return profile.gpu.required
      ? check("cuda.wheels", "fail", "no NVIDIA driver answered; cannot run CUDA wheels", {
        fault: "node",
      })
      : check("cuda.wheels", "skip", "no NVIDIA driver; the profile does not require a GPU");
  }
  const built = venv?.cuda_variant ? variants.find((v) => v.name === venv.cuda_variant) : undefined;
  if (built && driver && built.cuda) {
    const s = driverSupportsCuda(driver, built.cuda, facts.cuda_version);
    const what = `the venv's ${built.name} wheels (CUDA ${built.cuda}) on driver ${driver}`;
    if (s === "no") {
      return check("cuda.wheels", "fail", `${what}: the driver is too old`, {
        fault: "node",
        remedy: "Run on a node with a newer driver, or reinstall the venv for this node's driver",
      });
    }
    return check(
      "cuda.wheels",
      s === "yes" ? "pass" : "warn",
      `${what}: ${s === "yes" ? "supported" : "minor-version compatibility only"}`,
    );
  }
  const pick = selectCudaVariant(driver, facts.cuda_version, variants, undefined);
  if ("error" in pick) {
    return check("cuda.wheels", profile.gpu.required ? "fail" : "warn", pick.error, {
      fault: "node",
      remedy: "Run on a node with a newer NVIDIA driver",
    });
  }
  return check(
    "cuda.wheels",
    pick.support === "no" ? "fail" : pick.support === "yes" ? "pass" : "warn",
    `${pick.variant.name}: ${pick.reason}`,
    { fault: "node" },
  );
}
