/**
 * `mlagent status` against a venv root holding one real venv and venvs in every other state (state files as
 * install writes them, bin/python linked to the real interpreter), real locks, a real doctor verdict, and
 * the Prometheus output parsed back line by line.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { acquire, namedLockSpec } from "../../agent/lock/mod.ts";
import { runMlagent } from "../support/cli.ts";
import { FIXTURES, tempDir, testEnv } from "../support/env.ts";
import { writeFakeBin } from "../support/fake_bin.ts";
import { spawnMlagent, waitUntil } from "../support/lock_helpers.ts";
import {
  type FakeNode,
  makeNode,
  realPython,
  testProfile,
  writeProfile,
  writeSitePackages,
  writeVenv,
} from "../support/node_states.ts";

interface Venv {
  name: string;
  condition: string;
  ready: boolean;
  message: string;
}

interface StatusDoc {
  ok: boolean;
  node: { host: string; boot_id: string | null; scheduler: string | null; job_id: string | null };
  venvs: Venv[];
  profiles: {
    name: string;
    ready: boolean;
    venv: Venv;
    models: { repo: string; complete: boolean; missing: string[] }[];
  }[];
  cache: { path: string; exists: boolean };
  locks: { name: string; status: string }[];
  doctor: { state: string; ok: boolean | null; checked_at: string | null; failed: string[] };
}

function ownStartTime(): number {
  const stat = Deno.readTextFileSync(`/proc/${Deno.pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
}

async function deadPid(): Promise<number> {
  const c = new Deno.Command("true").spawn();
  await c.status;
  return c.pid;
}

/** A root with one venv per state; returns the node and the profiles it was built for. */
async function populate(n: FakeNode) {
  const host = "status-host";
  const boot = Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
  const profiles = {
    real: testProfile("real"),
    ready: testProfile("ready-one"),
    installing: testProfile("installing-one"),
    dead: testProfile("dead-owner"),
    failed: testProfile("failed-one"),
    outdated: testProfile("outdated-one"),
    gone: testProfile("gone-one"),
  };
  for (const p of Object.values(profiles)) await writeProfile(n, p);

  // The one real venv: created by python3 -m venv (no pip: the state matters here, not the packages).
  const py = await realPython();
  const real = await new Deno.Command("python3", { args: ["-m", "venv", "--without-pip", `${n.root}/real`] })
    .output();
  assert.equal(real.code, 0, new TextDecoder().decode(real.stderr));
  await writeVenv(`${n.dir}/scratch`, "real", { status: "ready", profile: profiles.real });
  await Deno.mkdir(`${n.root}/real/.mlagent`, { recursive: true });
  await Deno.copyFile(`${n.dir}/scratch/real/.mlagent/state.json`, `${n.root}/real/.mlagent/state.json`);
  await writeSitePackages(`${n.root}/real`, py.version, profiles.real);

  await writeVenv(n.root, "ready-one", { status: "ready", profile: profiles.ready });
  await writeVenv(n.root, "installing-one", {
    status: "installing",
    profile: profiles.installing,
    owner: { host, pid: Deno.pid, pid_start_time: ownStartTime(), boot_id: boot },
  });
  await writeVenv(n.root, "dead-owner", {
    status: "installing",
    profile: profiles.dead,
    owner: { host, pid: await deadPid(), pid_start_time: null, boot_id: boot },
  });
  await writeVenv(n.root, "failed-one", { status: "failed", profile: profiles.failed });
  // Built for an older version of its profile: the profile on disk has changed since.
  await writeVenv(n.root, "outdated-one", {
    status: "ready",
    profile: testProfile("outdated-one", { stages: [{ name: "one", packages: ["mla-alpha==0.9"] }] }),
  });
  await writeVenv(n.root, "gone-one", { status: "ready", profile: profiles.gone, python: "gone" });
  await writeVenv(n.root, "corrupt-one", { status: "ready", profile: testProfile("corrupt-one") });
  await Deno.writeTextFile(`${n.root}/corrupt-one/.mlagent/state.json`, '{"status": "ready", "fingerp');
  await writeVenv(n.root, "wrong-shape", { status: "ready", profile: testProfile("wrong-shape") });
  await Deno.writeTextFile(`${n.root}/wrong-shape/.mlagent/state.json`, '{"status": "bogus"}');
  await Deno.mkdir(`${n.root}/by-hand/bin`, { recursive: true });
  await Deno.writeTextFile(`${n.root}/by-hand/pyvenv.cfg`, `home = ${py.executable}\n`);
  return { host, profiles };
}

Deno.test("status reports every venv state under the root, built for real, and exits by the named profiles", async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  const { host } = await populate(n);
  const vars = { ...n.vars, MLAGENT_HOSTNAME: host, SLURM_JOB_ID: "77" };

  const all = await runMlagent(["status", "--json"], { env: vars });
  assert.equal(all.code, 0, all.stderr);
  const doc = all.json<StatusDoc>();
  const cond = Object.fromEntries(doc.venvs.map((v) => [v.name, v.condition]));
  assert.deepEqual(cond, {
    "by-hand": "no-state",
    "corrupt-one": "corrupt-state",
    "dead-owner": "installing-dead-owner",
    "failed-one": "failed",
    "gone-one": "interpreter-gone",
    "installing-one": "installing",
    "outdated-one": "outdated",
    "ready-one": "ready",
    real: "ready",
    "wrong-shape": "corrupt-state",
  });
  assert.match(doc.venvs.find((v) => v.name === "corrupt-one")!.message, /state\.json is corrupt/);
  assert.deepEqual(doc.node.scheduler, "slurm");
  assert.equal(doc.node.job_id, "77");
  assert.equal(doc.node.host, host);
  assert.equal(doc.doctor.state, "missing");

  const ready = await runMlagent(["status", "real", "ready-one"], { env: vars });
  assert.equal(ready.code, 0, ready.stdout);
  assert.match(ready.stdout, /profile real: ready/);
  for (const name of ["failed-one", "outdated-one", "gone-one", "installing-one", "dead-owner"]) {
    const r = await runMlagent(["status", "--json", "real", name], { env: vars });
    assert.equal(r.code, 1, name);
    const p = r.json<StatusDoc>().profiles.find((x) => x.name === name)!;
    assert.equal(p.ready, false, name);
  }
  const unknown = await runMlagent(["status", "no-such-profile"], { env: vars });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown profile "no-such-profile"/);
});

Deno.test("status reports a profile's models: complete from the manifest, or which files are missing", async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  const withModels = testProfile("with-models", {
    models: [
      { repo: "acme/tiny", required_files: ["config.json"] },
      { repo: "acme/absent", required_files: ["model.safetensors"] },
    ],
  });
  await writeProfile(n, withModels);
  await writeVenv(n.root, "with-models", { status: "ready", profile: withModels });
  const dir = `${n.models}/acme/tiny`;
  await Deno.mkdir(`${dir}/.cache/huggingface`, { recursive: true });
  const body = '{"hidden_size": 8}';
  await Deno.writeTextFile(`${dir}/config.json`, body);
  const st = await Deno.stat(`${dir}/config.json`);
  const sha = createHash("sha256").update(body).digest("hex");
  // huggingface_hub's per-file record (commit, etag, time) plus mlagent's manifest, as a download leaves them.
  await Deno.mkdir(`${dir}/.cache/huggingface/download`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/.cache/huggingface/download/config.json.metadata`,
    `${"0".repeat(40)}\n${sha}\n${Date.now() / 1000}\n`,
  );
  await Deno.writeTextFile(
    `${dir}/.cache/huggingface/mlagent_manifest.json`,
    JSON.stringify({
      schema_version: 1,
      repo: "acme/tiny",
      revision: "main",
      commit: "0".repeat(40),
      completed_at: new Date().toISOString(),
      files: { "config.json": { size: body.length, etag: sha, sha256: sha, mtime_ms: st.mtime!.getTime() } },
    }),
  );
  const r = await runMlagent(["status", "--json", "with-models"], { env: n.vars });
  assert.equal(r.code, 1, r.stderr);
  const [p] = r.json<StatusDoc>().profiles;
  assert.equal(p.venv.condition, "ready");
  assert.deepEqual(p.models.map((m) => [m.repo, m.complete]), [["acme/tiny", true], ["acme/absent", false]]);
  assert.deepEqual(p.models[1].missing, ["model.safetensors"]);
  const text = await runMlagent(["status", "with-models"], { env: n.vars });
  assert.match(text.stdout, /FAIL model acme\/absent .*missing model\.safetensors/);
});

Deno.test("status shows held and stale locks and the last doctor verdict, and survives a corrupt verdict file", async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  await writeFakeBin(n.bin, "nvidia-smi", {
    stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  const env = testEnv({ vars: { ...n.vars } });
  const held = await acquire(env, namedLockSpec(env, "held-one", "test"), { handleSignals: false });
  try {
    // A lock run whose holder and command are SIGKILLed together leaves its record behind: stale.
    const p = spawnMlagent(["lock", "run", "stale-one", "--", "sleep", "30"], {
      env: n.vars,
      detached: true,
    });
    await waitUntil("owner record", async () => {
      try {
        return (await Deno.readTextFile(`${d.path}/locks/stale-one.lock.owner`)).includes("command_pid");
      } catch {
        return false;
      }
    });
    Deno.kill(-p.pid, "SIGKILL");
    await p.done;

    const doctor = await runMlagent(["doctor", "--json"], { env: n.vars });
    assert.ok(doctor.code === 0 || doctor.code === 1, doctor.stderr);
    const r = await runMlagent(["status", "--json"], { env: n.vars });
    assert.equal(r.code, 0, r.stderr);
    const doc = r.json<StatusDoc>();
    const locks = Object.fromEntries(doc.locks.map((l) => [l.name, l.status]));
    assert.equal(locks["held-one"], "held");
    assert.equal(locks["stale-one"], "stale-dead");
    assert.ok(doc.doctor.state === "ok" || doc.doctor.state === "failed");
    assert.ok(doc.doctor.checked_at);

    await Deno.writeTextFile(`${n.stateDir}/last-doctor.json`, "{not json");
    const c = await runMlagent(["status", "--json"], { env: n.vars });
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.json<StatusDoc>().doctor.state, "corrupt");
  } finally {
    await held.release();
  }
});
