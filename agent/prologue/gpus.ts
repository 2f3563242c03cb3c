/**
 * The job's GPUs: which of the node's devices (whole GPUs or MIG slices) it was given, their health and
 * memory, and whether the driver runs its wheels. Pure: everything here judges gathered facts.
 */
import {
  evaluateGpu,
  evaluateHealth,
  type GpuDevice,
  type GpuFacts,
  type GpuUnit,
  judgeUnitMemory,
  r450MigIds,
  schedulableUnits,
  unitLabel,
} from "../../checks/gpu.ts";
import { driverSupportsCuda, selectCudaVariant } from "../compat.ts";
import type { Profile } from "../profiles/types.ts";
import { deviceLabel, type DeviceRef, type GpuRequest } from "./scheduler.ts";
import type { VenvReport } from "../status/mod.ts";
import type { PrologueCheck } from "./types.ts";
import { check } from "./verdict.ts";

export interface RequestMatch {
  /** The units (whole GPUs or MIG slices) the job was given, each once. */
  matched: GpuUnit[];
  /** Requested indices or GPU UUIDs this node does not show: a GPU fell off, or the node's config is stale. */
  missing: string[];
  /** Requested MIG ids this node does not have: the job named slices of another node (its own fault). */
  foreign: string[];
  /** Requested MIG ids that could not be checked because `nvidia-smi -L` gave no MIG UUIDs. */
  unverified: string[];
}

const lower = (s: string | null | undefined) => (s ?? "").toLowerCase();

/** The unit a MIG id names: "MIG-<uuid>" (or a unique prefix) or R450's "MIG-GPU-<gpu uuid>/<gi>/<ci>". */
function findMig(units: GpuUnit[], id: string): GpuUnit | undefined {
  const slices = units.filter((u) => u.mig);
  const exact = slices.find((u) => lower(u.mig!.uuid) === lower(id));
  if (exact) return exact;
  const r450 = r450MigIds(id);
  if (r450) {
    return slices.find((u) =>
      lower(u.gpu.uuid) === lower(r450.gpu_uuid) && u.mig!.gpu_instance_id === r450.gi &&
      u.mig!.compute_instance_id === r450.ci
    );
  }
  // CUDA takes a unique prefix of a UUID, MIG UUIDs included.
  const byPrefix = slices.filter((u) => u.mig!.uuid && lower(u.mig!.uuid).startsWith(lower(id)));
  return byPrefix.length === 1 ? byPrefix[0] : undefined;
}

/**
 * The units of the node the job was given. Indices count schedulable units (a GPU in MIG mode counts as its
 * slices, as Slurm numbers MIG gres and CUDA enumerates devices); without MIG an index is nvidia-smi's GPU
 * index (or, under cgroup confinement where nvidia-smi numbers the job's GPUs from 0, its position).
 */
export function matchRequestedDevices(request: GpuRequest | null, devices: GpuDevice[]): RequestMatch {
  const units = schedulableUnits(devices);
  const out: RequestMatch = { matched: [], missing: [], foreign: [], unverified: [] };
  if (!request || request.devices === null) return { ...out, matched: units };
  const anyMig = units.some((u) => u.mig);
  const migUnlisted = devices.some((d) =>
    d.mig_mode === "enabled" && (!d.mig_devices?.length || d.mig_devices.some((m) => !m.uuid))
  );
  for (const ref of request.devices as DeviceRef[]) {
    let u: GpuUnit | undefined;
    if (ref.kind === "index") {
      u = anyMig ? units[ref.index] : units.find((x) => x.gpu.index === ref.index) ?? units[ref.index];
    } else if (ref.kind === "uuid") {
      // A whole GPU named by UUID; if it is in MIG mode the job gets one of its slices (judged as the best).
      const gpu = devices.find((x) => x.uuid !== null && lower(x.uuid).startsWith(lower(ref.uuid)));
      u = gpu ? { gpu, mig: null } : undefined;
    } else {
      u = findMig(units, ref.id);
      if (!u) {
        (migUnlisted ? out.unverified : out.foreign).push(ref.id);
        continue;
      }
    }
    if (!u) out.missing.push(deviceLabel(ref));
    else if (!out.matched.some((m) => m.gpu === u!.gpu && m.mig === u!.mig)) out.matched.push(u);
  }
  return out;
}

/**
 * Failures after which the gpu checks drain the node whatever the job asked for: a hung nvidia-smi, a
 * driver whose user and kernel parts differ, a loaded driver that does not answer. A node without NVIDIA
 * tools, or whose driver shows no GPU, is a CPU node (or a CPU job's view of a GPU node) and stays usable
 * for jobs that need no GPU.
 */
function drainsAlways(facts: GpuFacts): boolean {
  const f = facts.failure;
  if (!f) return false;
  return f.kind === "hang" || f.kind === "nvml-mismatch" ||
    (f.kind === "no-communication" && facts.kernel_module !== null);
}

/** "CUDA_VISIBLE_DEVICES=-1" and the like: how the job said it wants no GPU. */
function noGpuSaid(request: GpuRequest): string {
  return `${request.source}=${JSON.stringify(request.value ?? "")}`;
}

/** gpu.visible, gpu.request, gpu.memory and gpu.health for the job's GPUs. */
export function evaluateJobGpus(
  facts: GpuFacts,
  request: GpuRequest | null,
  profile: Profile | null,
): PrologueCheck[] {
  const profileNeeds = profile?.gpu.min_count ?? (profile?.gpu.required ? 1 : 0);
  const need = request?.count ?? profileNeeds;
  const out: PrologueCheck[] = [];
  const src = request ? ` (${request.source})` : "";
  const hidesAll = request !== null && request.count === 0 && request.devices !== null;

  if (facts.failure && (facts.devices.length === 0 || facts.failure.kind === "hang")) {
    const [driver] = evaluateGpu(facts, { profile: null });
    const hung = facts.failure.kind === "hang";
    if (need === 0 && !drainsAlways(facts)) {
      const why = hidesAll ? `${noGpuSaid(request!)} asks for none` : "no GPU asked for";
      out.push(check(
        "gpu.visible",
        facts.failure.kind === "unparsed" ? "warn" : "skip",
        `${why} (${driver.message})`,
        { remedy: facts.failure.kind === "unparsed" ? driver.remedy : null },
      ));
    } else {
      const asked = need === 0
        ? `no GPU asked for, but the node's GPU driver is broken: ${driver.message}`
        : `${need} GPU(s) asked for${src}, but ${driver.message}`;
      out.push(check("gpu.visible", "fail", asked, {
        fault: "node",
        // "Nothing to do on a CPU node" is the doctor's advice for a plain node, not for a job given GPUs.
        remedy: facts.failure.kind === "absent" || facts.failure.kind === "no-devices"
          ? "The scheduler gave this job GPUs the node cannot show: drain it and check the driver install, " +
            "the GPU count in gres.conf / LSF's GPU resources, and `lspci | grep -i nvidia`"
          : driver.remedy,
        timedOut: hung,
      }));
    }
    if (hidesAll && profileNeeds > 0) out.push(hiddenGpusCheck(request!, profile!, profileNeeds));
    return out;
  }

  const { matched, missing, foreign, unverified } = matchRequestedDevices(request, facts.devices);
  const units = schedulableUnits(facts.devices);
  // On a MIG node an index counts units, so say which unit each index is.
  const shown = units.some((u) => u.mig)
    ? units.map((u, i) =>
      `${i}=${u.mig ? u.mig.uuid ?? `GPU ${u.gpu.index} slice ${u.mig.index}` : `GPU ${u.gpu.index}`}`
    )
    : units.map((u) => String(u.gpu.index));
  if (hidesAll) {
    out.push(check("gpu.visible", "pass", `no GPU asked for: ${noGpuSaid(request!)} hides every GPU`));
  } else if (foreign.length) {
    const slices = units.filter((u) => u.mig).map((u) => u.mig!.uuid).filter(Boolean);
    out.push(check(
      "gpu.visible",
      "fail",
      `the job names MIG device${foreign.length > 1 ? "s" : ""} ${
        foreign.join(", ")
      }${src}, which this node does not have (its MIG devices: ${slices.join(", ") || "none"})`,
      {
        fault: "job",
        remedy:
          "MIG UUIDs differ on every node: let the scheduler set CUDA_VISIBLE_DEVICES, or take the UUIDs from `nvidia-smi -L` on the node the job runs on",
      },
    ));
  } else if (missing.length) {
    out.push(check(
      "gpu.visible",
      "fail",
      `the job was given GPU ${missing.join(", ")}${src} but this node shows only ${
        shown.join(", ") || "none"
      }`,
      {
        fault: "node",
        remedy:
          "A GPU fell off the bus or its device files are gone (or the node's MIG layout no longer matches the scheduler's): drain the node, check `nvidia-smi -L` and `dmesg`",
      },
    ));
  } else if (matched.length + unverified.length < need) {
    out.push(
      check(
        "gpu.visible",
        "fail",
        `${need} GPU(s) asked for${src}, ${matched.length + unverified.length} visible`,
        {
          fault: "node",
          remedy:
            "check `nvidia-smi -L` against the scheduler's GPU count for this node (gres.conf / lsf.shared); on a MIG node each slice counts as one",
        },
      ),
    );
  } else if (unverified.length) {
    out.push(check(
      "gpu.visible",
      "warn",
      `cannot check MIG device${unverified.length > 1 ? "s" : ""} ${unverified.join(", ")}${src}: ${
        facts.mig_list_error ?? "nvidia-smi -L listed no MIG UUIDs"
      }`,
      { remedy: "run `nvidia-smi -L` on the node; the MIG devices it lists are the ones a job can use" },
    ));
  } else {
    const slices = matched.filter((u) => u.mig).length;
    const what = slices
      ? `${matched.length} device(s) visible (${slices} MIG slice${slices > 1 ? "s" : ""})`
      : `${matched.length} GPU(s) visible`;
    out.push(check("gpu.visible", "pass", `${what}${request ? `, ${need} asked for${src}` : ""}`));
  }

  if (profile && request && profileNeeds > 0) {
    if (hidesAll) out.push(hiddenGpusCheck(request, profile, profileNeeds));
    else if (request.count < profileNeeds) {
      out.push(check(
        "gpu.request",
        "fail",
        `the job asked for ${request.count} GPU(s)${src}; profile ${profile.name} needs ${profileNeeds}`,
        { fault: "job", remedy: "Submit with more GPUs (`bsub -gpu num=N`, `sbatch --gres=gpu:N`)" },
      ));
    }
  }

  const needMib = profile?.gpu.min_memory_mib;
  if (needMib && !hidesAll && matched.length && !foreign.length && !missing.length) {
    out.push(evaluateJobMemory(matched, needMib, request?.devices ? matched.length : need, profile!.name));
  }

  // Health is judged per physical GPU under the job's units.
  const gpus = [...new Set(matched.map((u) => u.gpu))];
  const health = evaluateHealth(gpus, [], {
    attached_gpus: facts.attached_gpus,
    device_errors: facts.device_errors,
    listed: facts.devices.length,
    mig_expected: matched.some((u) => u.mig),
  });
  out.push(check(
    "gpu.health",
    health.status === "fail" ? "fail" : health.status === "warn" ? "warn" : gpus.length ? "pass" : "skip",
    gpus.length ? health.message : "no GPUs to judge",
    { fault: "node", remedy: health.remedy },
  ));
  return out;
}

/** CUDA_VISIBLE_DEVICES=-1 (or empty, NoDevFiles) for a profile that needs GPUs: the job's own doing. */
function hiddenGpusCheck(request: GpuRequest, profile: Profile, needs: number): PrologueCheck {
  return check(
    "gpu.request",
    "fail",
    `${noGpuSaid(request)} hides every GPU, but profile ${profile.name} needs ${needs} GPU${
      needs > 1 ? "s" : ""
    }`,
    {
      fault: "job",
      remedy:
        "remove CUDA_VISIBLE_DEVICES=-1 from the job script and submit with GPUs (`sbatch --gres=gpu:N`, `bsub -gpu num=N`), or use a profile that runs on CPU",
    },
  );
}

/**
 * gpu.memory: the profile's per-GPU need against each unit the job was given (all of them, when it names
 * them: every rank needs its memory), or against the best `count` units when it was given a count only.
 * A need no such device could ever meet is the job's fault; a GPU reporting clearly less than its model is
 * the node's; memory nvidia-smi did not print is "unknown", a warning, never a guess.
 */
export function evaluateJobMemory(
  units: GpuUnit[],
  needMib: number,
  count: number,
  profile: string,
): PrologueCheck {
  const judged = units.map((u) => ({ u, v: judgeUnitMemory(u, needMib) }));
  const say = (u: GpuUnit, v: ReturnType<typeof judgeUnitMemory>) => {
    switch (v.kind) {
      case "fits":
        return `${unitLabel(u)} has ${v.mib} MiB`;
      case "never":
        return `${unitLabel(u)} has ${v.exact ? "" : "at most "}${v.mib} MiB`;
      case "short":
        return `${unitLabel(u)} reports ${v.mib} MiB, a healthy one ${v.model_mib} MiB`;
      case "unknown":
        return `${unitLabel(u)}: memory unknown${
          v.bound_mib !== null ? ` (at most ${v.bound_mib} MiB)` : ""
        }`;
    }
  };
  const want = `${needMib} MiB per GPU for profile ${profile}`;
  // Judge the units the job will use: all it names, or the best `count` of the node's.
  const rank = { fits: 0, unknown: 1, short: 2, never: 3 } as const;
  const used = count >= judged.length ? judged : [...judged].sort((a, b) => rank[a.v.kind] - rank[b.v.kind])
    .slice(0, Math.max(1, count));
  const short = used.filter((j) => j.v.kind === "short");
  const never = used.filter((j) => j.v.kind === "never");
  const unknown = used.filter((j) => j.v.kind === "unknown");
  if (short.length) {
    return check(
      "gpu.memory",
      "fail",
      `${short.map((j) => say(j.u, j.v)).join("; ")}; the job needs ${want}`,
      {
        fault: "node",
        remedy:
          "drain the node: a GPU showing far less memory than its model has lost memory to a fault or a setting; check `nvidia-smi -q -d MEMORY,ROW_REMAPPER` and `dmesg`, then reset the GPU or have it replaced",
      },
    );
  }
  if (never.length) {
    const mig = never.some((j) => j.u.mig || j.u.gpu.mig_mode === "enabled");
    return check(
      "gpu.memory",
      "fail",
      `${never.map((j) => say(j.u, j.v)).join("; ")}; the job needs ${want}, which it can never get there`,
      {
        fault: "job",
        remedy: mig
          ? "Ask for a larger MIG profile (e.g. `--gres=gpu:3g.40gb:1`) or a whole GPU, or use a profile that needs less memory"
          : 'Submit to GPUs with more memory (a GPU type in `--gres=gpu:TYPE:N` / `-C`, or `bsub -gpu "gmodel=...:gmem=..."`), or use a profile that needs less',
      },
    );
  }
  if (unknown.length) {
    return check(
      "gpu.memory",
      "warn",
      `${unknown.map((j) => say(j.u, j.v)).join("; ")}; the job needs ${want}`,
      { remedy: "run `nvidia-smi -q -x` on the node: it prints each GPU's and MIG slice's memory" },
    );
  }
  return check("gpu.memory", "pass", `${used.map((j) => say(j.u, j.v)).join("; ")}; the job needs ${want}`);
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
        remedy: "run on a node with a newer driver, or reinstall the venv for this node's driver",
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
      remedy: "run on a node with a newer NVIDIA driver",
    });
  }
  return check(
    "cuda.wheels",
    pick.support === "no" ? "fail" : pick.support === "yes" ? "pass" : "warn",
    `${pick.variant.name}: ${pick.reason}`,
    { fault: "node" },
  );
}
