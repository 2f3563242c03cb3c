/**
 * The prologue's checks as a table. Each task gathers through the Env and returns its checks; the runner
 * (mod.ts) starts every task that applies at once, each under its own deadline, and fills in the ones that
 * miss it. A task never decides the verdict: it states what it saw, with the fault (node or job) it implies.
 */
import { gatherGpu, type GpuFacts } from "../../checks/gpu.ts";
import { gatherDisk, judgeFloor } from "../../checks/disk.ts";
import { judgeTmpdir } from "../../checks/tmpdir.ts";
import type { Env } from "../core/env.ts";
import { MlagentError } from "../core/errors.ts";
import { isoTime } from "../core/output.ts";
import { probePython, venvPython } from "../install/venv.ts";
import type { Profile } from "../profiles/types.ts";
import { inspectModels, inspectVenvState, type VenvReport } from "../status/mod.ts";
import { modelsCheck, venvCheck } from "./files.ts";
import { evaluateJobGpus } from "./gpus.ts";
import { gatherXids, xidSeverity } from "./kernel_log.ts";
import type { GpuRequest } from "./scheduler.ts";
import type { Fault, PrologueCheck, PrologueCheckId, PrologueOptions, PrologueReport } from "./types.ts";
import { check } from "./verdict.ts";
import { runVerifyStep } from "../install/verify_steps.ts";
import { untrustedDirProblem } from "../core/trust.ts";

/** What every task may use: the job, the places it touches, the time left, and what other tasks found. */
export interface PrologueContext {
  env: Env;
  opts: PrologueOptions;
  profile: Profile | null;
  request: GpuRequest | null;
  root: string;
  venvPath: string | null;
  tmp: string;
  modelsRoot: string;
  minFreeBytes: number;
  xidWindowS: number;
  /** Time left under the overall deadline, ms. */
  left(): number;
  /** The timeout for one probe (a child process), ms. */
  probeMs(): number;
  /** True when a `stat` child found `path` hung (a dead network mount): nothing in-process may touch it. */
  hung(path: string): Promise<boolean>;
  /** A check for a path that did not answer. */
  fsHung(id: PrologueCheckId, role: string, path: string): PrologueCheck;
  /** Resolves when the task that owns check `id` has finished (or missed its deadline). */
  settled(id: string): Promise<unknown>;
  /** Filled in by the tasks as they finish; a task past its deadline leaves its part null. */
  found: { gpu: GpuFacts | null; venv: VenvReport | null; installed: PrologueReport["installed"] };
}

export interface PrologueTask {
  /** The check ids it reports (all of them, even when it times out). */
  ids: PrologueCheckId[];
  /** What a miss of the deadline means: a node fault, a job fault, or only a warning. */
  fault: Fault | "warn";
  /** Words for "... did not finish within N ms". */
  what(ctx: PrologueContext): string;
  applies(ctx: PrologueContext): boolean;
  /** Its own deadline, ms; default: the per-check deadline. */
  deadlineMs?(ctx: PrologueContext): number | undefined;
  run(ctx: PrologueContext): Promise<PrologueCheck[]>;
}

const gpuTask: PrologueTask = {
  ids: ["gpu.visible"],
  fault: "node",
  what: () => "nvidia-smi",
  applies: () => true,
  async run(ctx) {
    const facts = await gatherGpu(ctx.env, ctx.probeMs());
    ctx.found.gpu = facts;
    return evaluateJobGpus(facts, ctx.request, ctx.profile);
  },
};

const xidTask: PrologueTask = {
  ids: ["kernel.xid"],
  fault: "warn",
  what: () => "reading the kernel log",
  applies: () => true,
  async run(ctx) {
    const k = await gatherXids(ctx.env, ctx.xidWindowS, ctx.probeMs());
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
    const window = `in the last ${Math.round(ctx.xidWindowS / 60)} min (${k.source})`;
    if (node.length) {
      return [check("kernel.xid", "fail", `${node.length} GPU fault(s) ${window}: ${list(node)}`, {
        fault: "node",
        remedy:
          "drain the node; see NVIDIA's Xid catalogue for the code; reset the GPU or reboot, and report recurring ones",
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
  },
};

const tmpdirAndDiskTask: PrologueTask = {
  ids: ["tmpdir", "disk.space"],
  fault: "node",
  what: () => "TMPDIR and df",
  applies: () => true,
  async run(ctx) {
    const { env, tmp, root, minFreeBytes: minFree } = ctx;
    const out: PrologueCheck[] = [];
    if (await ctx.hung(tmp)) return [ctx.fsHung("tmpdir", "TMPDIR", tmp)];
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
    if (await ctx.hung(root)) return [...out, ctx.fsHung("disk.space", "venv root", root)];
    const d = await gatherDisk(env, [{ role: "venv root", path: root }, {
      role: "TMPDIR",
      path: t.effective,
    }], ctx.probeMs());
    const v = judgeFloor(d, minFree);
    out.push(
      v.status === "fail"
        ? check("disk.space", "fail", v.message, {
          fault: "node",
          remedy: "free space on the node (old job dirs under TMPDIR, `mlagent cache clean --yes`)",
        })
        : check("disk.space", v.status, v.message),
    );
    return out;
  },
};

/** An install may take the whole prologue's deadline; without --install the venv is only looked at. */
const venvTask: PrologueTask = {
  ids: ["venv.ready"],
  fault: "node",
  what: (ctx) => ctx.opts.install ? "installing the venv" : "the venv's interpreter",
  applies: (ctx) => !!ctx.profile && !!ctx.venvPath,
  deadlineMs: (ctx) => ctx.opts.install ? ctx.left() : undefined,
  async run(ctx) {
    const { env, opts } = ctx;
    const profile = ctx.profile!;
    const venvPath = ctx.venvPath!;
    if (await ctx.hung(venvPath)) return [ctx.fsHung("venv.ready", "venv", venvPath)];
    const untrusted = untrustedDirProblem(env, venvPath);
    if (untrusted) {
      return [check("venv.ready", "fail", `refusing the venv ${venvPath}: ${untrusted}`, {
        fault: "job",
        remedy: "another user could plant files there; point MLAGENT_ROOT at a directory of your own",
      })];
    }
    const probe = () => probePython(env, venvPython(venvPath), ctx.probeMs());
    // Without --install the interpreter is asked while the state and files are read (the probe is most of
    // this check's time); after an install it is asked about the venv as the install left it.
    const early = opts.install ? null : probe();
    let v = await inspectVenvState(env, venvPath, profile);
    if (!v.ready && opts.install && opts.profileRef && v.condition !== "interpreter-gone") {
      const t = env.now();
      try {
        // Loaded only for --install: the installer is most of the modules a prologue would otherwise load.
        const { install } = await import("../install/mod.ts");
        const r = await install(env, {
          profile: opts.profileRef,
          root: opts.root,
          lockTimeoutMs: ctx.left(),
        });
        ctx.found.installed = { action: r.action, duration_ms: env.now() - t };
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
    ctx.found.venv = v;
    const py = await (early ?? (v.ready ? probe() : null));
    if (!v.ready) return [venvCheck(v, false, null)];
    const problem = !py
      ? `${venvPython(venvPath)} does not run`
      : v.python_version && py.version !== v.python_version
      ? `its python is now ${py.version}, built with ${v.python_version}`
      : null;
    return [venvCheck(v, problem === null, problem)];
  },
};

/**
 * The profile's verify steps in the venv (--verify), once venv.ready passed. A step that needs the GPU and
 * fails says the node cannot run CUDA (a node fault); any other failing step says the venv is broken (the
 * job's: `mlagent install` repairs it).
 */
const verifyTask: PrologueTask = {
  ids: ["venv.verify"],
  fault: "job",
  what: () => "the profile's verify steps",
  applies: (ctx) => !!ctx.opts.verify && !!ctx.profile && !!ctx.venvPath && ctx.profile.verify.length > 0,
  deadlineMs: (ctx) => ctx.opts.install ? ctx.left() : undefined,
  async run(ctx) {
    await ctx.settled("venv.ready");
    if (!ctx.found.venv?.ready) {
      return [check("venv.verify", "skip", "not run: the venv is not ready (see venv.ready)")];
    }
    const gpuPresent = (ctx.found.gpu?.devices.length ?? 0) > 0;
    const failures: string[] = [];
    let nodeFault = false;
    let ran = 0;
    for (const step of ctx.profile!.verify) {
      const r = await runVerifyStep(ctx.env, ctx.venvPath!, step, { gpuPresent });
      if (r.skipped) continue;
      ran++;
      if (!r.ok) {
        failures.push(
          `${step.name}: ${r.failure}${r.output_tail ? ` (${r.output_tail.split("\n").at(-1)})` : ""}`,
        );
        if (step.requires_gpu) nodeFault = true;
      }
    }
    if (failures.length) {
      return [check("venv.verify", "fail", failures.join("; "), {
        fault: nodeFault ? "node" : "job",
        remedy: nodeFault
          ? "A GPU verify step failed on this node: check the driver and GPUs (`mlagent doctor`), then drain it"
          : `The venv does not work as installed: run \`mlagent verify ${
            ctx.profile!.name
          }\`, then \`mlagent install ${ctx.profile!.name}\``,
      })];
    }
    return [check("venv.verify", "pass", `${ran} verify step(s) passed`)];
  },
};

const modelsTask: PrologueTask = {
  ids: ["models.complete"],
  fault: "warn",
  what: () => "verifying model files",
  applies: (ctx) => !!ctx.profile && !!ctx.venvPath && ctx.profile.models.length > 0,
  deadlineMs: (ctx) => ctx.opts.install ? ctx.left() : undefined,
  async run(ctx) {
    // --install fetches models after the venv: judge them once it is done.
    if (ctx.opts.install) await ctx.settled("venv.ready");
    if (await ctx.hung(ctx.modelsRoot)) return [ctx.fsHung("models.complete", "models dir", ctx.modelsRoot)];
    const untrusted = untrustedDirProblem(ctx.env, ctx.modelsRoot);
    if (untrusted) {
      return [check("models.complete", "fail", `refusing the models dir ${ctx.modelsRoot}: ${untrusted}`, {
        fault: "job",
        remedy: "another user could plant files there; point MLAGENT_MODELS_DIR at a directory of your own",
      })];
    }
    return [modelsCheck(await inspectModels(ctx.env, ctx.profile!))];
  },
};

/** Every task, in the order the report lists their checks. */
export const PROLOGUE_TASKS: readonly PrologueTask[] = [
  gpuTask,
  xidTask,
  tmpdirAndDiskTask,
  venvTask,
  verifyTask,
  modelsTask,
];
