/**
 * The drain module's pure parts: reading the node's state from Slurm's and LSF's own output (Slurm's
 * captured from the real 22.05 the tests start), the reasons mlagent writes, and the decision table that
 * keeps mlagent off an admin's drain.
 */
import assert from "node:assert/strict";
import {
  commandsFor,
  makeReason,
  MAX_REASON_CHARS,
  parseBhostsLong,
  parseSlurmNode,
  planAction,
  type PlanInput,
  reasonCheckId,
  slurmGresGpus,
} from "../../agent/health/scheduler.ts";
import type { NodeState } from "../../agent/health/types.ts";
import { FIXTURES } from "../support/env.ts";

const slurm = (name: string) =>
  parseSlurmNode(Deno.readTextFileSync(`${FIXTURES}/slurm/scontrol_show_node_22.05.8_${name}.txt`), "vm");
const lsf = (name: string) =>
  parseBhostsLong(Deno.readTextFileSync(`${FIXTURES}/lsf/bhosts_l_${name}.txt`), "x");

Deno.test("parseSlurmNode() reads state, reason (without [user@time]) and gres from scontrol --oneliner", () => {
  const rows: [string, Partial<NodeState>][] = [
    ["idle", { state: "IDLE", drained: false, reason: null, by_mlagent: false, gres_gpus: 4 }],
    ["mixed", { state: "MIXED", drained: false, reason: null }],
    ["idle-drain-mlagent", {
      state: "IDLE+DRAIN",
      drained: true,
      reason: "mlagent: gpu.health GPU 3 ERR! (prologue, job 42)",
      by_mlagent: true,
    }],
    ["idle-drain-admin", { drained: true, reason: "maintenance: swap PSU Reason=x", by_mlagent: false }],
    ["mixed-drain-mlagent", {
      state: "MIXED+DRAIN",
      drained: true,
      reason: "mlagent: kernel.xid Xid 79 on 0000:61:00.0",
      by_mlagent: true,
    }],
  ];
  for (const [name, want] of rows) {
    const got = slurm(name);
    assert.ok(got, name);
    assert.equal(got.node, "vm");
    for (const [k, v] of Object.entries(want)) {
      assert.deepEqual(got[k as keyof NodeState], v, `${name}: ${k}`);
    }
  }
  assert.equal(parseSlurmNode("Node vm not found", "vm"), null);
  assert.equal(
    parseSlurmNode("NodeName=n1 State=DOWN*+DRAIN Reason=Not responding [slurm@t]", "n1")?.drained,
    true,
  );
  assert.equal(
    parseSlurmNode("NodeName=n1 State=DOWN* Reason=Not responding [slurm@t]", "n1")?.reason,
    "Not responding",
  );
});

Deno.test("slurmGresGpus() counts every typed and untyped gpu entry", () => {
  const rows: [string | undefined, number | null][] = [
    ["gpu:4", 4],
    ["gpu:a100:4(S:0-1)", 4],
    ["gpu:a100:2,gpu:v100:1", 3],
    ["gpu:a100:2(S:0),mps:200", 2],
    ["(null)", null],
    ["mps:100", null],
    [undefined, null],
  ];
  for (const [gres, want] of rows) assert.equal(slurmGresGpus(gres), want, String(gres));
});

Deno.test("parseBhostsLong() tells an admin's close from mlagent's and from LSF's own closed_ states", () => {
  assert.deepEqual(lsf("closed_Adm_mlagent"), {
    scheduler: "lsf",
    node: "gpu-a17",
    state: "closed_Adm",
    drained: true,
    reason: "mlagent: gpu.health GPU 3 ERR!",
    by_mlagent: true,
    gres_gpus: null,
  });
  assert.equal(lsf("closed_Adm_admin")?.reason, "PSU swap, ticket 4411");
  assert.equal(lsf("closed_Adm_admin")?.by_mlagent, false);
  assert.equal(lsf("ok")?.drained, false);
  assert.equal(lsf("closed_Full")?.drained, false, "a full host is LSF's own state, not a close");
  assert.equal(parseBhostsLong("Host gpu-9 is not found", "gpu-9"), null);
});

Deno.test("makeReason() writes one short line naming the check; reasonCheckId() reads it back", () => {
  assert.equal(
    makeReason("gpu.health", "GPU 3 uncorrectable ECC (2)"),
    "mlagent: gpu.health GPU 3 uncorrectable ECC (2)",
  );
  const long = makeReason("disk.space", "x".repeat(500) + "\nmore", "prologue, job 7");
  assert.ok(long.length <= MAX_REASON_CHARS, String(long.length));
  assert.match(long, /^mlagent: disk\.space x+\.\.\. \(prologue, job 7\)$/);
  assert.equal(reasonCheckId("mlagent: gpu.visible 1 of 2 GPUs (prologue, job 3)"), "gpu.visible");
  assert.equal(reasonCheckId("mlagent:kernel.xid Xid 79"), "kernel.xid");
  assert.equal(reasonCheckId("Prolog error"), null);
  assert.equal(reasonCheckId(null), null);
});

const inService: NodeState = {
  scheduler: "slurm",
  node: "gpu-7",
  state: "IDLE",
  drained: false,
  reason: null,
  by_mlagent: false,
  gres_gpus: 4,
};
const drainedBy = (reason: string): NodeState => ({
  ...inService,
  state: "IDLE+DRAIN",
  drained: true,
  reason,
  by_mlagent: reason.startsWith("mlagent:"),
});
const plan = (p: Partial<PlanInput>) =>
  planAction({
    scheduler: "slurm",
    node: "gpu-7",
    verdict: "healthy",
    reason: null,
    state: inService,
    stateProblem: null,
    judged: new Set(["gpu.health", "kernel.xid", "disk.space"]),
    enabled: true,
    dryRun: false,
    ...p,
  });

Deno.test("planAction() drains on a fault, lifts only its own judged drains, and leaves the rest alone", () => {
  const ecc = "mlagent: gpu.health GPU 3 uncorrectable ECC (2)";
  const rows: [string, Partial<PlanInput>, string, RegExp][] = [
    ["a fault on a node in service drains it", { verdict: "unhealthy", reason: ecc }, "drain", /node fault/],
    [
      "an admin's drain is kept whatever the fault",
      {
        verdict: "unhealthy",
        reason: ecc,
        state: drainedBy("PSU swap"),
      },
      "none",
      /someone else.*"PSU swap"/,
    ],
    [
      "mlagent's own drain for the same fault is left",
      {
        verdict: "unhealthy",
        reason: ecc,
        state: drainedBy(ecc),
      },
      "none",
      /already drained by mlagent/,
    ],
    [
      "mlagent's drain for another fault is reworded",
      {
        verdict: "unhealthy",
        reason: ecc,
        state: drainedBy("mlagent: kernel.xid Xid 79 on 0000:61:00.0"),
      },
      "update-reason",
      /now is another/,
    ],
    [
      "healthy again lifts mlagent's drain for a judged check",
      {
        state: drainedBy("mlagent: kernel.xid Xid 79 on 0000:61:00.0"),
      },
      "resume",
      /healthy again/,
    ],
    ["healthy never lifts an admin's drain", { state: drainedBy("maintenance") }, "none", /left drained/],
    [
      "a prologue drain for a check health does not judge stays",
      {
        state: drainedBy("mlagent: venv.ready interpreter-gone (prologue, job 9)"),
      },
      "none",
      /does not judge: resume it by hand/,
    ],
    [
      "cannot judge: nothing, even on mlagent's own drain",
      {
        verdict: "unknown",
        unknownWhy: "gpu.driver",
        state: drainedBy(ecc),
      },
      "none",
      /cannot judge this node \(gpu.driver\)/,
    ],
    [
      "state unreadable: nothing",
      { verdict: "unhealthy", reason: ecc, state: null, stateProblem: "scontrol is not on PATH" },
      "none",
      /could not read the node's state \(scontrol is not on PATH\)/,
    ],
    ["no scheduler: nothing", { scheduler: null, verdict: "unhealthy", reason: ecc }, "none", /no scheduler/],
    [
      "--no-drain says what it would do",
      { verdict: "unhealthy", reason: ecc, enabled: false },
      "none",
      /not done \(--no-drain\)/,
    ],
    ["healthy and in service: nothing", {}, "none", /in service/],
  ];
  for (const [name, input, kind, why] of rows) {
    const a = plan(input);
    assert.equal(a.kind, kind, `${name}: ${a.why}`);
    assert.match(a.why, why, name);
    assert.equal(a.commands.length, kind === "none" ? 0 : 1, name);
  }
  const dry = plan({
    verdict: "unhealthy",
    reason: ecc,
    state: null,
    stateProblem: "no answer",
    dryRun: true,
  });
  assert.equal(dry.kind, "drain", "a dry run shows the commands as for a node in service");
  assert.equal(dry.dry_run, true);
});

Deno.test("commandsFor() is the scheduler's own argv, the reason one argument", () => {
  const r = "mlagent: gpu.health GPU 3 ERR!";
  assert.deepEqual(commandsFor("slurm", "gpu-7", "drain", r), [
    ["scontrol", "update", "nodename=gpu-7", "state=drain", `reason=${r}`],
  ]);
  assert.deepEqual(commandsFor("slurm", "gpu-7", "resume", null), [
    ["scontrol", "update", "nodename=gpu-7", "state=resume"],
  ]);
  assert.deepEqual(commandsFor("lsf", "gpu-7", "drain", r), [["badmin", "hclose", "-C", r, "gpu-7"]]);
  assert.deepEqual(commandsFor("lsf", "gpu-7", "resume", null), [
    ["badmin", "hopen", "-C", "mlagent: healthy again", "gpu-7"],
  ]);
  assert.deepEqual(commandsFor("lsf", "gpu-7", "none", null), []);
});
