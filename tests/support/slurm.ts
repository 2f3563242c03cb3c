/**
 * A real one-node Slurm (22.05, Debian's slurm-wlm + munge) for tests of the prologue, the TaskProlog and
 * `health`, built from facts established on this kind of machine: slurmctld and slurmd in the foreground on
 * 127.0.0.1, free ports, a munged with its own key and socket, and every config, state, spool, pid and log
 * file in one temp dir. GPUs are faked as gres backed by dummy character devices.
 *
 * ```ts
 * // Needs root and the slurm-wlm + munge packages (.ci/run installs them where missing).
 * Deno.test({ name: "...", ignore: !slurmAvailable(), fn: async (t) => {
 *   await using cluster = await startSlurm({ gpus: 2, prolog: "/path/to/prolog.sh", hookPath: `${bin}:/usr/bin:/bin` });
 *   const id = await cluster.sbatch(["--gres=gpu:1", "--wrap", "echo $CUDA_VISIBLE_DEVICES"]);
 *   await cluster.waitJob(id, ["COMPLETED"]);
 *   await cluster.jobOutput(id);                  // "0\n"
 *   await cluster.sinfoReasons();                 // [{ node, reason: "Prolog error", ... }] after a failed Prolog
 * }});
 * ```
 * Slurm runs the Prolog and HealthCheckProgram as root with a minimal environment, so each hook given is
 * wrapped in a script that sets PATH (`hookPath`), SLURM_CONF and `hookVars` first, then execs it (the
 * TaskProlog's wrapper sets PATH only when hookPath is given: it runs with the job's environment). A Prolog's
 * output reaches only slurmd's log (`slurmdLog()`), and only when it fails. Slurm facts that shape tests:
 * a failed Prolog drains the node with `Reason=Prolog error` and requeues a batch job held (JobState PENDING,
 * Reason launch_failed_requeued_held) unless `noHoldOnPrologFail`; a requeued job may not start again for
 * about 120 s, so cancel it rather than wait for it. A job starts about 1 s after sbatch (the first one
 * after start-up about 2 s); HealthCheckProgram runs once before slurmd registers, then every interval.
 *
 * Dispose stops the daemons (SIGTERM, then SIGKILL), every job step and process still using the cluster's
 * dir, then munged, and removes the dir. Start-up (node idle) takes about 1-2 s.
 */
import {
  type Daemon,
  descendantsOf,
  findExecutable,
  freePort,
  isAlive,
  pollUntil,
  processesUsing,
  processesWithVar,
  type Ran,
  runBounded,
  spawnDaemon,
  stopDaemon,
  stopProcesses,
  tailOf,
} from "./daemon.ts";
import { hermeticVars } from "./env.ts";

export interface SlurmOptions {
  /** Fake GPUs on the node (gres gpu), each a dummy character device (default 2; 0 for none). */
  gpus?: number;
  /** CPUs the node offers (default 2, at most this machine's count). */
  cpus?: number;
  /** Prolog= (run as root before each job, at allocation: PrologFlags=Alloc). */
  prolog?: string;
  /** TaskProlog= (run as the job's user with its environment; `export N=V` and `print T` lines count). */
  taskProlog?: string;
  /** HealthCheckProgram= (run as root by slurmd at start-up and every healthCheckIntervalS). */
  healthCheck?: string;
  /** HealthCheckInterval= in seconds (default 300). Slurm runs it at slurmd start-up only when this is not 0. */
  healthCheckIntervalS?: number;
  /** PATH for the Prolog and HealthCheckProgram (default the system dirs); the TaskProlog keeps the job's PATH. */
  hookPath?: string;
  /** More variables set for every hook (e.g. MLAGENT_BIN, MLAGENT_STATE_DIR). */
  hookVars?: Record<string, string>;
  /** PrologEpilogTimeout= in seconds (default Slurm's: none). */
  prologTimeoutS?: number;
  /** SchedulerParameters=nohold_on_prolog_fail: a job requeued by a failed Prolog is not held. */
  noHoldOnPrologFail?: boolean;
  /** More SchedulerParameters= entries (the harness writes that line; do not repeat it in extraConf). */
  schedulerParameters?: string[];
  /** More slurm.conf lines, written before the node and partition lines. */
  extraConf?: string[];
  /** How long start-up may take before failing with the daemons' logs (default 20 s). */
  startTimeoutMs?: number;
}

/** `scontrol show job -o` / `show node -o` as a record (JobState, Reason, StdOut, State, ...). */
export type SlurmRecord = Record<string, string>;

export interface DrainReason {
  node: string;
  reason: string;
  user: string;
  /** When it was set, as sinfo prints it (local time, e.g. 2026-12-01T21:24:47). */
  since: string;
}

export interface SlurmCluster extends AsyncDisposable {
  /** The temp dir that holds everything (slurm.conf, logs, state, spool, jobs/, dev/). */
  dir: string;
  /** Path of slurm.conf; `env` points SLURM_CONF at it. */
  conf: string;
  /** The node's name (this host's short name). */
  node: string;
  /** The dummy GPU devices, in gres order. */
  gpuDevices: string[];
  /** Variables that make Slurm's commands talk to this cluster: SLURM_CONF and the harness's marker. */
  env: Record<string, string>;
  /** munged's, slurmctld's and slurmd's pids, to prove none is left after dispose. */
  pids: number[];
  /** Milliseconds from starting munged to the node reported idle. */
  startupMs: number;
  /** Runs a Slurm command (or anything) with `env` added to the hermetic variables; non-zero exit is data. */
  run(argv: string[], opts?: { env?: Record<string, string>; timeoutMs?: number }): Promise<Ran>;
  /** `scontrol ARGS`; throws with its stderr on failure. */
  scontrol(args: string[]): Promise<string>;
  /** `sbatch --parsable ARGS` (output to jobs/slurm-%j.out unless -o/--output is given); returns the job id. */
  sbatch(args: string[], opts?: { env?: Record<string, string> }): Promise<string>;
  /** The job's record (`scontrol show job -o ID`), or undefined once Slurm has forgotten it. */
  job(id: string): Promise<SlurmRecord | undefined>;
  /** Polls until the job's JobState is one of `states`; throws past `timeoutMs` (default 20 s) with its state. */
  waitJob(id: string, states: string[], timeoutMs?: number): Promise<SlurmRecord>;
  /** The job's stdout file (StdOut=), "" when not written yet. */
  jobOutput(id: string): Promise<string>;
  /** `scancel ID`. */
  cancel(id: string): Promise<void>;
  /** What `sinfo -R` shows admins: one row per drained or down node with its reason. */
  sinfoReasons(): Promise<DrainReason[]>;
  /** The node's state as sinfo prints it (%T): idle, mixed, allocated, draining, drained, down, ... */
  nodeState(): Promise<string>;
  /** The node's record (`scontrol show node -o`): State (e.g. IDLE+DRAIN), Reason, Gres, ... */
  nodeInfo(): Promise<SlurmRecord>;
  /** Polls until nodeState() is one of `states`; throws past `timeoutMs` (default 20 s). */
  waitNode(states: string[], timeoutMs?: number): Promise<string>;
  /** `scontrol update nodename=NODE state=resume`, then waits for the node to leave the drain states. */
  resumeNode(): Promise<void>;
  slurmdLog(): Promise<string>;
  slurmctldLog(): Promise<string>;
  /** Stops everything and removes `dir`; what `await using` calls. */
  stop(): Promise<void>;
}

/** The variable every hook and job of a harness cluster carries (value: its dir), so dispose finds them. */
export const SLURM_MARKER_VAR = "MLAGENT_TEST_SLURM";
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const PROGRAMS = [
  "slurmctld",
  "slurmd",
  "munged",
  "sinfo",
  "sbatch",
  "scontrol",
  "squeue",
  "scancel",
  "mknod",
];

/** Why the harness cannot run here, or undefined when it can (root, the slurm-wlm and munge programs). */
export function slurmUnavailableReason(): string | undefined {
  if (Deno.uid() !== 0) return "needs root (slurmd runs jobs as their users, mknod for the GPU devices)";
  for (const prog of PROGRAMS) {
    if (!findExecutable(prog)) return `no ${prog} (apt-get install slurm-wlm munge)`;
  }
  return undefined;
}

/** Whether startSlurm can run here; tests use `ignore: !slurmAvailable()`. */
export function slurmAvailable(): boolean {
  return slurmUnavailableReason() === undefined;
}

/** Parses one `scontrol show ... -o` line into key/value pairs (values may hold spaces, keys never do). */
export function parseScontrolRecord(line: string): SlurmRecord {
  const record: SlurmRecord = {};
  for (const part of line.trim().split(/ (?=[A-Za-z][A-Za-z0-9_:/]*=)/)) {
    const eq = part.indexOf("=");
    if (eq > 0) record[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return record;
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** A hook wrapper: Slurm gives hooks almost no environment, so set what the caller asked for, then exec theirs. */
function hookWrapper(target: string, vars: Record<string, string>): string {
  return [
    "#!/bin/sh",
    "# Written by tests/support/slurm.ts: sets the environment Slurm does not give hooks, then runs the hook.",
    ...Object.entries(vars).map(([k, v]) => `${k}=${q(v)}; export ${k}`),
    `exec ${q(target)} "$@"`,
    "",
  ].join("\n");
}

/** Starts munged, slurmctld and slurmd and waits for the node to be up; dispose stops them all. */
export async function startSlurm(opts: SlurmOptions = {}): Promise<SlurmCluster> {
  const why = slurmUnavailableReason();
  if (why) throw new Error(`Slurm harness unavailable: ${why}`);
  const started = performance.now();
  const gpus = opts.gpus ?? 2;
  const cpus = Math.max(1, Math.min(opts.cpus ?? 2, navigator.hardwareConcurrency || 1));
  const node = Deno.hostname().split(".")[0];
  const dir = await Deno.makeTempDir({ prefix: "mlagent-slurm-" });
  // Jobs of other users (setpriv in tests) must reach munge's socket, the hooks and jobs/.
  await Deno.chmod(dir, 0o755);
  for (const sub of ["munge", "state", "spool", "log", "dev", "hooks"]) {
    await Deno.mkdir(`${dir}/${sub}`, { mode: 0o755 });
    await Deno.chmod(`${dir}/${sub}`, 0o755);
  }
  await Deno.mkdir(`${dir}/jobs`);
  await Deno.chmod(`${dir}/jobs`, 0o1777);
  const conf = `${dir}/slurm.conf`;
  const env = { SLURM_CONF: conf, [SLURM_MARKER_VAR]: dir };
  const cmdEnv = (extra: Record<string, string> = {}) => hermeticVars({ ...env, ...extra });
  const daemons: { munged?: Daemon; slurmctld?: Daemon; slurmd?: Daemon } = {};

  const cleanup = async () => {
    const problems: string[] = [];
    const stopped: number[] = [];
    for (const d of [daemons.slurmd, daemons.slurmctld]) {
      if (d) stopped.push(d.pid, ...(await stopDaemon(d)));
    }
    // slurmstepd detaches from slurmd and outlives it, with the job's processes below it; it keeps slurmd's
    // log open, and jobs and hooks carry the marker variable.
    const mungedPid = daemons.munged?.pid;
    const strays = [...processesUsing(dir), ...processesWithVar(SLURM_MARKER_VAR, dir)]
      .filter((p) => p !== mungedPid);
    const all = [...new Set(strays.flatMap((p) => [p, ...descendantsOf(p)]))].filter((p) => p !== mungedPid);
    if (all.length) await stopProcesses(all, { graceMs: 1000 });
    if (daemons.munged) await stopDaemon(daemons.munged);
    const alive = [...all, ...[daemons.munged, daemons.slurmctld, daemons.slurmd].map((d) => d?.pid ?? 0)]
      .filter((p) => p && isAlive(p));
    if (alive.length) problems.push(`still running: pids ${alive.join(", ")}`);
    await Deno.remove(dir, { recursive: true }).catch((e) => problems.push(`cannot remove ${dir}: ${e}`));
    if (problems.length) throw new Error(`Slurm harness cleanup: ${problems.join("; ")}`);
  };

  const run = (argv: string[], o: { env?: Record<string, string>; timeoutMs?: number } = {}) =>
    runBounded(argv, { env: cmdEnv(o.env), timeoutMs: o.timeoutMs ?? 10_000 });
  const runOrThrow = async (argv: string[]) => {
    const r = await run(argv);
    if (r.code !== 0 || r.timedOut) {
      throw new Error(
        `${argv.join(" ")} ${r.timedOut ? "timed out" : `exited ${r.code}`}: ${r.stderr.trim()}`,
      );
    }
    return r.stdout;
  };
  const nodeState = async () => {
    const r = await run(["sinfo", "--noheader", "--Node", "--nodes", node, "--format", "%T"]);
    return r.code === 0 ? r.stdout.trim() : `unknown (sinfo: ${r.stderr.trim()})`;
  };
  const logs = () =>
    Promise.all(
      ["slurmctld", "slurmd", "munged"].map(async (n) =>
        `--- ${dir}/log/${n}.log:\n${await tailOf(`${dir}/log/${n}.log`, 15)}`
      ),
    )
      .then((parts) => parts.join("\n"));

  try {
    // munge: a fresh key of its own; --force because it runs as root and its dirs are a temp dir's.
    const key = new Uint8Array(1024);
    crypto.getRandomValues(key);
    await Deno.writeFile(`${dir}/munge/munge.key`, key, { mode: 0o600 });
    const socket = `${dir}/munge/munge.socket`;
    daemons.munged = await spawnDaemon("munged", [
      findExecutable("munged")!,
      "--foreground",
      "--force",
      `--socket=${socket}`,
      `--key-file=${dir}/munge/munge.key`,
      `--log-file=${dir}/log/munged.log`,
      `--pid-file=${dir}/munge/munged.pid`,
      `--seed-file=${dir}/munge/munged.seed`,
    ], `${dir}/log/munged.out`);

    const gpuDevices: string[] = [];
    for (let i = 0; i < gpus; i++) {
      // Major 195 is NVIDIA's; nothing opens these, Slurm only needs them to exist as character devices.
      const dev = `${dir}/dev/nvidia${i}`;
      const r = await runBounded(["mknod", "-m", "0666", dev, "c", "195", String(i)]);
      if (r.code !== 0) throw new Error(`mknod ${dev} failed: ${r.stderr.trim()}`);
      gpuDevices.push(dev);
    }
    if (gpus > 0) {
      await Deno.writeTextFile(
        `${dir}/gres.conf`,
        gpuDevices.map((d) => `NodeName=${node} Name=gpu File=${d}`).join("\n") + "\n",
      );
    }
    await Deno.writeTextFile(`${dir}/plugstack.conf`, "");

    const baseVars = { SLURM_CONF: conf, [SLURM_MARKER_VAR]: dir, ...(opts.hookVars ?? {}) };
    const hook = async (name: string, target: string | undefined, withPath: boolean) => {
      if (!target) return undefined;
      const path = `${dir}/hooks/${name}`;
      const vars = withPath ? { PATH: opts.hookPath ?? SYSTEM_PATH, ...baseVars } : baseVars;
      await Deno.writeTextFile(path, hookWrapper(target, vars), { mode: 0o755 });
      return path;
    };
    const prolog = await hook("prolog", opts.prolog, true);
    const taskProlog = await hook("task_prolog", opts.taskProlog, opts.hookPath !== undefined);
    const healthCheck = await hook("health_check", opts.healthCheck, true);

    const ctldPort = freePort();
    let slurmdPort = freePort();
    while (slurmdPort === ctldPort) slurmdPort = freePort();
    const lines = [
      "ClusterName=mlagenttest",
      `SlurmctldHost=${node}(127.0.0.1)`,
      `SlurmctldPort=${ctldPort}`,
      `SlurmdPort=${slurmdPort}`,
      "AuthType=auth/munge",
      "CredType=cred/munge",
      `AuthInfo=socket=${socket}`,
      "SlurmUser=root",
      "SlurmdUser=root",
      `StateSaveLocation=${dir}/state`,
      `SlurmdSpoolDir=${dir}/spool`,
      `SlurmctldPidFile=${dir}/slurmctld.pid`,
      `SlurmdPidFile=${dir}/slurmd.pid`,
      `SlurmctldLogFile=${dir}/log/slurmctld.log`,
      `SlurmdLogFile=${dir}/log/slurmd.log`,
      `PlugStackConfig=${dir}/plugstack.conf`,
      // No systemd and no cgroups here.
      "ProctrackType=proctrack/linuxproc",
      "TaskPlugin=task/none",
      "SelectType=select/cons_tres",
      "JobAcctGatherType=jobacct_gather/none",
      "AccountingStorageType=accounting_storage/none",
      // No slurmdbd, so no sacct: finished jobs stay in `scontrol show job` for MinJobAge, and in this file.
      "JobCompType=jobcomp/filetxt",
      `JobCompLoc=${dir}/jobcomp.txt`,
      "MinJobAge=600",
      "MpiDefault=none",
      // A node that registers comes back to service by itself (State=UNKNOWN at start).
      "ReturnToService=2",
      "KillWait=2",
      "InactiveLimit=0",
      "PrologFlags=Alloc",
      ...(prolog ? [`Prolog=${prolog}`] : []),
      ...(taskProlog ? [`TaskProlog=${taskProlog}`] : []),
      ...(healthCheck
        ? [`HealthCheckProgram=${healthCheck}`, `HealthCheckInterval=${opts.healthCheckIntervalS ?? 300}`]
        : []),
      ...(opts.prologTimeoutS !== undefined ? [`PrologEpilogTimeout=${opts.prologTimeoutS}`] : []),
      // batch_sched_delay=0: a submitted batch job is scheduled within about a second, not three.
      `SchedulerParameters=${
        [
          "batch_sched_delay=0",
          ...(opts.noHoldOnPrologFail ? ["nohold_on_prolog_fail"] : []),
          ...(opts.schedulerParameters ?? []),
        ]
          .join(",")
      }`,
      ...(gpus > 0 ? ["GresTypes=gpu"] : []),
      ...(opts.extraConf ?? []),
      `NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus}${gpus > 0 ? ` Gres=gpu:${gpus}` : ""} State=UNKNOWN`,
      "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ];
    await Deno.writeTextFile(conf, lines.join("\n") + "\n");

    const munged = daemons.munged;
    await pollUntil(async () => {
      if (munged.hasExited()) throw new Error(`munged exited at start:\n${await logs()}`);
      return (await Deno.lstat(socket).then(() => true, () => false)) || undefined;
    }, {
      timeoutMs: 5000,
      onTimeout: async () => new Error(`munged made no socket ${socket} within 5 s:\n${await logs()}`),
    });

    const daemonEnv = cmdEnv();
    daemons.slurmctld = await spawnDaemon(
      "slurmctld",
      [findExecutable("slurmctld")!, "-D", "-c", "-f", conf],
      `${dir}/log/slurmctld.out`,
      { env: daemonEnv },
    );
    daemons.slurmd = await spawnDaemon(
      "slurmd",
      [findExecutable("slurmd")!, "-D", "-f", conf],
      `${dir}/log/slurmd.out`,
      { env: daemonEnv },
    );
    const timeoutMs = opts.startTimeoutMs ?? 20_000;
    await pollUntil(async () => {
      for (const d of [daemons.slurmctld!, daemons.slurmd!]) {
        if (d.hasExited()) {
          throw new Error(`${d.name} exited at start:\n${await tailOf(d.log)}\n${await logs()}`);
        }
      }
      const state = await nodeState();
      // Up once registered and responding; a HealthCheckProgram may already have drained it.
      return /^(idle|mixed|allocated|drained|draining)$/.test(state) ? state : undefined;
    }, {
      timeoutMs,
      everyMs: 50,
      onTimeout: async () =>
        new Error(
          `Slurm node ${node} not up within ${timeoutMs} ms (sinfo: ${await nodeState()}); see ${dir}/log:\n${await logs()}`,
        ),
    });

    const job = async (id: string) => {
      const r = await run(["scontrol", "--oneliner", "show", "job", id]);
      return r.code === 0 && r.stdout.trim() ? parseScontrolRecord(r.stdout.split("\n")[0]) : undefined;
    };
    const waitNode = (states: string[], ms = 20_000) =>
      pollUntil(async () => {
        const s = await nodeState();
        return states.includes(s) ? s : undefined;
      }, {
        timeoutMs: ms,
        everyMs: 100,
        onTimeout: async () =>
          new Error(`node ${node} not ${states.join("|")} within ${ms} ms: ${await nodeState()}`),
      });

    let stopping: Promise<void> | undefined;
    const stop = () => (stopping ??= cleanup());
    return {
      dir,
      conf,
      node,
      gpuDevices,
      env,
      pids: [daemons.munged.pid, daemons.slurmctld.pid, daemons.slurmd.pid],
      startupMs: Math.round(performance.now() - started),
      run,
      scontrol: (args) => runOrThrow(["scontrol", ...args]),
      async sbatch(args, o = {}) {
        const hasOutput = args.some((a) => /^(-o|--output)(=|$)/.test(a) || /^-o./.test(a));
        const argv = [
          "sbatch",
          "--parsable",
          ...(hasOutput ? [] : ["--output", `${dir}/jobs/slurm-%j.out`]),
          ...args,
        ];
        const r = await run(argv, { env: o.env });
        if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
        return r.stdout.trim().split(";")[0];
      },
      job,
      async waitJob(id, states, ms = 20_000) {
        let last: SlurmRecord | undefined;
        return await pollUntil(async () => {
          last = await job(id);
          return last && states.includes(last.JobState) ? last : undefined;
        }, {
          timeoutMs: ms,
          everyMs: 100,
          onTimeout: async () =>
            new Error(
              `job ${id} not ${states.join("|")} within ${ms} ms: ${
                last ? `JobState=${last.JobState} Reason=${last.Reason}` : "unknown to Slurm"
              }\n${await logs()}`,
            ),
        });
      },
      async jobOutput(id) {
        const path = (await job(id))?.StdOut ?? `${dir}/jobs/slurm-${id}.out`;
        return await Deno.readTextFile(path).catch(() => "");
      },
      async cancel(id) {
        await runOrThrow(["scancel", id]);
      },
      async sinfoReasons() {
        const out = await runOrThrow([
          "sinfo",
          "--list-reasons",
          "--noheader",
          "--Node",
          "--format",
          "%n\t%E\t%u\t%H",
        ]);
        return out.split("\n").filter((l) => l.trim()).map((l) => {
          const [n, reason, user, since] = l.split("\t").map((s) => s.trim());
          return { node: n, reason, user, since };
        });
      },
      nodeState,
      async nodeInfo() {
        return parseScontrolRecord(await runOrThrow(["scontrol", "--oneliner", "show", "node", node]));
      },
      waitNode,
      async resumeNode() {
        await runOrThrow(["scontrol", "update", `nodename=${node}`, "state=resume"]);
        await waitNode(["idle", "mixed", "allocated"]);
      },
      slurmdLog: () => Deno.readTextFile(`${dir}/log/slurmd.log`).catch(() => ""),
      slurmctldLog: () => Deno.readTextFile(`${dir}/log/slurmctld.log`).catch(() => ""),
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (e) {
    await cleanup().catch(() => {});
    throw e;
  }
}
