/**
 * `mlagent health` as root's cron runs it under LSF: real processes, a fake nvidia-smi printing captured
 * outputs, and fake `bhosts`/`badmin` that log their argv and keep the host's state, so a test proves which
 * scheduler commands ran (and that none ran when health could not judge, or crashed). Slurm's side runs
 * against the real Slurm in tests/scheduler/slurm_test.ts.
 */
import assert from "node:assert/strict";
import { healthCommand } from "../../agent/commands/health.ts";
import type { Env } from "../../agent/core/env.ts";
import { runHealth } from "../../agent/health/mod.ts";
import type { HealthReport } from "../../agent/health/types.ts";
import { runMlagent } from "../support/cli.ts";
import { FIXTURES, tempDir, testEnv } from "../support/env.ts";
import { writeFakeBin } from "../support/fake_bin.ts";
import { type FakeNode, makeNode } from "../support/node_states.ts";

const SMI = `${FIXTURES}/nvidia-smi`;
const ERR_TABLE = `${SMI}/table/table_525.85.12_8xA30_one-GPU-ERR.txt`;
const ONE_GPU_XML = `${SMI}/xml/q_x_535.86.05_1xRTX4090.xml`;
const HOST = "gpu-a17";

/** bhosts -l prints the host's state from files; badmin hclose/hopen changes them. Both log their argv. */
async function fakeLsf(n: FakeNode, status = "ok", comment = "") {
  const lsf = `${n.dir}/lsf`;
  await Deno.mkdir(lsf, { recursive: true });
  await Deno.writeTextFile(`${lsf}/status`, status);
  await Deno.writeTextFile(`${lsf}/comment`, comment);
  await Deno.writeTextFile(
    `${n.bin}/bhosts`,
    `#!/bin/sh
printf '%s\\n' "$*" >> '${lsf}/bhosts.calls'
[ "$1" = "-l" ] || exit 255
printf 'HOST  %s\\n' "$2"
printf 'STATUS           CPUF  JL/U    MAX  NJOBS    RUN  SSUSP  USUSP    RSV DISPATCH_WINDOW\\n'
printf '%-14s 60.00     -     64      0      0      0      0      0      -\\n\\n' "$(cat '${lsf}/status')"
c="$(cat '${lsf}/comment')"
[ -n "$c" ] && printf ' ADMIN ACTION COMMENT: "%s"\\n' "$c"
exit 0
`,
    { mode: 0o755 },
  );
  await Deno.writeTextFile(
    `${n.bin}/badmin`,
    `#!/bin/sh
for a in "$@"; do printf '[%s]' "$a"; done >> '${lsf}/badmin.calls'; echo >> '${lsf}/badmin.calls'
case "$1" in
  hclose) [ "$2" = "-C" ] && printf '%s' "$3" > '${lsf}/comment'; echo closed_Adm > '${lsf}/status' ;;
  hopen) echo ok > '${lsf}/status'; : > '${lsf}/comment' ;;
  *) exit 255 ;;
esac
`,
    { mode: 0o755 },
  );
  const text = (f: string) => Deno.readTextFile(`${lsf}/${f}`).then((t) => t.trim(), () => "");
  return {
    badminCalls: async () => (await text("badmin.calls")).split("\n").filter(Boolean),
    status: () => text("status"),
    comment: () => text("comment"),
  };
}

async function lsfNode(dir: string, smi: Parameters<typeof writeFakeBin>[2], status = "ok", comment = "") {
  const n = await makeNode(dir);
  await writeFakeBin(n.bin, "nvidia-smi", smi);
  await writeFakeBin(n.bin, "dmesg", { stdout: "" });
  const lsf = await fakeLsf(n, status, comment);
  return { n, lsf, vars: { ...n.vars, MLAGENT_HOSTNAME: HOST, LSF_ENVDIR: `${dir}/lsf` } };
}

const health = (vars: Record<string, string>, args: string[] = []) =>
  runMlagent(["health", "--json", "--timeout", "20", ...args], { env: vars });

Deno.test("health under LSF closes the host for a GPU with ERR!, naming the check, and reopens it once healthy", async () => {
  await using d = await tempDir();
  const { n, lsf, vars } = await lsfNode(d.path, { stdoutFile: ERR_TABLE });
  const sick = await health(vars);
  const rep = sick.json<HealthReport>();
  assert.equal(sick.code, 1, sick.stderr);
  assert.equal(rep.verdict, "unhealthy");
  assert.equal(rep.scheduler, "lsf", "LSF_ENVDIR picks LSF");
  assert.equal(rep.action.kind, "drain");
  assert.equal(rep.action.done, true, JSON.stringify(rep.action));
  assert.deepEqual(await lsf.badminCalls(), [`[hclose][-C][mlagent: gpu.health GPU 3 ERR!][${HOST}]`]);
  assert.equal(await lsf.status(), "closed_Adm");
  const log = (await Deno.readTextFile(`${n.stateDir}/drain.log`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(log.at(-1).action, "drain");
  assert.equal(log.at(-1).by, "health");

  await writeFakeBin(n.bin, "nvidia-smi", { stdoutFile: ONE_GPU_XML });
  const well = await health(vars);
  assert.equal(well.code, 0, well.stdout);
  assert.equal(well.json<HealthReport>().action.kind, "resume");
  assert.equal((await lsf.badminCalls()).at(-1), `[hopen][-C][mlagent: healthy again][${HOST}]`);
  assert.equal(await lsf.status(), "ok");

  const again = await health(vars);
  assert.equal(again.json<HealthReport>().action.kind, "none");
  assert.equal((await lsf.badminCalls()).length, 2, "a healthy open host is left alone");
});

Deno.test("health never reopens nor re-closes a host an admin closed", async () => {
  await using d = await tempDir();
  const { n, lsf, vars } = await lsfNode(
    d.path,
    { stdoutFile: ERR_TABLE },
    "closed_Adm",
    "PSU swap, ticket 4411",
  );
  const sick = await health(vars);
  assert.equal(sick.code, 1);
  assert.match(sick.json<HealthReport>().action.why, /someone else.*PSU swap/);
  await writeFakeBin(n.bin, "nvidia-smi", { stdoutFile: ONE_GPU_XML });
  const well = await health(vars);
  assert.equal(well.code, 0);
  assert.match(well.json<HealthReport>().action.why, /left drained/);
  assert.deepEqual(await lsf.badminCalls(), []);
  assert.equal(await lsf.comment(), "PSU swap, ticket 4411");
});

Deno.test("health --dry-run prints the command it would run and runs none; --no-drain only reports", async () => {
  await using d = await tempDir();
  const { lsf, vars } = await lsfNode(d.path, { stdoutFile: ERR_TABLE });
  const dry = await runMlagent(["health", "--dry-run"], { env: vars });
  assert.equal(dry.code, 1);
  assert.match(
    dry.stdout,
    new RegExp(`^would run: badmin hclose -C 'mlagent: gpu.health GPU 3 ERR!' ${HOST}$`, "m"),
  );
  const report = await health(vars, ["--no-drain"]);
  assert.match(report.json<HealthReport>().action.why, /not done \(--no-drain\)/);
  assert.deepEqual(await lsf.badminCalls(), []);
  assert.equal(await lsf.status(), "ok");
});

Deno.test("health that cannot read nvidia-smi's answer says so (exit 4) and leaves mlagent's own close as it is", async () => {
  await using d = await tempDir();
  const { lsf, vars } = await lsfNode(
    d.path,
    { stdout: "Segmentation fault\n" },
    "closed_Adm",
    "mlagent: gpu.health GPU 3 ERR!",
  );
  const r = await health(vars);
  const rep = r.json<HealthReport>();
  assert.equal(r.code, 4, r.stdout);
  assert.equal(rep.verdict, "unknown");
  assert.equal(rep.checks.find((c) => c.id === "gpu.driver")?.status, "unknown");
  assert.match(
    rep.action.why,
    /cannot judge this node \(gpu\.driver, gpu\.count, gpu\.health\): left as it is/,
  );
  assert.deepEqual(await lsf.badminCalls(), [], "no hopen for a node nobody could judge");
});

Deno.test("health writes its report for the fleet (--output DIR/) and its last report to the state dir", async () => {
  await using d = await tempDir();
  const { n, vars } = await lsfNode(d.path, { stdoutFile: ONE_GPU_XML });
  await Deno.mkdir(`${d.path}/fleet`);
  const r = await health(vars, ["--no-drain", "--output", `${d.path}/fleet/`]);
  assert.equal(r.code, 0, r.stderr);
  const written = JSON.parse(await Deno.readTextFile(`${d.path}/fleet/${HOST}.health.json`));
  assert.equal(written.verdict, "healthy");
  assert.equal(written.schema_version, 1);
  assert.equal(JSON.parse(await Deno.readTextFile(`${n.stateDir}/last-health.json`)).verdict, "healthy");
  assert.deepEqual((await Array.fromAsync(Deno.readDir(`${d.path}/fleet`))).map((e) => e.name), [
    `${HOST}.health.json`,
  ]);
});

Deno.test("health bad input: exit 2 naming the flag", async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  const rows: [string[], RegExp, boolean][] = [
    [["--scheduler", "pbs"], /unknown --scheduler "pbs"/, true],
    [["--drain", "--no-drain"], /contradict/, true],
    [["--timeout", "0"], /--timeout must be a number >= 1/, false],
    [["--drain", "--scheduler", "auto"], /--drain needs a scheduler/, true],
    [["--output", `${d.path}/no-such-dir/`], /--output: .*no-such-dir is not a directory/, true],
  ];
  for (const [args, msg, hint] of rows) {
    // No scontrol or badmin on this PATH, so auto finds none.
    const r = await runMlagent(["health", ...args], { env: { ...n.vars, PATH: n.bin } });
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    if (hint) assert.match(r.stderr, /^hint: /m);
  }
});

/** A real Env for an LSF node whose runner or filesystem misbehaves on cue. */
function envFor(vars: Record<string, string>, over: Partial<Env> = {}) {
  return testEnv({ vars: { ...Deno.env.toObject(), ...vars }, ...over });
}

Deno.test("a check that misses the deadline (a venv root read that never answers) makes the verdict unknown: nothing changes", async () => {
  await using d = await tempDir();
  const { n, lsf, vars } = await lsfNode(
    d.path,
    { stdoutFile: ONE_GPU_XML },
    "closed_Adm",
    "mlagent: kernel.xid Xid 79 on 0000:01:00",
  );
  const base = envFor(vars);
  /** A directory listing that never answers, as one on a dead NFS mount after its stat did. */
  async function* neverAnswers(): AsyncGenerator<Deno.DirEntry> {
    yield await new Promise<Deno.DirEntry>(() => {});
  }
  const env = envFor(vars, {
    fs: {
      ...base.fs,
      readDir: (p: string | URL) => String(p) === n.root ? neverAnswers() : base.fs.readDir(p),
    } as Env["fs"],
  });
  const r = await runHealth(env, {
    scheduler: "lsf",
    node: HOST,
    drain: true,
    dryRun: false,
    timeoutMs: 3000,
  });
  assert.equal(r.verdict, "unknown", JSON.stringify(r.checks));
  const v = r.checks.find((c) => c.id === "venv.damaged")!;
  assert.equal(v.status, "unknown");
  assert.equal(v.timed_out, true);
  assert.equal(r.action.kind, "none");
  assert.deepEqual(await lsf.badminCalls(), []);
});

Deno.test("mlagent's own crash is never the node's fault: unknown, exit 4, no scheduler command", async () => {
  await using d = await tempDir();
  const { lsf, vars } = await lsfNode(d.path, { stdoutFile: ERR_TABLE });
  const base = envFor(vars);
  const env = envFor(vars, {
    run: (argv, opts) => {
      if (argv[0] === "bhosts") throw new TypeError("simulated bug in the runner");
      return base.run(argv, opts);
    },
  });
  const out = await healthCommand.run(env, ["--timeout", "10"]);
  assert.equal(out.exitCode, 4);
  assert.equal(out.json.verdict, "unknown");
  assert.match(String(out.json.internal_error), /simulated bug/);
  assert.match(out.text, /CANNOT JUDGE/);
  assert.deepEqual(await lsf.badminCalls(), []);
});
