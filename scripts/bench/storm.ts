/**
 * Install storms: N hosts start the same `mlagent install P` at once against one shared venv root, as
 * `srun -N ALL --ntasks-per-node=1 mlagent install P` (scripts/slurm/install_storm.sh) or an LSF job array
 * (scripts/lsf/install_storm.sh) does on a cluster whose root is on NFS or Lustre.
 *
 * Each host is a process under `unshare --uts` with its own host name, its own node-local cache, lock dir
 * and HOME; the root is one directory that counts as a network filesystem (MLAGENT_FORCE_NETWORK_FS), so
 * the venv's lock is a lease as on a real shared root. Where the sshfs harness runs (root, /dev/fuse), the
 * same storm also runs with each host on its own sshfs mount of the root, without hard links (leases by
 * exclusive create). The index is tests/support/pypi.ts's, whose request log counts every wheel fetched.
 *
 * Reported: installs run (target exactly 1), hosts that waited and found the venv ready (N-1), the most
 * times any wheel was fetched (1), and the time until every host is ready relative to one install alone
 * (both include mlagent's start-up, which N hosts sharing this machine's cores pay at once).
 */
import type { BenchRow } from "../bench.ts";
import { installVars } from "../../tests/support/env.ts";
import { canUnshareUts, spawnMlagent } from "../../tests/support/lock_helpers.ts";
import { type LocalIndex, startIndex, testDists } from "../../tests/support/pypi.ts";
import { sshfsAvailable, startSshfs } from "../../tests/support/sshfs.ts";
import { testProfile } from "../../tests/support/node_states.ts";

export interface HostOutcome {
  host: string;
  code: number;
  action: string;
  waitedForOther: boolean;
  installedStages: number;
  stderr: string;
}

export interface StormResult {
  hosts: HostOutcome[];
  /** Hosts whose install ran the installer. */
  installs: number;
  /** Hosts that waited for another's install and found the venv ready. */
  waitedReady: number;
  /** Each wheel or sdist the index served, with how many times. */
  fetches: Map<string, number>;
  /** From the first start to the last host's exit. */
  allReadyMs: number;
}

export interface StormSetup {
  /** Scratch dir: per-host caches, lock dirs and homes go here. */
  dir: string;
  index: LocalIndex;
  /** The profile file every host installs. */
  profile: string;
  /** The venv root each host uses (one shared dir, or each host's own mount of it). */
  rootFor: (i: number) => string;
  /** Extra variables for every host (MLAGENT_FORCE_NETWORK_FS). */
  vars?: Record<string, string>;
}

/** Writes the storm's profile: one stage of a three-wheel dependency chain, verified by an import. */
export async function writeStormProfile(dir: string): Promise<string> {
  const file = `${dir}/storm.json`;
  const profile = testProfile("storm", {
    stages: [{ name: "chain", packages: ["mla-alpha==1.0"] }],
    verify: [{ name: "imports", code: "import mla_alpha, mla_beta, mla_gamma" }],
  });
  await Deno.writeTextFile(file, JSON.stringify(profile, null, 2));
  return file;
}

function hostVars(setup: StormSetup, i: number): Record<string, string> {
  const own = `${setup.dir}/host-${i}`;
  return {
    ...installVars(own, setup.index.url),
    MLAGENT_ROOT: setup.rootFor(i),
    MLAGENT_LOCK_POLL_MS: "50",
    MLAGENT_LOCK_NOTICE: "1",
    ...setup.vars,
  };
}

/** Starts `hosts` installs at once (each under its own host name) and gathers what each did. */
export async function runStorm(setup: StormSetup, hosts: number): Promise<StormResult> {
  setup.index.requests.length = 0;
  const started = performance.now();
  const procs = Array.from(
    { length: hosts },
    (_, i) =>
      spawnMlagent(["install", setup.profile, "--json"], { env: hostVars(setup, i), host: `node-${i + 1}` }),
  );
  const done = await Promise.all(procs.map((p) => p.done));
  const allReadyMs = performance.now() - started;
  const outcomes = done.map((r, i): HostOutcome => {
    let report: { action?: string; waited_for_other?: boolean; stages?: { action: string }[] } = {};
    try {
      report = JSON.parse(r.stdout);
    } catch { /* reported below through code and stderr */ }
    return {
      host: `node-${i + 1}`,
      code: r.code,
      action: report.action ?? "?",
      waitedForOther: report.waited_for_other ?? false,
      installedStages: (report.stages ?? []).filter((s) => s.action === "installed").length,
      stderr: r.stderr,
    };
  });
  const fetches = new Map<string, number>();
  for (const q of setup.index.requests) {
    if (q.path.startsWith("/files/")) fetches.set(q.path.slice(7), (fetches.get(q.path.slice(7)) ?? 0) + 1);
  }
  return {
    hosts: outcomes,
    installs: outcomes.filter((o) => o.installedStages > 0).length,
    waitedReady: outcomes.filter((o) => o.code === 0 && o.action === "none" && o.waitedForOther).length,
    fetches,
    allReadyMs,
  };
}

/** One host installing alone into a fresh root: the baseline the storm is compared with. */
async function alone(setup: StormSetup): Promise<number> {
  const started = performance.now();
  const r = await spawnMlagent(["install", setup.profile, "--json"], {
    env: hostVars(setup, 0),
    host: "node-alone",
  })
    .done;
  if (r.code !== 0) throw new Error(`a lone install failed: ${r.stderr}`);
  return performance.now() - started;
}

function rowsFor(what: string, n: number, storm: StormResult, aloneMs: number): BenchRow[] {
  const failed = storm.hosts.filter((h) => h.code !== 0);
  if (failed.length) throw new Error(`${what}: ${failed[0].host} failed: ${failed[0].stderr}`);
  const maxFetch = Math.max(0, ...storm.fetches.values());
  const ratio = storm.allReadyMs / aloneMs;
  return [
    {
      name: `install storm, ${n} hosts, ${what}: installs run`,
      value: storm.installs,
      unit: "",
      target: "= 1",
      met: storm.installs === 1,
    },
    {
      name: `install storm, ${n} hosts, ${what}: waited and found it ready`,
      value: storm.waitedReady,
      unit: "",
      target: `= ${n - 1}`,
      met: storm.waitedReady === n - 1,
    },
    {
      name: `install storm, ${n} hosts, ${what}: most fetches of one wheel`,
      value: maxFetch,
      unit: "",
      target: "= 1",
      met: maxFetch === 1 && storm.fetches.size > 0,
      detail: `${storm.fetches.size} files fetched`,
    },
    {
      name: `install storm, ${n} hosts, ${what}: all ready / one install alone`,
      value: ratio,
      unit: "x",
      target: "report",
      met: true,
      detail: `${Math.round(storm.allReadyMs)} ms vs ${Math.round(aloneMs)} ms, both with mlagent start-up`,
    },
  ];
}

export async function run(): Promise<BenchRow[]> {
  if (!(await canUnshareUts())) throw new Error("needs `unshare --uts` (root or user namespaces)");
  const n = 6;
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  const dir = await Deno.makeTempDir({ prefix: "mlagent-bench-storm-" });
  try {
    const profile = await writeStormProfile(dir);
    const rows: BenchRow[] = [];
    const shared = `${dir}/shared`;
    const forced = { MLAGENT_FORCE_NETWORK_FS: shared };
    const aloneMs = await alone({
      dir: `${dir}/alone`,
      index,
      profile,
      rootFor: () => `${shared}/alone`,
      vars: forced,
    });
    const storm = await runStorm({
      dir: `${dir}/storm`,
      index,
      profile,
      rootFor: () => `${shared}/venvs`,
      vars: forced,
    }, n);
    rows.push(...rowsFor("shared dir as a network filesystem", n, storm, aloneMs));
    if (sshfsAvailable()) {
      await using fs = await startSshfs({
        clients: n,
        hardLinks: false,
        mountOptions: ["dir_cache=no", "noauto_cache"],
      });
      const viaMounts = {
        dir: `${dir}/sshfs`,
        index,
        profile,
        rootFor: (i: number) => `${fs.mounts[i]}/venvs`,
      };
      const aloneSshfs = await alone({ ...viaMounts, rootFor: () => `${fs.mounts[0]}/alone` });
      const sshfsStorm = await runStorm(viaMounts, n);
      rows.push(...rowsFor("one sshfs mount per host, no hard links", n, sshfsStorm, aloneSshfs));
    }
    return rows;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
