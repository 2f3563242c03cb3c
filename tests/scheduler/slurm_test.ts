/**
 * The Slurm recipes end to end on a real one-node Slurm 22.05 (tests/support/slurm.ts): scripts/slurm/
 * prolog.sh, task_prolog.sh and health.sh as slurmd runs them (as root, its environment, its PATH), with
 * mlagent run from this checkout and a fake nvidia-smi switched between a healthy 4xA100 and an 8xA30 whose
 * GPU 3 shows ERR!. One cluster serves every step, in order:
 *   slurmd's start-up health check -> a job whose TaskProlog prints to its output -> a malformed
 *   CUDA_VISIBLE_DEVICES reaching a job without a profile -> a faulty GPU drained by the Prolog with its own
 *   reason and the job requeued held -> health keeping it drained, then resuming it -> an admin's drain left
 *   alone -> nohold_on_prolog_fail (reconfigured in place) -> the mlagent binary missing.
 */
import assert from "node:assert/strict";
import { pollUntil } from "../support/daemon.ts";
import { FIXTURES, REPO_ROOT, tempDir } from "../support/env.ts";
import { MAIN_TS } from "../support/cli.ts";
import { writeFakeBin } from "../support/fake_bin.ts";
import { makeNode, testProfile, writeProfile, writeVenv } from "../support/node_states.ts";
import { slurmAvailable, type SlurmCluster, startSlurm } from "../support/slurm.ts";

// Needs root and the slurm-wlm + munge packages (.ci/run installs them where missing).
const available = slurmAvailable();
const HEALTHY = `${FIXTURES}/nvidia-smi/table/table_555.42.02_4xA100-SXM4-80GB.txt`;
const GPU3_ERR = `${FIXTURES}/nvidia-smi/table/table_525.85.12_8xA30_one-GPU-ERR.txt`;
const JOB_MS = 90_000;

function denoDir(): string {
  const out = new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped", stderr: "null" })
    .outputSync();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

async function waitReason(c: SlurmCluster, pattern: RegExp, ms = JOB_MS): Promise<string> {
  return await pollUntil(async () => {
    const [row] = await c.sinfoReasons();
    return row && pattern.test(row.reason) ? row.reason : undefined;
  }, {
    timeoutMs: ms,
    everyMs: 200,
    onTimeout: async () =>
      new Error(
        `no drain reason matching ${pattern}: ${JSON.stringify(await c.sinfoReasons())}\n${await c
          .slurmdLog()}`,
      ),
  });
}

async function waitJobReason(c: SlurmCluster, id: string, pattern: RegExp) {
  return await pollUntil(async () => {
    const job = await c.job(id);
    // slurmctld sets the reason while the failed launch is still COMPLETING: wait for the state to settle too.
    return job && pattern.test(job.Reason) && job.JobState !== "COMPLETING" ? job : undefined;
  }, {
    timeoutMs: JOB_MS,
    everyMs: 200,
    onTimeout: async () =>
      new Error(`job ${id} never had Reason ${pattern}: ${JSON.stringify(await c.job(id))}`),
  });
}

/** Waits until a job the Prolog refused is back in the queue (PENDING after one start). */
async function requeued(c: SlurmCluster, id: string) {
  return await pollUntil(async () => {
    const job = await c.job(id);
    return job && job.JobState === "PENDING" && job.Restarts === "1" ? job : undefined;
  }, {
    timeoutMs: JOB_MS,
    everyMs: 200,
    onTimeout: async () => new Error(`job ${id} never requeued: ${JSON.stringify(await c.job(id))}`),
  });
}

Deno.test({
  name:
    "the Slurm recipes on a real Slurm: drain with mlagent's reason, requeue, TaskProlog prints, health resumes",
  ignore: !available,
  fn: async (t) => {
    await using work = await tempDir("mlagent-slurm-recipes-");
    await Deno.chmod(work.path, 0o755);
    const n = await makeNode(`${work.path}/node`);
    const fleet = `${work.path}/fleet`;
    await Deno.mkdir(fleet);
    const smi = (file: string) => writeFakeBin(n.bin, "nvidia-smi", { stdoutFile: file });
    await smi(HEALTHY);
    await writeFakeBin(n.bin, "dmesg", { stdout: "" });
    const demo = testProfile("demo");
    await writeProfile(n, demo);
    await writeVenv(n.root, "demo", { status: "ready", profile: demo });
    // The binary the recipes run: this checkout, with the Deno cache slurmd's bare environment lacks.
    const bin = `${work.path}/mlagent`;
    const wrapper =
      `#!/bin/sh\nDENO_DIR='${denoDir()}' HOME=/root exec '${Deno.execPath()}' run -A --quiet ` +
      `--config '${REPO_ROOT}/deno.json' '${MAIN_TS}' "$@"\n`;
    await Deno.writeTextFile(bin, wrapper, { mode: 0o755 });
    const { PATH: _path, ...nodeVars } = n.vars;

    const started = performance.now();
    await using c = await startSlurm({
      gpus: 4,
      prolog: `${REPO_ROOT}/scripts/slurm/prolog.sh`,
      taskProlog: `${REPO_ROOT}/scripts/slurm/task_prolog.sh`,
      healthCheck: `${REPO_ROOT}/scripts/slurm/health.sh`,
      // Only at start-up: the steps below run the hook themselves, exactly as slurmd would.
      healthCheckIntervalS: 3600,
      hookPath: `${n.bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`,
      hookVars: { ...nodeVars, MLAGENT_BIN: bin, MLAGENT_FLEET_DIR: fleet, MLAGENT_PROLOGUE_TIMEOUT: "30" },
      startTimeoutMs: 90_000,
    });
    console.log(`Slurm with mlagent's health check up in ${Math.round(performance.now() - started)} ms`);
    const healthHook = () => c.run([`${c.dir}/hooks/health_check`], { timeoutMs: 70_000 });
    const drainLog = async () =>
      (await Deno.readTextFile(`${n.stateDir}/drain.log`).catch(() => "")).trim().split("\n").filter(Boolean)
        .map((l) => JSON.parse(l));

    await t.step("slurmd ran health.sh at start-up: healthy, its report in the fleet directory", async () => {
      const report = JSON.parse(await Deno.readTextFile(`${fleet}/${Deno.hostname()}.health.json`));
      assert.equal(report.verdict, "healthy", JSON.stringify(report.checks));
      assert.equal(report.scheduler, "slurm");
      assert.equal(report.node, c.node, "SLURMD_NODENAME");
      assert.equal(report.facts.expected_gpus, 4, "Gres=gpu:4 read from scontrol");
      assert.deepEqual(await c.sinfoReasons(), []);
    });

    await t.step("a job with a profile starts; the TaskProlog's print lines reach its output", async () => {
      const id = await c.sbatch([
        "--export=ALL,MLAGENT_PROFILE=demo",
        "--gres=gpu:1",
        "--wrap",
        "echo job ran",
      ]);
      assert.equal((await c.waitJob(id, ["COMPLETED", "FAILED"], JOB_MS)).JobState, "COMPLETED");
      const out = await c.jobOutput(id);
      assert.match(out, /^ok +venv\.ready +.*demo/m);
      assert.match(out, /^mlagent prologue: ok, the job may start \(exit 0, slurm/m);
      assert.match(out, /^job ran$/m);
    });

    await t.step("without a profile the TaskProlog still runs, and prints only the problems", async () => {
      // Slurm's gres plugin rewrites CUDA_VISIBLE_DEVICES for every job on a node with GPUs, so a user's
      // malformed one cannot reach a job here (tests/scripts/recipes_test.ts covers it); an application
      // Xid in the kernel log is a problem the job's owner should see, and not a node fault.
      const xid = `${new Date().toISOString()} NVRM: Xid (PCI:0000:01:00): 13, pid=4242, Graphics Exception`;
      await writeFakeBin(n.bin, "dmesg", { stdout: xid + "\n" });
      try {
        const id = await c.sbatch(["--wrap", "echo job ran"]);
        assert.equal((await c.waitJob(id, ["COMPLETED", "FAILED"], JOB_MS)).JobState, "COMPLETED");
        const out = await c.jobOutput(id);
        assert.match(out, /^WARN kernel\.xid +1 application-level Xid\(s\)/m);
        // Slurm strips the leading blanks of a `print` line.
        assert.match(out, /^fix: Usually a job's own fault/m);
        assert.doesNotMatch(out, /^(ok|skip) /m, "no report of passes for a job without a profile");
        assert.match(out, /^job ran$/m);
      } finally {
        await writeFakeBin(n.bin, "dmesg", { stdout: "" });
      }
    });

    await t.step(
      "a faulty GPU: the Prolog drains with a reason naming the check; the job is requeued held",
      async () => {
        await smi(GPU3_ERR);
        const id = await c.sbatch(["--gres=gpu:4", "--wrap", "echo should not run"]);
        const reason = await waitReason(c, /^mlagent: /);
        assert.match(
          reason,
          new RegExp(`^mlagent: gpu\\.health GPU 3 reports ERR!.*\\(prologue, job ${id}\\)$`),
        );
        assert.notEqual(reason, "Prolog error");
        const job = await waitJobReason(c, id, /launch_failed_requeued_held/);
        assert.equal(job.JobState, "PENDING");
        assert.equal(job.Priority, "0", "held: waits for `scontrol release` without nohold_on_prolog_fail");
        assert.equal(await c.jobOutput(id), "");
        assert.equal((await drainLog()).at(-1).by, "prologue");
        await c.cancel(id);
      },
    );

    await t.step(
      "health keeps the node drained while the GPU is bad, then resumes it once healthy",
      async () => {
        const sick = await healthHook();
        assert.equal(sick.code, 1, sick.stdout + sick.stderr);
        assert.equal(
          await waitReason(c, /^mlagent: gpu\.health GPU 3 ERR!$/),
          "mlagent: gpu.health GPU 3 ERR!",
        );
        assert.match(await c.nodeState(), /^drain/);
        await smi(HEALTHY);
        const well = await healthHook();
        assert.equal(well.code, 0, well.stdout + well.stderr);
        await c.waitNode(["idle"]);
        assert.deepEqual(await c.sinfoReasons(), []);
        assert.deepEqual((await drainLog()).slice(-2).map((l) => [l.by, l.action]), [[
          "health",
          "update-reason",
        ], [
          "health",
          "resume",
        ]]);
        const id = await c.sbatch(["--gres=gpu:1", "--wrap", "echo back"]);
        assert.equal((await c.waitJob(id, ["COMPLETED", "FAILED"], JOB_MS)).JobState, "COMPLETED");
      },
    );

    await t.step("health never lifts nor rewrites an admin's drain", async () => {
      await c.scontrol(["update", `nodename=${c.node}`, "state=drain", "reason=maintenance: PSU swap"]);
      await c.waitNode(["drained"]);
      assert.equal((await healthHook()).code, 0);
      await smi(GPU3_ERR);
      assert.equal((await healthHook()).code, 1);
      assert.deepEqual((await c.sinfoReasons()).map((r) => r.reason), ["maintenance: PSU swap"]);
      await smi(HEALTHY);
      await c.resumeNode();
    });

    await t.step(
      "with nohold_on_prolog_fail the requeued job waits unheld; health resumes the node",
      async () => {
        const conf = await Deno.readTextFile(c.conf);
        await Deno.writeTextFile(
          c.conf,
          conf.replace(/^SchedulerParameters=(.*)$/m, "SchedulerParameters=$1,nohold_on_prolog_fail"),
        );
        await c.scontrol(["reconfigure"]);
        await smi(GPU3_ERR);
        const id = await c.sbatch(["--gres=gpu:4", "--wrap", "echo should not run yet"]);
        await waitReason(c, /^mlagent: gpu\.health/);
        // mlagent drains while the Prolog still runs (the job RUNNING); the requeue comes when it exits.
        const job = await requeued(c, id);
        assert.doesNotMatch(job.Reason, /held/i);
        assert.notEqual(job.Priority, "0", "not held");
        await c.cancel(id);
        await smi(HEALTHY);
        assert.equal((await healthHook()).code, 0);
        await c.waitNode(["idle"]);
      },
    );

    await t.step(
      "the mlagent binary missing: the Prolog drains naming it; health resumes once it is back",
      async () => {
        await Deno.rename(bin, `${bin}.away`);
        const id = await c.sbatch(["--wrap", "echo should not run"]);
        const reason = await waitReason(c, /^mlagent: mlagent\.binary/);
        assert.equal(reason, `mlagent: mlagent.binary ${bin} missing (prologue)`);
        assert.match(await c.slurmdLog(), new RegExp(`mlagent\\.binary ${bin} is missing or not executable`));
        // Requeued, not held (nohold_on_prolog_fail is still on): it waits out Slurm's requeue delay.
        assert.notEqual((await requeued(c, id)).Priority, "0");
        await c.cancel(id);
        await Deno.rename(`${bin}.away`, bin);
        assert.equal((await healthHook()).code, 0);
        await c.waitNode(["idle"]);
        assert.deepEqual(await c.sinfoReasons(), []);
      },
    );
  },
});
