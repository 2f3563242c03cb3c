/**
 * The job prologue: decides in a bounded time whether this node may start this job. Every check runs side
 * by side under its own deadline, its probes in their own process groups (agent/run.ts), and the whole run
 * under one more; a check that misses its deadline is reported as timed out and never awaited again, so a
 * hung nvidia-smi or a dead NFS mount cannot hang a job start. Filesystem paths that may sit on a network
 * mount are touched first by a `stat` child with a timeout; in-process reads follow only where it answered.
 *
 * Each problem is a node fault (another node would do: bad GPU, hung driver, dead mount, full disk) or a
 * job fault (the job's own making: unknown profile, venv failed to install, too few GPUs asked for), and the
 * exit code follows the scheduler (see exitCodeFor).
 */
import { evaluateGpu, evaluateHealth, gatherGpu, type GpuDevice, type GpuFacts } from "../../checks/gpu.ts";
import { gatherDisk } from "../../checks/disk.ts";
import { judgeTmpdir } from "../../checks/tmpdir.ts";
import { driverSupportsCuda, selectCudaVariant } from "../compat.ts";
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import { install } from "../install/mod.ts";
import { gatherXids, xidSeverity } from "./kernel_log.ts";
import { formatBytes, isoTime } from "../core/output.ts";
import { absolute, modelsRoot, stateDir, venvDir as venvDirOf, venvRoot } from "../core/paths.ts";
import { schedulerJob } from "../core/proc.ts";
import type { Profile } from "../profiles/types.ts";
import { deviceLabel, type DeviceRef, type GpuRequest, gpuRequest, type Scheduler } from "./scheduler.ts";
import { inspectModels, inspectVenvState, type ModelReport, type VenvReport } from "../status/mod.ts";
import { probePython, venvPython } from "../install/venv.ts";

export type Fault = "node" | "job";
export type PrologueStatus = "pass" | "warn" | "fail" | "skip";

export interface PrologueCheck {
  id: string;
  status: PrologueStatus;
  /** Whose problem a fail is; null for pass, warn and skip. */
  fault: Fault | null;
  message: string;
  remedy: string | null;
  timed_out: boolean;
  duration_ms: number;
}

export type Verdict = "run" | "node-fault" | "job-fault";

export interface PrologueReport {
  ok: boolean;
  verdict: Verdict;
  exit_code: number;
  scheduler: Scheduler | null;
  host: string;
  job_id: string | null;
  profile: string | null;
  gpu_request: { source: string; count: number; devices: string[] | null } | null;
  checks: PrologueCheck[];
  /** Ids of the checks that missed their deadline. */
  timed_out: string[];
  started_at: string;
  duration_ms: number;
  /** Set when --install ran an install. */
  installed: { action: string; duration_ms: number } | null;
}

export interface PrologueOptions {
  /** The profile, when one was named and loaded. */
  profile: Profile | null;
  /** How the profile was named (for --install). */
  profileRef: string | null;
  scheduler: Scheduler | null;
  root?: string;
  /** Deadline for the whole prologue. */
  timeoutMs: number;
  /** Deadline for each check (default: the whole deadline minus a margin for the report). */
  checkTimeoutMs?: number;
  install: boolean;
  /** Look back this far for Xid errors (default 1 h, MLAGENT_XID_WINDOW_S). */
  xidWindowS?: number;
  /** Fail below this much free space on the venv root and TMPDIR (default 1 GiB, MLAGENT_PROLOGUE_MIN_FREE_GIB). */
  minFreeBytes?: number;
}

const GIB = 1024 ** 3;

/**
 * The exit code for a verdict, per scheduler:
 * - LSF (pre-exec): 0 runs the job; any other code re-pends it, so a node fault exits 1 and LSF tries to
 *   dispatch it again (elsewhere, if the node is closed by then); 99 (or $LSB_EXIT_PRE_ABORT) aborts the job
 *   instead of pending it, for faults retrying cannot fix.
 * - Slurm (Prolog/TaskProlog): non-zero drains the node and requeues the job, so only a node fault exits 1;
 *   a job fault exits 0 and is reported on the job's output.
 * - No scheduler (a person or a script): 0 ok, 1 either fault.
 */
export function exitCodeFor(
  verdict: Verdict,
  scheduler: Scheduler | null,
  vars: Record<string, string>,
): number {
  if (verdict === "run") return 0;
  if (verdict === "node-fault") return 1;
  if (scheduler === "lsf") {
    const abort = Number(vars.LSB_EXIT_PRE_ABORT);
    return Number.isInteger(abort) && abort > 0 && abort < 256 ? abort : 99;
  }
  if (scheduler === "slurm") return 0;
  return 1;
}

/** Node faults win: a broken node must stop taking jobs whatever the job's own problems are. */
export function verdictOf(checks: PrologueCheck[]): Verdict {
  const failing = checks.filter((c) => c.status === "fail");
  if (failing.some((c) => c.fault === "node")) return "node-fault";
  if (failing.length) return "job-fault";
  return "run";
}

const check = (
  id: string,
  status: PrologueStatus,
  message: string,
  opts: { fault?: Fault; remedy?: string | null; timedOut?: boolean } = {},
): PrologueCheck => ({
  id,
  status,
  fault: status === "fail" ? (opts.fault ?? "node") : null,
  message,
  remedy: opts.remedy ?? null,
  timed_out: opts.timedOut ?? false,
  duration_ms: 0,
});

/** A report for a job fault found before any check could run (unknown profile, malformed variable). */
export function jobFaultReport(
  env: Env,
  scheduler: Scheduler | null,
  id: string,
  message: string,
  remedy: string | null,
  profile: string | null,
  started: number,
): PrologueReport {
  const c = check(id, "fail", message, { fault: "job", remedy });
  return {
    ok: false,
    verdict: "job-fault",
    exit_code: exitCodeFor("job-fault", scheduler, env.vars),
    scheduler,
    host: env.hostname(),
    job_id: schedulerJob(env)?.job_id ?? null,
    profile,
    gpu_request: null,
    checks: [c],
    timed_out: [],
    started_at: isoTime(started),
    duration_ms: env.now() - started,
    installed: null,
  };
}

type Timed<T> =
  | { kind: "done"; value: T; ms: number }
  | { kind: "timed-out"; ms: number }
  | { kind: "error"; error: unknown; ms: number };

/** Races `f` against a deadline. The loser is never awaited: a hung probe stays behind, the report goes on. */
function within<T>(ms: number, f: () => Promise<T>): Promise<Timed<T>> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(
      () => resolve({ kind: "timed-out", ms: Math.round(performance.now() - t0) }),
      ms,
    );
    f().then(
      (value) => {
        clearTimeout(timer);
        resolve({ kind: "done", value, ms: Math.round(performance.now() - t0) });
      },
      (error) => {
        clearTimeout(timer);
        resolve({ kind: "error", error, ms: Math.round(performance.now() - t0) });
      },
    );
  });
}

// ------------------------------------------------------------------------------------------------ GPUs

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

// ------------------------------------------------------------------------------------------------ files

/** Asks a `stat` child about each path; true where it answered in time (existing or not). */
async function probePaths(env: Env, paths: string[], timeoutMs: number): Promise<Map<string, boolean>> {
  const out = new Map<string, boolean>();
  await Promise.all([...new Set(paths)].map(async (p) => {
    const r = await env.run(["stat", "-c", "%F", "--", p], { timeoutMs });
    out.set(p, r.kind !== "timed-out");
  }));
  return out;
}

function venvCheck(v: VenvReport, running: boolean, pyProblem: string | null): PrologueCheck {
  if (v.ready && running) return check("venv.ready", "pass", `${v.path}: ${v.message}`);
  if (v.ready && pyProblem) {
    return check("venv.ready", "fail", `${v.path}: state says ready but ${pyProblem}`, {
      fault: "node",
      remedy:
        "The venv's base interpreter does not run on this node; reinstall it (mlagent install --force) or fix the node's Python",
    });
  }
  const interpreterGone = v.condition === "interpreter-gone";
  // Most conditions' messages do not say where; "missing" and "no-state" already name the path.
  const where = v.message.includes(v.path) ? "" : `${v.path}: `;
  return check("venv.ready", "fail", `${where}${v.condition}: ${v.message}`, {
    fault: interpreterGone ? "node" : "job",
    remedy: v.condition === "installing"
      ? "Wait for the running install, or submit with a dependency on the install job"
      : `Run \`mlagent install ${v.profile ?? v.name}\` once (or add --install to the prologue)`,
  });
}

function modelsCheck(models: ModelReport[]): PrologueCheck {
  const bad = models.filter((m) => !m.complete);
  if (models.length === 0) return check("models.complete", "skip", "the profile names no models");
  if (bad.length === 0) {
    return check(
      "models.complete",
      "pass",
      `${models.length} model(s) complete (${formatBytes(models.reduce((a, m) => a + m.bytes, 0))})`,
    );
  }
  return check(
    "models.complete",
    "fail",
    bad.map((m) =>
      `${m.repo} at ${m.local_dir}: ${
        [
          m.reason,
          m.missing.length ? `${m.missing.length} missing` : "",
          m.partial.length ? `${m.partial.length} partial` : "",
          m.corrupt.length ? `${m.corrupt.length} corrupt` : "",
        ]
          .filter(Boolean).join(", ") || "incomplete"
      }`
    ).join("; "),
    {
      fault: "job",
      remedy: "Run `mlagent install PROFILE` (fetches models) or `mlagent download REPO --local-dir DIR`",
    },
  );
}

// ------------------------------------------------------------------------------------------------ the run

/** Runs the prologue. Never throws for a node or job problem: the report carries it. */
export async function runPrologue(env: Env, opts: PrologueOptions): Promise<PrologueReport> {
  const started = env.now();
  const t0 = performance.now();
  const overallMs = opts.timeoutMs;
  const checkMs = Math.max(100, Math.min(opts.checkTimeoutMs ?? overallMs - 500, overallMs));
  const left = () => Math.max(50, overallMs - (performance.now() - t0));
  const probeMs = () => Math.max(50, Math.min(checkMs, left()) - 50);
  const profile = opts.profile;
  const job = schedulerJob(env);
  const xidWindowS = opts.xidWindowS ?? Number(env.vars.MLAGENT_XID_WINDOW_S ?? 3600);
  const minFree = opts.minFreeBytes ?? Number(env.vars.MLAGENT_PROLOGUE_MIN_FREE_GIB ?? 1) * GIB;

  let request: GpuRequest | null = null;
  const early: PrologueCheck[] = [];
  try {
    request = gpuRequest(env.vars, opts.scheduler);
  } catch (e) {
    // By hand a malformed variable is bad input (exit 2); inside a job it is the job's fault.
    if (!(e instanceof MlagentError) || opts.scheduler === null) throw e;
    early.push(check("gpu.request", "fail", e.message, { fault: "job", remedy: e.hint ?? null }));
  }

  const root = venvRoot(env, opts.root);
  const venvPath = profile ? venvDirOf(env, profile.name, opts.root) : null;
  const tmp = env.vars.TMPDIR ? absolute(env, env.vars.TMPDIR) : "/tmp";
  const mroot = modelsRoot(env);

  // Each task resolves to its checks; the ones that miss the deadline are filled in below.
  const timedOutIds: string[] = [];
  type Task = { ids: string[]; fault: Fault | "warn"; what: string; p: Promise<Timed<PrologueCheck[]>> };
  const tasks: Task[] = [];
  const add = (
    ids: string[],
    fault: Fault | "warn",
    what: string,
    f: () => Promise<PrologueCheck[]>,
    ms = Math.min(checkMs, left()),
  ) => {
    const task: Task = { ids, fault, what, p: within(ms, f) };
    tasks.push(task);
    return task;
  };

  // Filled in by the tasks as they finish (a task past its deadline leaves them null).
  const found: { gpu: GpuFacts | null; venv: VenvReport | null; installed: PrologueReport["installed"] } = {
    gpu: null,
    venv: null,
    installed: null,
  };
  add(["gpu.visible"], "node", "nvidia-smi", async () => {
    const facts = await gatherGpu(env, probeMs());
    found.gpu = facts;
    return evaluateJobGpus(facts, request, profile);
  });
  add(["kernel.xid"], "warn", "reading the kernel log", async () => {
    const k = await gatherXids(env, xidWindowS, probeMs());
    if (!k.source) {
      return [
        check("kernel.xid", k.timed_out ? "warn" : "skip", `kernel log not readable: ${k.problem}`, {
          timedOut: k.timed_out,
        }),
      ];
    }
    const node = k.recent.filter((x) => xidSeverity(x.code) === "node");
    const other = k.recent.filter((x) => xidSeverity(x.code) !== "node");
    const list = (xs: typeof k.recent) =>
      xs.slice(-5).map((x) => `Xid ${x.code} on ${x.pci}${x.time_ms ? ` at ${isoTime(x.time_ms)}` : ""}`)
        .join(", ");
    const window = `in the last ${Math.round(xidWindowS / 60)} min (${k.source})`;
    if (node.length) {
      return [check("kernel.xid", "fail", `${node.length} GPU fault(s) ${window}: ${list(node)}`, {
        fault: "node",
        remedy:
          "Drain the node; see NVIDIA's Xid catalogue for the code; reset the GPU or reboot, and report recurring ones",
      })];
    }
    if (other.length) {
      return [
        check("kernel.xid", "warn", `${other.length} application-level Xid(s) ${window}: ${list(other)}`, {
          remedy: "Usually a job's own fault (bad kernel, out-of-bounds access); watch for repeats",
        }),
      ];
    }
    return [check("kernel.xid", "pass", `no Xid errors ${window}`)];
  });

  const fsPaths = [root, tmp, ...(profile?.models.length ? [mroot] : [])];
  const fsTask = within(Math.min(checkMs, left()), () => probePaths(env, fsPaths, probeMs()));
  const fsAnswered = fsTask.then((r) => (r.kind === "done" ? r.value : new Map<string, boolean>()));
  const hung = (p: string) => fsAnswered.then((m) => m.get(p) !== true);
  const fsHungCheck = (id: string, role: string, p: string) =>
    check(id, "fail", `${role} ${p} did not answer a stat within ${probeMs()} ms (dead network mount?)`, {
      fault: "node",
      remedy:
        "Check the mount (`mount | grep`, `dmesg` for NFS 'not responding'); drain the node until it answers",
      timedOut: true,
    });

  add(["tmpdir", "disk.space"], "node", "TMPDIR and df", async () => {
    const out: PrologueCheck[] = [];
    if (await hung(tmp)) return [fsHungCheck("tmpdir", "TMPDIR", tmp)];
    const t = await judgeTmpdir(env);
    out.push(
      t.problem
        ? check("tmpdir", "fail", `TMPDIR ${t.tmpdir} ${t.problem}`, {
          fault: "node",
          remedy:
            "The scheduler's per-job TMPDIR is broken on this node; check its parent (LSF_TMPDIR / TmpFS) and free space",
        })
        : check("tmpdir", "pass", `${t.effective} is writable`),
    );
    if (await hung(root)) return [...out, fsHungCheck("disk.space", "venv root", root)];
    const d = await gatherDisk(env, [{ role: "venv root", path: root }, {
      role: "TMPDIR",
      path: t.effective,
    }], probeMs());
    const low = d.places.filter((p) => p.available_bytes !== null && p.available_bytes < minFree);
    if (d.places.every((p) => p.available_bytes === null)) {
      out.push(check("disk.space", "warn", `free space unknown: ${d.problem ?? "df gave nothing"}`));
    } else if (low.length) {
      out.push(check(
        "disk.space",
        "fail",
        low.map((p) => `${formatBytes(p.available_bytes!)} free for ${p.role} ${p.path}`).join("; ") +
          `; at least ${formatBytes(minFree)} needed`,
        {
          fault: "node",
          remedy: "Free space on the node (old job dirs under TMPDIR, `mlagent cache clean --yes`)",
        },
      ));
    } else {
      out.push(
        check(
          "disk.space",
          "pass",
          d.places.map((p) => `${formatBytes(p.available_bytes ?? 0)} free for ${p.role}`).join("; "),
        ),
      );
    }
    return out;
  });

  if (profile && venvPath) {
    // An install may take the whole prologue's deadline; without --install the venv is only looked at.
    const venvTask = add(
      ["venv.ready"],
      "node",
      opts.install ? "installing the venv" : "the venv's interpreter",
      async () => {
        if (await hung(root)) return [fsHungCheck("venv.ready", "venv root", root)];
        let v = await inspectVenvState(env, venvPath, profile);
        if (!v.ready && opts.install && opts.profileRef && v.condition !== "interpreter-gone") {
          const t = env.now();
          try {
            const r = await install(env, {
              profile: opts.profileRef,
              root: opts.root,
              lockTimeoutMs: left(),
            });
            found.installed = { action: r.action, duration_ms: env.now() - t };
          } catch (e) {
            if (!(e instanceof MlagentError)) throw e;
            return [
              check("venv.ready", "fail", `--install failed: ${e.message}`, {
                fault: "job",
                remedy: e.hint ?? null,
              }),
            ];
          }
          v = await inspectVenvState(env, venvPath, profile);
        }
        found.venv = v;
        if (!v.ready) return [venvCheck(v, false, null)];
        const py = await probePython(env, venvPython(venvPath), probeMs());
        const problem = !py
          ? `${venvPython(venvPath)} does not run`
          : v.python_version && py.version !== v.python_version
          ? `its python is now ${py.version}, built with ${v.python_version}`
          : null;
        return [venvCheck(v, problem === null, problem)];
      },
      opts.install ? left() : undefined,
    );
    if (profile.models.length) {
      add(["models.complete"], "warn", "verifying model files", async () => {
        // --install fetches models after the venv: judge them once it is done.
        if (opts.install) await venvTask.p;
        if (await hung(mroot)) return [fsHungCheck("models.complete", "models dir", mroot)];
        return [modelsCheck(await inspectModels(env, profile))];
      }, opts.install ? left() : undefined);
    }
  }

  // Everything above runs at once; the overall deadline bounds the wait for all of it.
  const overall = within(left(), () => Promise.all(tasks.map((t) => t.p)));
  const all = await overall;
  const checks: PrologueCheck[] = [...early];
  for (const t of tasks) {
    // A task still running at the overall deadline counts as timed out, like one past its own.
    const r: Timed<PrologueCheck[]> = all.kind === "done" ? all.value[tasks.indexOf(t)] : await Promise.race([
      t.p,
      Promise.resolve({ kind: "timed-out", ms: Math.round(performance.now() - t0) } as const),
    ]);
    if (r.kind === "error") {
      // A bug in a check must not look like a healthy node, nor drain one: report it as the job's problem.
      const msg = r.error instanceof Error ? r.error.message : String(r.error);
      for (const id of t.ids) {
        checks.push({ ...check(id, "fail", `internal error: ${msg}`, { fault: "job" }), duration_ms: r.ms });
      }
    } else if (r.kind === "timed-out") {
      timedOutIds.push(...t.ids);
      const status: PrologueStatus = t.fault === "warn" ? "warn" : "fail";
      for (const id of t.ids) {
        checks.push({
          ...check(id, status, `${t.what} did not finish within ${r.ms} ms`, {
            fault: t.fault === "warn" ? undefined : t.fault,
            remedy: t.fault === "node"
              ? "A probe hung: check the driver (`nvidia-smi`, `dmesg`) and mounts on this node"
              : null,
            timedOut: true,
          }),
          duration_ms: r.ms,
        });
      }
    } else {
      for (const c of r.value) {
        if (c.timed_out) timedOutIds.push(c.id);
        checks.push({ ...c, duration_ms: r.ms });
      }
    }
  }
  if (profile && found.gpu) checks.push(evaluateDriverCompat(found.gpu, profile, found.venv));
  const verdict = verdictOf(checks);
  return {
    ok: verdict === "run",
    verdict,
    exit_code: exitCodeFor(verdict, opts.scheduler, env.vars),
    scheduler: opts.scheduler,
    host: env.hostname(),
    job_id: job?.job_id ?? null,
    profile: profile?.name ?? null,
    gpu_request: request
      ? { source: request.source, count: request.count, devices: request.devices?.map(deviceLabel) ?? null }
      : null,
    checks,
    timed_out: [...new Set(timedOutIds)],
    started_at: isoTime(started),
    duration_ms: env.now() - started,
    installed: found.installed,
  };
}

/** The one-line record for the prologue log and stderr: enough for an admin to see why a node refused jobs. */
export function logLine(r: PrologueReport): string {
  return JSON.stringify({
    time: r.started_at,
    host: r.host,
    scheduler: r.scheduler,
    job_id: r.job_id,
    profile: r.profile,
    verdict: r.verdict,
    exit_code: r.exit_code,
    duration_ms: r.duration_ms,
    timed_out: r.timed_out,
    problems: r.checks.filter((c) => c.status === "fail").map((c) => ({
      id: c.id,
      fault: c.fault,
      message: c.message,
    })),
  });
}

/** Appends the line to $XDG_STATE_HOME/mlagent/prologue.log; bounded in time (home may be on NFS), best effort. */
export async function appendPrologueLog(env: Env, line: string, timeoutMs = 2000): Promise<string | null> {
  const dir = stateDir(env);
  const path = `${dir}/prologue.log`;
  const r = await within(timeoutMs, async () => {
    await env.fs.mkdir(dir, { recursive: true });
    // One write of one line with O_APPEND: concurrent prologues on the node never interleave within a line.
    const f = await env.fs.open(path, { append: true, create: true, write: true, mode: 0o644 });
    try {
      const bytes = new TextEncoder().encode(line + "\n");
      let off = 0;
      while (off < bytes.length) off += await f.write(bytes.subarray(off));
    } finally {
      f.close();
    }
    return path;
  });
  return r.kind === "done" ? r.value : null;
}
