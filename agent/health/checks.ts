/**
 * The node checks `health` runs, as tasks that gather through the Env and judges that are pure. Every fail
 * here is a node fault (another node would do: a bad GPU, a hung driver, a GPU-fault Xid, a full disk, a dead
 * mount); what `mlagent install` or `cache heal` repairs (a damaged venv, corrupt cache entries) and what may
 * be a shared venv root's business (wheels too new for this driver) only warns: draining would stop the jobs
 * that repair them. A check that cannot judge says unknown, which never drains.
 */
import { evaluateGpu, evaluateHealth, gatherGpu, type GpuDevice, type GpuFacts } from "../../checks/gpu.ts";
import { gatherDisk, judgeFloor } from "../../checks/disk.ts";
import { judgeTmpdir } from "../../checks/tmpdir.ts";
import { cudaMajorMinor, driverSupportsCuda, selectCudaVariant } from "../compat.ts";
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import { isoTime } from "../core/output.ts";
import { loadProfile } from "../profiles/mod.ts";
import type { Profile } from "../profiles/types.ts";
import { gatherXids, type KernelLogFacts, xidSeverity } from "../prologue/kernel_log.ts";
import { resolveCacheDir } from "../cache/mod.ts";
import { inspectCache } from "../status/cache.ts";
import { inspectVenvState, listVenvDirs, type VenvReport } from "../status/mod.ts";
import type { CacheReport } from "../status/types.ts";
import type {
  GpuFaultFacts,
  HealthCheck,
  HealthCheckId,
  HealthStatus,
  NodeState,
  VenvCudaFacts,
} from "./types.ts";

export const check = (
  id: HealthCheckId,
  status: HealthStatus,
  message: string,
  opts: { remedy?: string | null; reason?: string | null; timedOut?: boolean } = {},
): HealthCheck => ({
  id,
  status,
  message,
  remedy: opts.remedy ?? null,
  reason: status === "fail" ? (opts.reason ?? message) : null,
  timed_out: opts.timedOut ?? false,
  duration_ms: 0,
});

/** What every task may use, and what tasks found for the judges that run after them. */
export interface HealthContext {
  env: Env;
  root: string;
  tmp: string;
  minFreeBytes: number;
  xidWindowS: number;
  /** The timeout for one probe (a child process), ms. */
  probeMs(): number;
  /** True when a `stat` child found `path` hung (a dead network mount): nothing in-process may touch it. */
  hung(path: string): Promise<boolean>;
  /** The node's state in the scheduler (for the GPU count it configures); null when unknown. */
  nodeState: Promise<NodeState | null>;
  found: {
    gpu: GpuFacts | null;
    xids: KernelLogFacts | null;
    venvs: { report: VenvReport; profile: Profile | null }[] | null;
    cache: CacheReport | null;
  };
}

export interface HealthTask {
  ids: HealthCheckId[];
  /** Words for "... did not finish within N ms". */
  what: string;
  run(ctx: HealthContext): Promise<HealthCheck[]>;
}

// ------------------------------------------------------------------------------------------------ GPUs

/** Each GPU's faults by name: ERR! fields, uncorrectable ECC since the driver loaded, a failed row remap. */
export function gpuFaults(devices: GpuDevice[]): GpuFaultFacts[] {
  return devices.map((d) => ({
    index: d.index,
    name: d.name,
    uuid: d.uuid,
    bus_id: d.bus_id,
    faults: [
      ...(d.errors.length ? ["err"] : []),
      ...((d.ecc_uncorrected_volatile ?? 0) > 0 ? ["ecc"] : []),
      ...(d.remapped_rows_failure === true ? ["row-remap-failure"] : []),
    ],
  }));
}

/** `GPU 3 ERR!; GPU 5 uncorrectable ECC (2)`: the drain reason's words for gpu.health. */
function gpuFaultWords(devices: GpuDevice[]): string {
  const words: string[] = [];
  for (const d of devices) {
    if (d.errors.length) words.push(`GPU ${d.index} ERR!`);
    if ((d.ecc_uncorrected_volatile ?? 0) > 0) {
      words.push(`GPU ${d.index} uncorrectable ECC (${d.ecc_uncorrected_volatile})`);
    }
    if (d.remapped_rows_failure === true) words.push(`GPU ${d.index} row remapping failed`);
  }
  return words.slice(0, 3).join("; ") + (words.length > 3 ? `; +${words.length - 3} more` : "");
}

/**
 * gpu.driver, gpu.count and gpu.health from what nvidia-smi said. A node without a driver is a CPU node
 * (all skip) unless the scheduler configures GPUs for it; a driver that is loaded but not answering, hung,
 * mismatched or showing no GPUs is a fault; an answer nobody can read, or a loaded driver whose nvidia-smi is
 * not on PATH, cannot be judged.
 */
export function judgeGpu(facts: GpuFacts, expected: number | null): HealthCheck[] {
  const km = facts.kernel_module;
  const n = facts.devices.length;
  const f = facts.failure;
  const [driverRes] = evaluateGpu(facts, { profile: null });
  const configured = expected !== null && expected > 0 ? ` (the scheduler configures ${expected} GPUs)` : "";
  const rest = (status: HealthStatus, why: string) => [
    check("gpu.count", status, `not checked: ${why}`),
    check("gpu.health", status, `not checked: ${why}`),
  ];
  if (f && n === 0) {
    const gpuNode = km !== null || (expected ?? 0) > 0;
    const fail = (reason: string, timedOut = false) => [
      check("gpu.driver", "fail", `${driverRes.message}${configured}`, {
        remedy: driverRes.remedy,
        reason,
        timedOut,
      }),
      ...rest("skip", "no usable nvidia-smi output"),
    ];
    switch (f.kind) {
      case "absent":
        if (km) {
          return [
            check("gpu.driver", "unknown", `${driverRes.message}: the GPUs cannot be judged`, {
              remedy: "Put the driver's utilities (nvidia-smi) on the PATH health runs with",
            }),
            ...rest("unknown", "nvidia-smi is not on PATH"),
          ];
        }
        if ((expected ?? 0) > 0) return fail(`no NVIDIA driver, ${expected} GPUs configured`);
        return [
          check("gpu.driver", "skip", "no NVIDIA driver: a node without GPUs"),
          ...rest("skip", "no driver"),
        ];
      case "no-communication":
        return gpuNode ? fail("nvidia-smi cannot talk to the driver") : [
          check("gpu.driver", "skip", `${driverRes.message}: a node without GPUs`),
          ...rest("skip", "no driver"),
        ];
      case "no-devices":
        return gpuNode
          ? fail("the driver shows no GPUs")
          : [check("gpu.driver", "skip", "no GPUs on this node"), ...rest("skip", "no GPUs")];
      case "nvml-mismatch":
        return fail("NVML driver/library version mismatch");
      case "hang":
        return fail(`nvidia-smi hung (no answer within ${f.afterMs} ms)`, true);
      case "unparsed":
        return [
          check("gpu.driver", "unknown", driverRes.message, { remedy: driverRes.remedy }),
          ...rest("unknown", "nvidia-smi's output could not be read"),
        ];
    }
  }
  const out: HealthCheck[] = [];
  if (driverRes.status === "fail") {
    out.push(check("gpu.driver", "fail", driverRes.message, {
      remedy: driverRes.remedy,
      reason: `kernel module ${km?.driver_version} differs from driver ${facts.driver_version}`,
    }));
  } else out.push(check("gpu.driver", "pass", driverRes.message));
  if (expected === null) {
    out.push(
      check("gpu.count", "skip", `${n} GPU(s); the scheduler does not say how many this node should have`),
    );
  } else if (facts.devices.some((d) => d.mig_mode === "enabled")) {
    out.push(check("gpu.count", "skip", `${n} GPU(s) in MIG mode; the scheduler counts slices, not GPUs`));
  } else if (n < expected) {
    out.push(
      check("gpu.count", "fail", `nvidia-smi shows ${n} GPU(s), the scheduler configures ${expected}`, {
        remedy:
          "A GPU fell off the bus or lost its device files: check `nvidia-smi -L`, `lspci | grep -i nvidia` and `dmesg`; reset or reboot",
        reason: `${n} of ${expected} GPUs visible`,
      }),
    );
  } else out.push(check("gpu.count", "pass", `${n} GPU(s), as the scheduler configures`));
  const h = evaluateHealth(facts.devices, facts.warnings);
  out.push(
    h.status === "fail"
      ? check("gpu.health", "fail", h.message, {
        remedy: h.remedy,
        reason: gpuFaultWords(facts.devices) || h.message,
      })
      : check("gpu.health", h.status === "warn" ? "warn" : "pass", h.message, { remedy: h.remedy }),
  );
  return out;
}

const gpuTask: HealthTask = {
  ids: ["gpu.driver", "gpu.count", "gpu.health"],
  what: "nvidia-smi",
  async run(ctx) {
    const [facts, state] = await Promise.all([gatherGpu(ctx.env, ctx.probeMs()), ctx.nodeState]);
    ctx.found.gpu = facts;
    return judgeGpu(facts, state?.gres_gpus ?? null);
  },
};

// ------------------------------------------------------------------------------------------------ Xid

/** kernel.xid: GPU-fault Xids in the window fail; application Xids warn (a job's own fault); unreadable skips. */
export function judgeXids(k: KernelLogFacts, windowS: number): HealthCheck {
  if (!k.source) {
    return check("kernel.xid", k.timed_out ? "warn" : "skip", `kernel log not readable: ${k.problem}`, {
      timedOut: k.timed_out,
    });
  }
  const node = k.recent.filter((x) => xidSeverity(x.code) === "node");
  const other = k.recent.filter((x) => xidSeverity(x.code) !== "node");
  const one = (x: (typeof k.recent)[number]) =>
    `Xid ${x.code} on ${x.pci}${x.time_ms ? ` at ${isoTime(x.time_ms)}` : ""}`;
  const window = `in the last ${Math.round(windowS / 60)} min (${k.source})`;
  if (node.length) {
    const last = node[node.length - 1];
    return check(
      "kernel.xid",
      "fail",
      `${node.length} GPU fault(s) ${window}: ${node.slice(-5).map(one).join(", ")}`,
      {
        remedy:
          "See NVIDIA's Xid catalogue for the code; reset the GPU or reboot. mlagent resumes the node once no GPU-fault Xid is left in the window (MLAGENT_XID_WINDOW_S)",
        reason: `Xid ${last.code} on ${last.pci}${node.length > 1 ? ` (+${node.length - 1} more)` : ""}`,
      },
    );
  }
  if (other.length) {
    return check(
      "kernel.xid",
      "warn",
      `${other.length} application-level Xid(s) ${window}: ${other.slice(-5).map(one).join(", ")}`,
      {
        remedy: "Usually a job's own fault (bad kernel, out-of-bounds access); not a reason to drain",
      },
    );
  }
  return check("kernel.xid", "pass", `no Xid errors ${window}`);
}

const xidTask: HealthTask = {
  ids: ["kernel.xid"],
  what: "reading the kernel log",
  async run(ctx) {
    const k = await gatherXids(ctx.env, ctx.xidWindowS, ctx.probeMs());
    ctx.found.xids = k;
    return [judgeXids(k, ctx.xidWindowS)];
  },
};

// ------------------------------------------------------------------------------------------------ disk

const deadMount = (id: HealthCheckId, role: string, path: string, ms: number) =>
  check(id, "fail", `${role} ${path} did not answer a stat within ${ms} ms (dead network mount?)`, {
    remedy:
      "Check the mount (`mount | grep`, `dmesg` for NFS 'not responding'); mlagent resumes the node once it answers",
    reason: `${role} ${path} not answering`,
    timedOut: true,
  });

const tmpdirAndDiskTask: HealthTask = {
  ids: ["tmpdir", "disk.space"],
  what: "TMPDIR and df",
  async run(ctx) {
    const { env, tmp, root, minFreeBytes: minFree } = ctx;
    if (await ctx.hung(tmp)) {
      return [
        deadMount("tmpdir", "TMPDIR", tmp, ctx.probeMs()),
        check("disk.space", "skip", "not checked: TMPDIR hung"),
      ];
    }
    const out: HealthCheck[] = [];
    const t = await judgeTmpdir(env);
    out.push(
      t.problem
        ? check("tmpdir", "fail", `TMPDIR ${t.tmpdir} ${t.problem}`, {
          remedy: "Fix or recreate the temp dir (its parent, permissions, free space)",
          reason: `TMPDIR ${t.tmpdir} ${t.problem}`,
        })
        : check("tmpdir", "pass", `${t.effective} is writable`),
    );
    if (await ctx.hung(root)) return [...out, deadMount("disk.space", "venv root", root, ctx.probeMs())];
    const d = await gatherDisk(env, [{ role: "venv root", path: root }, {
      role: "TMPDIR",
      path: t.effective,
    }], ctx.probeMs());
    const v = judgeFloor(d, minFree);
    out.push(
      v.status === "fail"
        ? check("disk.space", "fail", v.message, {
          remedy:
            "Free space on the node (old job dirs under TMPDIR, `mlagent cache clean --yes`); mlagent resumes it once there is room",
          reason: v.low,
        })
        : check("disk.space", v.status, v.message),
    );
    return out;
  },
};

// ------------------------------------------------------------------------------------------------ venvs

async function knownProfile(env: Env, name: string): Promise<Profile | null> {
  try {
    return await loadProfile(env, name);
  } catch (e) {
    if (e instanceof MlagentError) return null;
    throw e;
  }
}

/**
 * venv.damaged: every venv that is ready on record, checked as `status` checks them (each pinned package
 * present at its pin: "listing", a stat per package). Damaged ones warn: `mlagent install` repairs them.
 */
const venvsTask: HealthTask = {
  ids: ["venv.damaged"],
  what: "the venvs under the root",
  async run(ctx) {
    const { env, root } = ctx;
    if (await ctx.hung(root)) {
      return [
        check("venv.damaged", "skip", `not checked: the venv root ${root} does not answer (see disk.space)`),
      ];
    }
    const dirs = await listVenvDirs(env, root);
    const venvs = await Promise.all(dirs.map(async (d) => {
      const profile = await knownProfile(env, d.slice(d.lastIndexOf("/") + 1));
      return { report: await inspectVenvState(env, d, profile, { integrity: "listing" }), profile };
    }));
    ctx.found.venvs = venvs;
    const onRecord = venvs.filter((v) =>
      ["ready", "damaged", "interpreter-gone"].includes(v.report.condition)
    );
    const bad = onRecord.filter((v) => !v.report.ready);
    if (onRecord.length === 0) return [check("venv.damaged", "skip", `no ready venvs under ${root}`)];
    if (bad.length) {
      return [
        check("venv.damaged", "warn", bad.map((v) => `${v.report.name}: ${v.report.message}`).join("; "), {
          remedy: `Run \`mlagent install ${
            bad.map((v) => v.report.profile ?? v.report.name).join(" / ")
          }\` on this node to repair`,
        }),
      ];
    }
    return [
      check(
        "venv.damaged",
        "pass",
        `${onRecord.length} ready venv(s) under ${root}, pinned packages present`,
      ),
    ];
  },
};

/** The CUDA version of a recorded variant: the profile's entry for it, else its name (cu121 -> 12.1). */
export function variantCuda(name: string, profile: Profile | null): string | null {
  const listed = profile?.cuda_variants?.find((v) => v.name === name)?.cuda;
  if (listed) return cudaMajorMinor(listed);
  const m = /^cu(\d{2,3})$/.exec(name);
  return m ? `${Number(m[1].slice(0, -1))}.${m[1].slice(-1)}` : null;
}

/**
 * cuda.wheels: whether this node's driver runs the CUDA wheels of every venv installed here, and each
 * installed profile has a variant it runs. Warn only: a venv root may be shared by nodes with other drivers,
 * and draining would not make the driver newer; `mlagent fleet` lists these nodes.
 */
export function judgeCuda(
  gpu: GpuFacts | null,
  venvs: { report: VenvReport; profile: Profile | null }[],
): { check: HealthCheck; venvs: VenvCudaFacts[] } {
  const driver = gpu?.driver_version ?? null;
  const facts: VenvCudaFacts[] = venvs.map(({ report: v, profile }) => {
    const cuda = v.cuda_variant ? variantCuda(v.cuda_variant, profile) : null;
    return {
      name: v.name,
      profile: v.profile,
      condition: v.condition,
      cuda_variant: v.cuda_variant,
      cuda_version: cuda,
      driver_support: cuda && driver ? driverSupportsCuda(driver, cuda, gpu?.cuda_version) : null,
    };
  });
  const withCuda = facts.filter((f) => f.cuda_version);
  if (withCuda.length === 0) {
    return { check: check("cuda.wheels", "skip", "no venv here was built with CUDA wheels"), venvs: facts };
  }
  if (!driver) {
    return {
      check: check(
        "cuda.wheels",
        "skip",
        `${withCuda.length} venv(s) with CUDA wheels, but no NVIDIA driver answered`,
      ),
      venvs: facts,
    };
  }
  const tooOld = facts.filter((f) => f.driver_support === "no");
  const compat = facts.filter((f) => f.driver_support === "minor-compat");
  const noVariant = venvs.filter(({ profile }) =>
    profile?.cuda_variants?.length &&
    "error" in selectCudaVariant(driver, gpu?.cuda_version ?? null, profile.cuda_variants)
  ).map(({ profile }) => profile!.name);
  const problems = [
    ...tooOld.map((f) => `${f.name} (${f.cuda_variant}, CUDA ${f.cuda_version})`),
    ...noVariant.filter((p) => !tooOld.some((f) => f.profile === p)).map((p) =>
      `profile ${p} (no variant runs)`
    ),
  ];
  if (problems.length) {
    return {
      check: check("cuda.wheels", "warn", `driver ${driver} is too old for ${problems.join(", ")}`, {
        remedy:
          "Upgrade the driver, or reinstall those venvs on this node (`mlagent install --force`) for its driver",
      }),
      venvs: facts,
    };
  }
  return {
    check: check(
      "cuda.wheels",
      "pass",
      `driver ${driver} runs the CUDA wheels of ${withCuda.length} venv(s)${
        compat.length ? ` (${compat.map((f) => f.name).join(", ")} through minor-version compatibility)` : ""
      }`,
    ),
    venvs: facts,
  };
}

// ------------------------------------------------------------------------------------------------ cache

/**
 * cache.corrupt, from the cache's own record (`.mlagent-cache.json`, which every scan and heal updates),
 * not from a scan: scanCache walks the tree synchronously, which would stall the deadline's own timer, and
 * on a cache of 100k files costs seconds every time the scheduler calls health. `mlagent cache heal` from
 * cron keeps the record current; its age is reported.
 */
export function judgeCache(c: CacheReport): HealthCheck {
  if (!c.exists) return check("cache.corrupt", "skip", `no installer cache at ${c.path || "(unknown)"}`);
  if (c.problem) {
    return check("cache.corrupt", "warn", c.problem, {
      remedy: "Run `mlagent cache heal` (it rewrites the record)",
    });
  }
  if (c.corrupt_entries === null) {
    return check(
      "cache.corrupt",
      "skip",
      `${c.path}: no scan recorded yet (run \`mlagent cache heal\` from cron)`,
    );
  }
  if (c.corrupt_entries > 0) {
    return check(
      "cache.corrupt",
      "warn",
      `${c.path}: ${c.corrupt_entries} corrupt entries at the last scan`,
      {
        remedy: "Run `mlagent cache heal` (installs also heal what they trip over)",
      },
    );
  }
  return check(
    "cache.corrupt",
    "pass",
    `${c.path}: no corrupt entries at the last scan${c.last_heal_at ? ` (last heal ${c.last_heal_at})` : ""}`,
  );
}

const cacheTask: HealthTask = {
  ids: ["cache.corrupt"],
  what: "the cache's record",
  async run(ctx) {
    try {
      const { path } = await resolveCacheDir(ctx.env, { create: false });
      if (path && await ctx.hung(path)) return [deadMount("cache.corrupt", "cache", path, ctx.probeMs())];
      const c = await inspectCache(ctx.env);
      ctx.found.cache = c;
      return [judgeCache(c)];
    } catch (e) {
      // A cache dir mlagent refuses (another owner, not a directory) is the cache's problem, not the node's.
      if (!(e instanceof MlagentError)) throw e;
      return [
        check("cache.corrupt", "warn", `the installer cache is not usable: ${e.message}`, {
          remedy: e.hint ?? null,
        }),
      ];
    }
  },
};

/** Every task, in the order the report lists their checks (cuda.wheels is judged after gpu and venvs). */
export const HEALTH_TASKS: readonly HealthTask[] = [
  gpuTask,
  xidTask,
  tmpdirAndDiskTask,
  venvsTask,
  cacheTask,
];
