/**
 * Which scheduler started us and what GPUs the job asked for, from the variables LSF and Slurm set. Pure:
 * everything here reads a variables record, so the tables in tests cover every form seen in the field.
 */
import { badInput } from "../core/errors.ts";

export type Scheduler = "lsf" | "slurm";
export type SchedulerChoice = Scheduler | "auto";

/** Parses --scheduler; an unknown value is bad input (exit 2) naming the choices. */
export function parseSchedulerFlag(value: string | undefined): SchedulerChoice {
  const v = (value ?? "auto").toLowerCase();
  if (v === "lsf" || v === "slurm" || v === "auto") return v;
  throw badInput(`unknown scheduler "${value}"`, "use --scheduler lsf, slurm or auto");
}

/** The scheduler whose job this is: LSB_JOBID means LSF, SLURM_JOB_ID Slurm; null outside a job. */
export function detectScheduler(vars: Record<string, string>): Scheduler | null {
  if (vars.LSB_JOBID) return "lsf";
  if (vars.SLURM_JOB_ID || vars.SLURM_JOBID) return "slurm";
  return null;
}

/** --scheduler auto resolved against the variables; null when neither scheduler is around. */
export function resolveScheduler(choice: SchedulerChoice, vars: Record<string, string>): Scheduler | null {
  return choice === "auto" ? detectScheduler(vars) : choice;
}

export type DeviceRef =
  | { kind: "index"; index: number }
  /** "GPU-8f3c..." (CUDA accepts a unique prefix). */
  | { kind: "uuid"; uuid: string }
  /** "MIG-<uuid>" (R470+) or "MIG-GPU-<uuid>/<gi>/<ci>" (R450). */
  | { kind: "mig"; id: string };

export interface VisibleDevices {
  devices: DeviceRef[];
  /**
   * The variable says no GPU at all: empty, "NoDevFiles" (Slurm and LSF when the job has no GPU devices), or
   * "-1", the usual way to hide every GPU from a CPU job on a GPU node.
   */
  none: boolean;
}

/**
 * CUDA_VISIBLE_DEVICES as CUDA reads it: comma-separated indices, GPU- UUIDs or MIG ids. CUDA silently
 * stops at the first entry it cannot use, so a job with "0,x,1" sees one GPU; we call that malformed instead
 * of letting the job start with fewer GPUs than it thinks. A lone "-1" is that stop on purpose: no GPU.
 * Throws badInput naming the bad entry.
 */
export function parseCudaVisibleDevices(value: string): VisibleDevices {
  const trimmed = value.trim();
  if (trimmed === "" || trimmed === "NoDevFiles" || trimmed === "-1") return { devices: [], none: true };
  const devices: DeviceRef[] = [];
  const seen = new Set<string>();
  for (const raw of trimmed.split(",")) {
    const entry = raw.trim();
    let ref: DeviceRef;
    if (/^\d+$/.test(entry)) ref = { kind: "index", index: Number(entry) };
    else if (/^GPU-[0-9a-fA-F-]{4,}$/.test(entry)) ref = { kind: "uuid", uuid: entry };
    else if (/^MIG-(GPU-[0-9a-fA-F-]+\/\d+\/\d+|[0-9a-fA-F-]{4,})$/.test(entry)) {
      ref = { kind: "mig", id: entry };
    } else {
      throw badInput(
        `malformed CUDA_VISIBLE_DEVICES=${JSON.stringify(value)}: ${
          entry === "" ? "an empty entry" : `"${entry}"`
        } is not a GPU index, GPU- UUID or MIG- id`,
        "set it to a comma-separated list like 0,1 or GPU-<uuid>; CUDA ignores every entry after a bad one",
      );
    }
    const key = ref.kind === "index" ? String(ref.index) : ref.kind === "uuid" ? ref.uuid : ref.id;
    if (seen.has(key.toLowerCase())) {
      throw badInput(
        `malformed CUDA_VISIBLE_DEVICES=${JSON.stringify(value)}: "${entry}" is listed twice`,
        "list each GPU once; CUDA stops enumerating at a repeated device",
      );
    }
    seen.add(key.toLowerCase());
    devices.push(ref);
  }
  return { devices, none: false };
}

export interface GpuRequest {
  /** The variable the count came from. */
  source: string;
  /** Its value as the job had it (for messages). */
  value?: string;
  /** How many GPUs the job was given on this node. */
  count: number;
  /** The devices named, when the variable names them (indices as the variable gives them). */
  devices: DeviceRef[] | null;
}

/** A GPU list like SLURM_JOB_GPUS="0,1" or "0-3,6"; null when it is not one. */
export function parseIndexList(value: string): number[] | null {
  const out: number[] = [];
  for (const part of value.split(",").map((s) => s.trim())) {
    const range = /^(\d+)-(\d+)$/.exec(part);
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])];
      if (b < a || b - a > 1024) return null;
      for (let i = a; i <= b; i++) out.push(i);
    } else if (/^\d+$/.test(part)) out.push(Number(part));
    else return null;
  }
  return out;
}

/**
 * LSF's GPU requirement string -> the GPU count; null when it is not one. LSF writes it as
 * "num=2[/task|/host]:mode=shared:j_exclusive=yes", often inside its own quotes ('"num=4:mode=..."', as in
 * lsf.conf); a requirement without num= means LSF's default, one GPU, and so does "-" (bsub -gpu -: the
 * queue's or cluster's defaults).
 */
export function parseLsfGpuReq(value: string): number | null {
  let v = value.trim();
  while (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0])) v = v.slice(1, -1).trim();
  if (v === "-") return 1;
  const fields = v.split(/[:\s;]+/).filter(Boolean);
  if (fields.length === 0 || !fields.every((f) => /^[a-z_]+=\S+$/i.test(f))) return null;
  const num = fields.find((f) => /^num=/i.test(f));
  if (!num) return 1;
  const m = /^num=(\d+)(?:\/(?:task|host))?$/i.exec(num);
  return m ? Number(m[1]) : null;
}

/**
 * What GPUs the job was given on this node, or null when nothing says (not a GPU job, or no scheduler).
 * CUDA_VISIBLE_DEVICES wins when set: it is what the job's CUDA will see. Then the scheduler's own
 * variables: Slurm's SLURM_STEP_GPUS / SLURM_JOB_GPUS (the Prolog sees these; on a MIG node their indices
 * count MIG slices, see schedulableUnits) and SLURM_GPUS_ON_NODE, LSF's LSB_GPU_REQ / LSB_EFFECTIVE_GPU_REQ
 * (the num= field). Malformed values throw badInput.
 */
export function gpuRequest(vars: Record<string, string>, scheduler: Scheduler | null): GpuRequest | null {
  if (vars.CUDA_VISIBLE_DEVICES !== undefined) {
    const v = parseCudaVisibleDevices(vars.CUDA_VISIBLE_DEVICES);
    return {
      source: "CUDA_VISIBLE_DEVICES",
      value: vars.CUDA_VISIBLE_DEVICES,
      count: v.devices.length,
      devices: v.devices,
    };
  }
  if (scheduler === "slurm" || (scheduler === null && detectScheduler(vars) === null)) {
    for (const name of ["SLURM_STEP_GPUS", "SLURM_JOB_GPUS"]) {
      const raw = vars[name];
      if (raw === undefined || raw.trim() === "") continue;
      const list = parseIndexList(raw);
      if (!list) {
        throw badInput(`malformed ${name}=${JSON.stringify(raw)}: expected GPU indices like 0,1 or 0-3`);
      }
      return {
        source: name,
        value: raw,
        count: list.length,
        devices: list.map((index) => ({ kind: "index", index })),
      };
    }
    const onNode = vars.SLURM_GPUS_ON_NODE;
    if (onNode !== undefined && onNode.trim() !== "") {
      if (!/^\d+$/.test(onNode.trim())) {
        throw badInput(`malformed SLURM_GPUS_ON_NODE=${JSON.stringify(onNode)}: expected a whole number`);
      }
      return { source: "SLURM_GPUS_ON_NODE", value: onNode, count: Number(onNode), devices: null };
    }
  }
  if (scheduler === "lsf" || (scheduler === null && detectScheduler(vars) === null)) {
    for (const name of ["LSB_EFFECTIVE_GPU_REQ", "LSB_GPU_REQ"]) {
      const raw = vars[name];
      if (raw === undefined || raw.replace(/["'\s]/g, "") === "") continue;
      const n = parseLsfGpuReq(raw);
      if (n === null) {
        throw badInput(
          `malformed ${name}=${JSON.stringify(raw)}: not an LSF GPU requirement`,
          'LSF writes it as "num=N:mode=shared:..." (bsub -gpu); num= defaults to 1 when left out',
        );
      }
      return { source: name, value: raw, count: n, devices: null };
    }
  }
  return null;
}

/** A device reference as CUDA_VISIBLE_DEVICES writes it. */
export function deviceLabel(d: DeviceRef): string {
  return d.kind === "index" ? String(d.index) : d.kind === "uuid" ? d.uuid : d.id;
}
