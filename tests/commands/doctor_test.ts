/** `mlagent doctor` spawned exactly as a user runs it, against fake nvidia-smi binaries and this machine's Python. */
import assert from "node:assert/strict";
import { FIXTURES, REPO_ROOT, tempDir } from "../support/env.ts";
import { runMlagent } from "../support/cli.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";

const SMI = `${FIXTURES}/nvidia-smi`;

interface DoctorJson {
  schema_version: number;
  ok: boolean;
  profile: string | null;
  checks: { id: string; status: string; message: string; remedy: string | null }[];
  facts: {
    gpu: {
      driver_version: string | null;
      cuda_version: string | null;
      devices: { index: number; name: string; uuid: string; memory_total_mib: number }[];
    };
    python: { executable: string; version: string; include_dir: string; headers: boolean; venv: boolean };
    [k: string]: unknown;
  };
}

/** A node: temp HOME/state/venv root, a bin dir first on PATH, Debian's python only, no CUDA toolkit dirs. */
async function node(dir: string) {
  await Deno.mkdir(`${dir}/bin`, { recursive: true });
  await Deno.mkdir(`${dir}/proc`, { recursive: true });
  return {
    PATH: `${dir}/bin:/usr/bin:/bin`,
    HOME: dir,
    PYENV_ROOT: undefined,
    MLAGENT_STATE_DIR: `${dir}/state`,
    MLAGENT_ROOT: `${dir}/venvs`,
    MLAGENT_CUDA_SEARCH_PATH: `${dir}/no-cuda`,
    TMPDIR: undefined,
  };
}

const byId = (j: DoctorJson) => Object.fromEntries(j.checks.map((c) => [c.id, c]));

Deno.test("mlagent doctor --json on a GPU node reports driver, devices and Python, exits 0 and records the verdict", async () => {
  await using dir = await tempDir();
  const vars = await node(dir.path);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", {
    stdoutFile: `${SMI}/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  const r = await runMlagent(["doctor", "--json"], { env: vars });
  const j = r.json<DoctorJson>();
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(j.ok, true);
  assert.equal(j.facts.gpu.driver_version, "535.86.05");
  assert.equal(j.facts.gpu.cuda_version, "12.2");
  assert.deepEqual(
    j.facts.gpu.devices.map((d) => [d.index, d.name, d.uuid, d.memory_total_mib]),
    [[0, "NVIDIA GeForce RTX 4090", "GPU-71d1acc2-662d-2166-bf9f-65272d2fc437", 24564]],
  );
  assert.match(j.facts.python.executable, /^\/(usr\/)?bin\/python3/);
  assert.equal(j.facts.python.headers, true);
  assert.equal(j.facts.python.venv, true);
  assert.equal(j.facts.python.include_dir, "/usr/include/python3.11");
  for (const c of j.checks) {
    assert.deepEqual(Object.keys(c).slice(0, 4), ["id", "status", "message", "remedy"]);
    assert.ok(["pass", "warn", "fail", "skip"].includes(c.status));
  }
  const ids = j.checks.map((c) => c.id);
  for (
    const id of [
      "gpu.driver",
      "gpu.devices",
      "gpu.health",
      "cuda.toolkit",
      "python.interpreter",
      "python.headers",
      "python.venv",
      "disk.space",
      "tmpdir",
      "cache.fs",
      "cache.link_mode",
      "installer",
    ]
  ) {
    assert.ok(ids.includes(id), id);
  }
  assert.equal(byId(j)["gpu.driver"].status, "pass");
  assert.deepEqual(await fakeCalls(`${dir.path}/bin`, "nvidia-smi"), ["-q -x"]);
  const saved = JSON.parse(await Deno.readTextFile(`${dir.path}/state/last-doctor.json`));
  assert.equal(saved.ok, true);
  assert.equal(saved.checks.length, j.checks.length);
});

Deno.test("doctor --profile keeps its verdict apart: the node's verdict in status comes from a plain doctor", async () => {
  await using dir = await tempDir();
  const env = await node(dir.path);
  // A plain doctor on a CPU node: ok. For a GPU profile the same node fails; that must not paint the node.
  assert.equal((await runMlagent(["doctor"], { env })).code, 0);
  const forProfile = await runMlagent(["doctor", "--profile", "hunyuan-video-i2v"], { env });
  assert.equal(forProfile.code, 1);
  const saved = JSON.parse(await Deno.readTextFile(`${dir.path}/state/last-doctor.hunyuan-video-i2v.json`));
  assert.equal(saved.profile, "hunyuan-video-i2v");
  const s = await runMlagent(["status", "--json"], { env });
  const doctor = s.json<{ doctor: { ok: boolean; profile: string | null; file: string } }>().doctor;
  assert.equal(doctor.ok, true);
  assert.equal(doctor.profile, null);
  assert.match(doctor.file, /\/last-doctor\.json$/);
});

Deno.test("mlagent doctor on a CPU node warns about the GPU and still exits 0", async () => {
  await using dir = await tempDir();
  const r = await runMlagent(["doctor", "--json"], { env: await node(dir.path) });
  const j = r.json<DoctorJson>();
  assert.equal(r.code, 0, r.stdout);
  assert.equal(byId(j)["gpu.driver"].status, "warn");
  assert.match(byId(j)["gpu.driver"].message, /no NVIDIA driver/);
  assert.equal(j.facts.gpu.driver_version, null);
  assert.deepEqual(j.facts.gpu.devices, []);
});

Deno.test("mlagent doctor fails with exit 1 when nvidia-smi hangs past --timeout", async () => {
  await using dir = await tempDir();
  const vars = await node(dir.path);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", { sleepS: 30 });
  const t = performance.now();
  const r = await runMlagent(["doctor", "--json", "--timeout", "0.5"], { env: vars });
  assert.ok(performance.now() - t < 20_000);
  const j = r.json<DoctorJson>();
  assert.equal(r.code, 1);
  assert.equal(j.ok, false);
  assert.match(byId(j)["gpu.driver"].message, /did not answer within 500 ms/);
});

Deno.test("mlagent doctor text output lists each check and fails on a GPU reporting ERR!", async () => {
  await using dir = await tempDir();
  const vars = await node(dir.path);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", [
    { whenArgsContain: "-q -x", exitCode: 2, stderr: "Invalid combination of input arguments." },
    { whenArgsContain: "--query-gpu", exitCode: 2, stderr: "Invalid combination of input arguments." },
    { whenArgsContain: "-L", exitCode: 0, stdout: "" },
    { stdoutFile: `${SMI}/table/table_525.85.12_8xA30_one-GPU-ERR.txt` },
  ]);
  const r = await runMlagent(["doctor"], { env: vars });
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^ok {3}gpu\.driver +driver 525\.85\.12, CUDA 12\.0 \(nvidia-smi table\)$/m);
  assert.match(r.stdout, /^FAIL gpu\.health +GPU 3 reports ERR!/m);
  assert.match(r.stdout, /fix: drain the node/);
  assert.match(r.stdout, /FAILED: .* 1 failed/);
});

async function profileFile(dir: string, name: string, over: Record<string, unknown>): Promise<string> {
  const base = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/profiles/yolo.json`));
  delete base.$schema;
  const path = `${dir}/${name}.json`;
  await Deno.writeTextFile(path, JSON.stringify({ ...base, name, ...over }, null, 2));
  return path;
}

Deno.test("mlagent doctor --profile judges the node for it: a GPU profile fails on a CPU node", async () => {
  await using dir = await tempDir();
  const vars = await node(dir.path);
  const path = await profileFile(dir.path, "needs-gpu", { gpu: { required: true } });
  const r = await runMlagent(["doctor", "--json", "--profile", path], { env: vars });
  const j = r.json<DoctorJson>();
  assert.equal(r.code, 1, r.stderr);
  assert.equal(j.profile, "needs-gpu");
  assert.equal(byId(j)["gpu.driver"].status, "fail");
  assert.match(byId(j)["gpu.driver"].message, /profile needs-gpu requires a GPU/);
  assert.ok(["warn", "fail"].includes(byId(j)["cuda.wheels"].status));
});

Deno.test("mlagent doctor --profile picks the CUDA wheel variant the fake driver supports", async () => {
  await using dir = await tempDir();
  const vars = await node(dir.path);
  await writeFakeBin(`${dir.path}/bin`, "nvidia-smi", {
    stdoutFile: `${SMI}/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  const path = await profileFile(dir.path, "cuda-pick", {});
  const r = await runMlagent(["doctor", "--json", "--profile", path], { env: vars });
  const j = r.json<DoctorJson>();
  assert.equal(r.code, 0, r.stdout);
  assert.match(byId(j)["cuda.wheels"].message, /installs will use cu121 \(CUDA 12\.1\)/);
  assert.deepEqual(j.facts.cuda_variant, { name: "cu121", cuda: "12.1", support: "yes" });
});

Deno.test("mlagent doctor with an unknown profile or flag exits 2 with one line naming it", async () => {
  await using dir = await tempDir();
  const vars = await node(dir.path);
  const unknown = await runMlagent(["doctor", "--profile", "no-such-model"], { env: vars });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr.split("\n")[0], /unknown profile "no-such-model"/);
  const flag = await runMlagent(["doctor", "--frobnicate"], { env: vars });
  assert.equal(flag.code, 2);
  assert.match(flag.stderr.split("\n")[0], /frobnicate/);
  const timeout = await runMlagent(["doctor", "--timeout", "soon"], { env: vars });
  assert.equal(timeout.code, 2);
});

Deno.test("mlagent doctor still answers when the state dir cannot be written", async () => {
  await using dir = await tempDir();
  const vars = await node(dir.path);
  await Deno.writeTextFile(`${dir.path}/state-file`, "");
  const r = await runMlagent(["doctor", "--json"], {
    env: { ...vars, MLAGENT_STATE_DIR: `${dir.path}/state-file/sub` },
  });
  assert.equal(r.code, 0);
  assert.equal(r.json<DoctorJson>().ok, true);
});
