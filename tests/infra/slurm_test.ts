/**
 * The Slurm harness against itself: jobs run and their output is read, fake GPUs reach jobs, a failing Prolog
 * drains the node (with the reason admins see) and requeues the job, and a script's drain reason shows in
 * `sinfo -R`. One cluster serves the steps; a second checks nohold_on_prolog_fail.
 */
import assert from "node:assert/strict";
import { isAlive, pollUntil, processesUsing } from "../support/daemon.ts";
import { tempDir } from "../support/env.ts";
import { writeFakeBin } from "../support/fake_bin.ts";
import { slurmAvailable, type SlurmCluster, type SlurmRecord, startSlurm } from "../support/slurm.ts";

// Needs root and the slurm-wlm + munge packages (.ci/run installs them where missing).
const available = slurmAvailable();

/** Fails (exit 1, printing why) while FLAG exists; records its environment and what `smoke-probe` resolves to. */
const PROLOG = `#!/bin/sh
env > "$SMOKE_OUT/prolog.$SLURM_JOB_ID.env"
command -v smoke-probe > "$SMOKE_OUT/prolog.$SLURM_JOB_ID.which"
if [ -e "$SMOKE_OUT/fail-prolog" ]; then
  echo "smoke prolog refuses job $SLURM_JOB_ID"
  exit 1
fi
exit 0
`;
const TASK_PROLOG = `#!/bin/sh
echo "print task prolog ran for $SLURM_JOB_ID"
echo "export SMOKE_TASK=from-task-prolog"
`;
const HEALTH = `#!/bin/sh
date +%s > "$SMOKE_OUT/health.ran"
`;

function waitJobReason(cluster: SlurmCluster, id: string, reason: RegExp): Promise<SlurmRecord> {
  return pollUntil(async () => {
    const job = await cluster.job(id);
    return job && reason.test(job.Reason) ? job : undefined;
  }, {
    timeoutMs: 20_000,
    everyMs: 100,
    onTimeout: async () =>
      new Error(`job ${id} never had Reason ${reason}: ${JSON.stringify(await cluster.job(id))}`),
  });
}

Deno.test({
  name: "startSlurm() runs a one-node cluster with fake GPUs, hooks, drains and resumes",
  ignore: !available,
  fn: async (t) => {
    await using work = await tempDir("mlagent-slurm-smoke-");
    const out = `${work.path}/out`;
    const bin = `${work.path}/bin`;
    await Deno.mkdir(out, { mode: 0o777 });
    await Deno.chmod(out, 0o777);
    await Deno.mkdir(bin);
    await writeFakeBin(bin, "smoke-probe", { stdout: "probe" });
    await Deno.writeTextFile(`${work.path}/prolog.sh`, PROLOG, { mode: 0o755 });
    await Deno.writeTextFile(`${work.path}/task_prolog.sh`, TASK_PROLOG, { mode: 0o755 });
    await Deno.writeTextFile(`${work.path}/health.sh`, HEALTH, { mode: 0o755 });
    await Deno.chmod(work.path, 0o755);

    await using cluster = await startSlurm({
      gpus: 2,
      prolog: `${work.path}/prolog.sh`,
      taskProlog: `${work.path}/task_prolog.sh`,
      healthCheck: `${work.path}/health.sh`,
      hookPath: `${bin}:/usr/bin:/bin`,
      hookVars: { SMOKE_OUT: out },
    });
    console.log(`Slurm node idle ${cluster.startupMs} ms after start`);

    await t.step("the HealthCheckProgram ran at slurmd start-up", async () => {
      await pollUntil(() => Deno.stat(`${out}/health.ran`).then(() => true, () => undefined), {
        timeoutMs: 5000,
        onTimeout: () => new Error("health check never ran"),
      });
    });

    await t.step(
      "a batch job runs; its output, the TaskProlog's and the Prolog's environment are read",
      async () => {
        const id = await cluster.sbatch([
          "--wrap",
          'echo "hello from $SLURM_JOB_ID"; echo "task=$SMOKE_TASK"',
        ]);
        const job = await cluster.waitJob(id, ["COMPLETED", "FAILED"]);
        assert.equal(job.JobState, "COMPLETED", JSON.stringify(job));
        const text = await cluster.jobOutput(id);
        assert.match(text, new RegExp(`^task prolog ran for ${id}$`, "m"));
        assert.match(text, new RegExp(`^hello from ${id}$`, "m"));
        assert.match(text, /^task=from-task-prolog$/m);
        const prologEnv = await Deno.readTextFile(`${out}/prolog.${id}.env`);
        assert.match(prologEnv, new RegExp(`^PATH=${bin}:/usr/bin:/bin$`, "m"));
        assert.match(prologEnv, new RegExp(`^SLURM_CONF=${cluster.conf}$`, "m"));
        assert.equal((await Deno.readTextFile(`${out}/prolog.${id}.which`)).trim(), `${bin}/smoke-probe`);
      },
    );

    await t.step("a job asking for --gres=gpu:1 sees CUDA_VISIBLE_DEVICES and SLURM_JOB_GPUS", async () => {
      const show = 'echo "cvd=$CUDA_VISIBLE_DEVICES jg=$SLURM_JOB_GPUS"';
      const one = await cluster.sbatch(["--gres=gpu:1", "--wrap", show]);
      assert.equal((await cluster.waitJob(one, ["COMPLETED", "FAILED"])).JobState, "COMPLETED");
      const two = await cluster.sbatch(["--gres=gpu:2", "--wrap", show]);
      assert.equal((await cluster.waitJob(two, ["COMPLETED", "FAILED"])).JobState, "COMPLETED");
      assert.match(await cluster.jobOutput(one), /^cvd=[01] jg=[01]$/m);
      assert.match(await cluster.jobOutput(two), /^cvd=0,1 jg=0,1$/m);
      const prologEnv = await Deno.readTextFile(`${out}/prolog.${two}.env`);
      assert.match(prologEnv, /^SLURM_JOB_GPUS=0,1$/m, "the Prolog is told the job's GPUs");
    });

    await t.step(
      "a Prolog exiting 1 drains the node with Reason=Prolog error and requeues the job held",
      async () => {
        await Deno.writeTextFile(`${out}/fail-prolog`, "");
        const id = await cluster.sbatch(["--wrap", "echo should not run"]);
        assert.equal(await cluster.waitNode(["drained", "draining"]), "drained");
        const reasons = await cluster.sinfoReasons();
        assert.deepEqual(reasons.map((r) => [r.node, r.reason]), [[cluster.node, "Prolog error"]]);
        const job = await waitJobReason(cluster, id, /launch_failed_requeued_held/);
        assert.equal(job.JobState, "PENDING");
        assert.equal(job.Priority, "0", "held");
        assert.match(await cluster.slurmdLog(), new RegExp(`smoke prolog refuses job ${id}`));
        assert.equal(await cluster.jobOutput(id), "");
        await Deno.remove(`${out}/fail-prolog`);
        await cluster.cancel(id);
      },
    );

    await t.step("resumeNode() brings the drained node back and jobs run again", async () => {
      await cluster.resumeNode();
      assert.equal(await cluster.nodeState(), "idle");
      assert.deepEqual(await cluster.sinfoReasons(), []);
      const id = await cluster.sbatch(["--wrap", "echo back"]);
      assert.equal((await cluster.waitJob(id, ["COMPLETED", "FAILED"])).JobState, "COMPLETED");
    });

    await t.step("a script's `scontrol update ... state=drain reason=...` shows in sinfo -R", async () => {
      const script = `${work.path}/drain.sh`;
      await Deno.writeTextFile(
        script,
        `#!/bin/sh\nexec scontrol update nodename="$1" state=drain reason="mlagent: x"\n`,
        { mode: 0o755 },
      );
      const r = await cluster.run([script, cluster.node]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await cluster.waitNode(["drained"]), "drained");
      const [row] = await cluster.sinfoReasons();
      assert.equal(row.node, cluster.node);
      assert.equal(row.reason, "mlagent: x");
      assert.equal(row.user, "root");
      assert.match((await cluster.nodeInfo()).State, /DRAIN/);
      await cluster.resumeNode();
      assert.deepEqual(await cluster.sinfoReasons(), []);
    });
  },
});

Deno.test({
  name:
    "startSlurm({ noHoldOnPrologFail }) requeues without holding; disposal stops daemons and running jobs",
  ignore: !available,
  fn: async () => {
    await using work = await tempDir("mlagent-slurm-smoke-");
    const flag = `${work.path}/fail-prolog`;
    await Deno.writeTextFile(`${work.path}/prolog.sh`, `#!/bin/sh\n[ -e ${flag} ] && exit 1\nexit 0\n`, {
      mode: 0o755,
    });
    await Deno.writeTextFile(flag, "");
    await Deno.chmod(work.path, 0o777);
    await using cluster = await startSlurm({
      gpus: 0,
      prolog: `${work.path}/prolog.sh`,
      noHoldOnPrologFail: true,
    });
    const id = await cluster.sbatch(["--wrap", "true"]);
    await cluster.waitNode(["drained"]);
    const job = await waitJobReason(cluster, id, /^(?!None$)/);
    assert.equal(job.JobState, "PENDING");
    assert.doesNotMatch(job.Reason, /held/i, job.Reason);
    assert.notEqual(job.Priority, "0", "not held");
    await cluster.cancel(id);

    await Deno.remove(flag);
    await cluster.resumeNode();
    const pidFile = `${work.path}/job.pid`;
    const long = await cluster.sbatch(["--wrap", `echo $$ > ${pidFile}; exec sleep 300`]);
    await cluster.waitJob(long, ["RUNNING"]);
    const jobPid = Number(
      await pollUntil(() => Deno.readTextFile(pidFile).then((t) => t.trim() || undefined, () => undefined), {
        timeoutMs: 10_000,
        onTimeout: () => new Error("the job never wrote its pid"),
      }),
    );
    const pids = [...cluster.pids, jobPid];
    await cluster.stop();
    assert.deepEqual(pids.filter(isAlive), [], "munged, slurmctld, slurmd and the running job are gone");
    assert.deepEqual(processesUsing(cluster.dir), []);
    assert.equal(await Deno.stat(cluster.dir).then(() => true, () => false), false);
  },
});
