/**
 * `mlagent install` end to end: spawned main.ts, real `python -m venv`, real pip, a local PEP 503 index
 * serving wheels and sdists built by tests/support/pypi.ts. Venv creation costs seconds, so one venv is
 * carried through a sequence of steps where the step is not about creation.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { filesUnder, hermeticVars, installVars, pathExists, tempDir, testEnv } from "../support/env.ts";
import { venvLockSpec, withLock } from "../../agent/lock/mod.ts";
import { mlagentArgv } from "../support/cli.ts";
import { type LocalIndex, startIndex, testDists } from "../support/pypi.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";
import { smallRepo } from "../support/hf_server.ts";
import { testProfile } from "../support/node_states.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import { pythonsWithVenv } from "../support/pythons.ts";
import { groupAlive, waitForNumberIn } from "../support/procs.ts";

const PYTHONS = await pythonsWithVenv();

interface StageOut {
  name: string;
  action: string;
  attempts: number;
}
interface Report {
  ok: boolean;
  action: string;
  status: string;
  waited_for_other: boolean;
  stages: StageOut[];
  packages: Record<string, string>;
  verify: { name: string; ok: boolean }[];
  installer: string;
  models: { repo: string; ok: boolean; skipped: boolean }[];
  error?: {
    message: string;
    stage?: string;
    verify_step?: string;
    index_url?: string;
    reach_failure?: string;
  };
}

const profile = (name: string, stages: Profile["stages"], verify: Profile["verify"] = []) =>
  testProfile(name, { stages, verify });

const BASE_STAGES = [
  { name: "helper", packages: ["mla-helper==1.0"] },
  { name: "chain", packages: ["mla-alpha==1.0"] },
  // Builds an sdist whose backend imports mla_helper: works only without build isolation, after "helper".
  { name: "build", packages: ["mla-needs-helper==1.0"], no_build_isolation: true },
];
const IMPORTS = { name: "imports", code: "import mla_alpha, mla_beta, mla_gamma, mla_needs_helper" };

function setup(dir: string, index: LocalIndex) {
  const vars = installVars(dir, index.url);
  const write = async (file: string, p: unknown) => {
    await Deno.writeTextFile(`${dir}/${file}`, JSON.stringify(p, null, 2));
    return `${dir}/${file}`;
  };
  const install = async (file: string, args: string[] = [], env: Record<string, string> = {}) => {
    const r = await runMlagent(["install", file, "--json", ...args], {
      env: { ...vars, ...env },
      timeoutMs: 120_000,
    });
    return { r, report: r.json<Report>() };
  };
  return { vars, write, install };
}

const readState = async (venv: string) => JSON.parse(await Deno.readTextFile(`${venv}/.mlagent/state.json`));

Deno.test("install builds a venv stage by stage, then a rerun, a changed profile, a failed verify, a network fault and --force behave", async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using tmp = await tempDir("mlagent-install-");
  const dir = tmp.path;
  const { vars, write, install } = setup(dir, index);
  const venv = `${vars.MLAGENT_ROOT}/seq`;
  const file = await write("seq.json", profile("seq", BASE_STAGES, [IMPORTS]));
  let changed = BASE_STAGES;

  await t.step("--dry-run prints every installer command and writes nothing", async () => {
    const r = await runMlagent(["install", file, "--dry-run"], { env: vars });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /-m pip install .*--index-url http:\/\/127\.0\.0\.1:\d+\/simple\/ mla-helper==1\.0/,
    );
    assert.match(r.stdout, /--no-build-isolation mla-needs-helper==1\.0/);
    assert.match(r.stdout, /python: +\S+ 3\.\d+/);
    assert.equal(await pathExists(vars.MLAGENT_ROOT), false, "venv root created by a dry run");
    assert.equal(await pathExists(vars.MLAGENT_CACHE_DIR), false, "cache created by a dry run");
    assert.equal(index.requests.length, 0, "a dry run contacted the index");
  });

  await t.step(
    "first install runs the stages in order and the sdist builds against the earlier stage",
    async () => {
      const { r, report } = await install(file);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(report.action, "created");
      assert.deepEqual(report.stages.map((s) => [s.name, s.action]), [
        ["helper", "installed"],
        ["chain", "installed"],
        ["build", "installed"],
      ]);
      assert.equal(report.packages["mla-gamma"], "1.0", "dependency chain resolved");
      assert.equal(report.packages["mla-needs-helper"], "1.0");
      const state = await readState(venv);
      assert.equal(state.status, "ready");
      assert.equal(state.packages["mla-alpha"], "1.0");
      assert.equal(state.owner.pid > 0, true);
    },
  );

  await t.step("an unchanged rerun returns at once without running the installer", async () => {
    const before = index.requests.length;
    const { r, report } = await install(file);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(report.action, "none");
    assert.equal(index.requests.length, before, "the installer (or a probe) contacted the index");
  });

  await t.step("a changed stage reinstalls it and the stages after it only", async () => {
    changed = BASE_STAGES.map((s) => s.name === "chain" ? { ...s, packages: ["mla-alpha==2.0"] } : s);
    await write("seq.json", profile("seq", changed, [IMPORTS]));
    // The index fails the first two requests for the changed package: mlagent retries with backoff.
    index.failPath("/simple/mla-alpha/", 2, { status: 503 });
    // And the wheel download fails once with pip's own retries off: the classifier says network, the
    // stage is retried.
    index.failPath("/files/mla_alpha-2.0", 1, { status: 503 });
    const mark = index.requests.length;
    const { r, report } = await install(file, [], { PIP_RETRIES: "0" });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(report.action, "updated");
    assert.deepEqual(report.stages.map((s) => [s.name, s.action]), [
      ["helper", "skipped"],
      ["chain", "installed"],
      ["build", "installed"],
    ]);
    assert.equal(report.packages["mla-alpha"], "2.0");
    const alpha = index.requests.slice(mark).filter((q) => q.path === "/simple/mla-alpha/").map((q) =>
      q.status
    );
    // mlagent's own probe met the faults and retried; pip then found the index healthy.
    assert.deepEqual(alpha.slice(0, 3), [503, 503, 200]);
    const wheel = index.requests.slice(mark).filter((q) => q.path.startsWith("/files/mla_alpha-2.0")).map((
      q,
    ) => q.status);
    assert.deepEqual(wheel, [503, 200]);
    assert.match(r.stderr, /index .*mla-alpha.*attempt 2\/3/);
    assert.match(r.stderr, /stage chain: network failure \(http-5xx\); attempt 2\/3/);
    assert.equal(report.stages.find((s) => s.name === "chain")!.attempts, 2);
  });

  await t.step(
    "a failing verify fails the install naming the step and its stderr, and marks the venv failed",
    async () => {
      const bad = {
        name: "has-magic",
        code: "import sys, mla_helper; sys.exit('magic is ' + str(mla_helper.MAGIC + 1))",
      };
      const failing = await write("seq_fail.json", profile("seq", changed, [IMPORTS, bad]));
      const { r, report } = await install(failing);
      assert.equal(r.code, 1);
      assert.equal(report.ok, false);
      assert.match(report.error!.message, /verify step "has-magic" failed/);
      assert.match(report.error!.message, /magic is 43/);
      assert.equal((await readState(venv)).status, "failed");
      // The fixed profile is ready again without reinstalling the stages it already has.
      const { r: r2, report: again } = await install(file);
      assert.equal(r2.code, 0, r2.stderr);
      assert.ok(again.stages.every((s) => s.action === "skipped"), JSON.stringify(again.stages));
      assert.equal((await readState(venv)).status, "ready");
    },
  );

  await t.step("a build failure names the stage and the package and exits 1", async () => {
    const broken = await write(
      "seq_broken.json",
      profile("seq", [...changed, { name: "extra", packages: ["mla-broken==1.0"] }], [IMPORTS]),
    );
    const { r, report } = await install(broken);
    assert.equal(r.code, 1);
    assert.match(report.error!.message, /stage "extra"/);
    assert.match(report.error!.message, /mla-broken/);
    assert.match(r.stderr, /this build always fails/);
    assert.equal((await readState(venv)).status, "failed");
  });

  await t.step(
    "--force rebuilds the venv from scratch, healing a corrupt cached wheel on the way",
    async () => {
      const marker = `${venv}/marker`;
      await Deno.writeTextFile(marker, "x");
      // The wheel pip built from the sdist and cached, cut in half: the rebuild's "build" stage reuses it.
      const built = filesUnder(`${vars.MLAGENT_CACHE_DIR}/pip/wheels`).find((p) =>
        p.includes("mla_needs_helper")
      );
      assert.ok(built, "pip cached the wheel it built");
      await Deno.truncate(built, (await Deno.stat(built)).size >> 1);
      const { r, report } = await install(file, ["--force"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(report.action, "rebuilt");
      assert.ok(report.stages.every((s) => s.action === "installed"));
      assert.equal(report.stages.find((s) => s.name === "build")!.attempts, 2);
      assert.match(r.stderr, /retrying after healing the cache/);
      assert.equal(await pathExists(marker), false);
      assert.equal((await readState(venv)).status, "ready");
    },
  );

  await t.step({
    name: "a changed interpreter rebuilds the venv with it",
    // Needs a second interpreter to switch to; a machine with one shows this step as ignored.
    ignore: PYTHONS.length < 2,
    fn: async () => {
      const current = await Deno.realPath((await readState(venv)).plan.python_executable as string);
      const other = PYTHONS.find((p) => p.executable !== current)!.executable;
      const { r, report } = await install(file, [], { MLAGENT_PYTHON: other });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(report.action, "rebuilt");
      assert.match(r.stderr, /interpreter changed/);
      assert.equal(await Deno.realPath((await readState(venv)).plan.python_executable), other);
    },
  });
});

Deno.test("install of an unreachable index exits 1 naming the URL and the connection failure, creating nothing", async () => {
  await using tmp = await tempDir("mlagent-install-");
  const dir = tmp.path;
  const file = `${dir}/p.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(profile("far", [{ name: "a", packages: ["mla-gamma==1.0"] }])),
  );
  const r = await runMlagent(["install", file, "--json"], {
    env: {
      MLAGENT_ROOT: `${dir}/venvs`,
      MLAGENT_INDEX_URL: "http://127.0.0.1:9/simple/",
      MLAGENT_CACHE_DIR: `${dir}/cache`,
      MLAGENT_RETRY_BASE_MS: "10",
      HOME: `${dir}/home`,
    },
  });
  assert.equal(r.code, 1, r.stderr);
  const err = r.json<Report>().error!;
  assert.equal(err.reach_failure, "connection");
  assert.equal(err.index_url, "http://127.0.0.1:9/simple/");
  assert.match(
    r.stderr,
    /cannot reach the package index http:\/\/127\.0\.0\.1:9\/simple\/: the connection failed/,
  );
  assert.equal(await pathExists(`${dir}/venvs`), false);
});

Deno.test("install of a profile that fails validation exits 2 and creates nothing", async () => {
  await using tmp = await tempDir("mlagent-install-");
  const dir = tmp.path;
  const file = `${dir}/p.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(profile("loose", [{ name: "a", packages: ["mla-gamma>=1.0"] }])),
  );
  const r = await runMlagent(["install", file], {
    env: { MLAGENT_ROOT: `${dir}/venvs`, HOME: `${dir}/home` },
  });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(await pathExists(`${dir}/venvs`), false);
});

Deno.test("install killed mid-stage is repaired by the next run, and concurrent installs end with one install", async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using tmp = await tempDir("mlagent-install-");
  const dir = tmp.path;
  const { vars, write, install } = setup(dir, index);
  const venv = `${vars.MLAGENT_ROOT}/slow`;
  const stages = [
    { name: "first", packages: ["mla-gamma==1.0"] },
    { name: "slow", packages: ["mla-slow==1.0"] },
  ];
  const file = await write("slow.json", profile("slow", stages));

  const waitForBuild = (started: string) => waitForNumberIn(started);

  await t.step(
    "SIGINT during a stage stops the installer's process group and marks the venv failed",
    async () => {
      const started = `${dir}/build-started-int`;
      const [cmd, ...args] = mlagentArgv(["install", file]);
      const child = new Deno.Command(cmd, {
        args,
        env: hermeticVars({ ...vars, MLA_SLOW_BUILD_S: "60", MLA_BUILD_STARTED: started }),
        clearEnv: true,
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const pgid = await waitForBuild(started);
      child.kill("SIGINT");
      const out = await child.output();
      assert.equal(out.code, 130, "Ctrl-C exits 130, as shells report it");
      assert.match(new TextDecoder().decode(out.stderr), /interrupted \(SIGINT\)/);
      const state = await readState(venv);
      assert.equal(state.status, "failed");
      assert.equal(groupAlive(pgid), false, "the build kept running after mlagent stopped");
    },
  );

  await t.step("SIGKILL during the slow stage leaves the venv installing, not ready", async () => {
    const started = `${dir}/build-started`;
    const [cmd, ...args] = mlagentArgv(["install", file]);
    const child = new Deno.Command(cmd, {
      args,
      env: hermeticVars({ ...vars, MLA_SLOW_BUILD_S: "60", MLA_BUILD_STARTED: started }),
      clearEnv: true,
      stdout: "null",
      stderr: "null",
    }).spawn();
    // Kill mlagent and, as a job kill would, the build it started.
    const pgid = await waitForBuild(started);
    child.kill("SIGKILL");
    await child.status;
    try {
      Deno.kill(-pgid, "SIGKILL");
    } catch { /* already gone */ }
    const state = await readState(venv);
    assert.equal(state.status, "installing");
    assert.deepEqual(state.stages.map((s: { status: string }) => s.status), ["done", "pending"]);
  });

  await t.step(
    "the next run repairs it: done stages are kept, the interrupted one is installed",
    async () => {
      const { r, report } = await install(file);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(report.action, "repaired");
      assert.match(r.stderr, /left installing by pid \d+ .*which is gone; repairing/);
      assert.deepEqual(report.stages.map((s) => [s.name, s.action]), [["first", "skipped"], [
        "slow",
        "installed",
      ]]);
      assert.equal(report.packages["mla-slow"], "1.0");
    },
  );

  await t.step(
    "two installs of one changed profile at once: one installs, the other waits and finds it ready",
    async () => {
      await write(
        "slow.json",
        profile("slow", [...stages, { name: "more", packages: ["mla-alpha==1.0"] }]),
      );
      const [a, b] = await Promise.all([install(file), install(file)]);
      assert.equal(a.r.code, 0, a.r.stderr);
      assert.equal(b.r.code, 0, b.r.stderr);
      const installed = [a.report, b.report].filter((x) => x.stages.some((s) => s.action === "installed"));
      assert.equal(installed.length, 1, "exactly one process ran the installer");
      const other = installed[0] === a.report ? b.report : a.report;
      assert.equal(other.action, "none");
      assert.equal(other.waited_for_other, true);
      assert.equal(installed[0].waited_for_other, false, "the installer took the lock without waiting");
      assert.equal((await readState(venv)).status, "ready");
    },
  );
  const current = [...stages, { name: "more", packages: ["mla-alpha==1.0"] }];

  await t.step("when uv itself crashes the stages fall back to pip", async () => {
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin, { recursive: true });
    await writeFakeBin(bin, "uv", {
      stderr: "thread 'main' panicked at crates/uv/src/main.rs:1:1\n",
      exitCode: 101,
    });
    const { r, report } = await install(file, [], { PATH: `${bin}:${Deno.env.get("PATH")}` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /uv itself failed .*falling back to pip/);
    assert.equal(report.installer, "pip");
    assert.ok((await fakeCalls(bin, "uv")).some((c) => c.startsWith("pip install --python")));
  });

  await t.step("models are fetched after the venv is ready; --no-models skips them", async () => {
    await using hub = smallRepo();
    const withModel = { ...profile("slow", current), models: [{ repo: hub.repo, revision: "main" }] };
    await write("slow.json", withModel);
    const hubVars = { HF_ENDPOINT: hub.url, HF_HOME: `${dir}/hf`, MLAGENT_DOWNLOAD_BACKOFF_MS: "10" };
    const skipped = await install(file, ["--no-models"], hubVars);
    assert.equal(skipped.r.code, 0, skipped.r.stderr);
    assert.deepEqual(skipped.report.models.map((m) => m.skipped), [true]);
    assert.equal(await pathExists(`${vars.MLAGENT_MODELS_DIR}/${hub.repo}`), false);
    const fetched = await install(file, [], hubVars);
    assert.equal(fetched.r.code, 0, fetched.r.stderr);
    assert.equal(fetched.report.action, "none", "a models-only change must not touch the venv");
    assert.deepEqual(fetched.report.models.map((m) => [m.ok, m.skipped]), [[true, false]]);
    assert.ok(await pathExists(`${vars.MLAGENT_MODELS_DIR}/${hub.repo}/config.json`));
  });
});

Deno.test("install stops at a failing doctor check before anything is written", async () => {
  await using tmp = await tempDir("mlagent-install-");
  const dir = tmp.path;
  const file = `${dir}/p.json`;
  const p = {
    ...profile("needs-gpu", [{ name: "a", packages: ["mla-gamma==1.0"] }]),
    gpu: { required: true },
  };
  await Deno.writeTextFile(file, JSON.stringify(p));
  // No nvidia-smi and no driver in a fake /proc-free PATH: the GPU the profile requires is missing.
  const r = await runMlagent(["install", file, "--json"], {
    env: {
      MLAGENT_ROOT: `${dir}/venvs`,
      MLAGENT_INDEX_URL: "http://127.0.0.1:9/simple/",
      MLAGENT_CACHE_DIR: `${dir}/cache`,
      HOME: `${dir}/home`,
      PATH: "/usr/bin:/bin",
    },
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /the node is not ready \(nothing was written\)/);
  assert.match(r.stderr, /gpu\.driver/);
  assert.equal(await pathExists(`${dir}/venvs`), false);
  assert.equal(await pathExists(`${dir}/cache`), false);
});

Deno.test("install --no-wait exits 3 while another install holds the venv's lock", async () => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using tmp = await tempDir("mlagent-install-");
  const dir = tmp.path;
  const { vars, write } = setup(dir, index);
  const file = await write("busy.json", profile("busy", [{ name: "a", packages: ["mla-gamma==1.0"] }]));
  const env = testEnv();
  env.vars = { ...env.vars, ...vars };
  await withLock(env, venvLockSpec(`${vars.MLAGENT_ROOT}/busy`, "test holder"), {}, async () => {
    const r = await runMlagent(["install", file, "--no-wait"], { env: vars });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /venv:busy/);
  });
  assert.equal(await pathExists(`${vars.MLAGENT_ROOT}/busy`), false);
});

/** A tmpfs beside the test's temp dirs: another filesystem for the cache than the venv's. */
const SHM_DIR = (() => {
  try {
    return Deno.statSync("/dev/shm").isDirectory;
  } catch {
    return false;
  }
})();

Deno.test("install --dry-run with uv: a cache on another filesystem than the venv means copy, never hard links", async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  const dir = await Deno.makeTempDir({ prefix: "mlagent-install-" });
  const shm = "/dev/shm";
  try {
    const { vars, write } = setup(dir, index);
    const file = await write("uv.json", profile("uvplan", [{ name: "a", packages: ["mla-gamma==1.0"] }]));
    await Deno.mkdir(`${dir}/bin`);
    await writeFakeBin(`${dir}/bin`, "uv", { stdout: "uv 0.5.0\n" });
    const PATH = `${dir}/bin:${Deno.env.get("PATH")}`;
    const same = await runMlagent(["install", file, "--dry-run", "--json"], { env: { ...vars, PATH } });
    assert.equal(same.code, 0, same.stderr);
    const sameArgv = same.json<{ stages: { argv: string[] }[] }>().stages[0].argv;
    assert.deepEqual(sameArgv.slice(1, 4), ["pip", "install", "--python"]);
    assert.ok(!sameArgv.includes("--link-mode"), sameArgv.join(" "));
    // Needs /dev/shm (a tmpfs) as the other filesystem; a machine without it shows this step as ignored.
    await t.step({
      name: "cache on /dev/shm",
      ignore: !SHM_DIR,
      fn: async () => {
        const crossCache = `${shm}/mlagent-test-cache-${Deno.pid}`;
        const cross = await runMlagent(["install", file, "--dry-run"], {
          env: { ...vars, PATH, MLAGENT_CACHE_DIR: crossCache },
        });
        assert.equal(cross.code, 0, cross.stderr);
        assert.match(cross.stdout, /other filesystem than the venv: copy, no links/);
        assert.match(cross.stdout, /UV_CACHE_DIR=\S+ \S+\/uv pip install .*--link-mode copy/);
        assert.equal(await pathExists(crossCache), false, "a dry run created the cache");
      },
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("install reads pip's --log: a site index from pip.conf answering 503 is a network failure, not a missing package", async () => {
  await using tmp = await tempDir("mlagent-install-");
  const dir = tmp.path;
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  // pip's console says only "No matching distribution found" here; the 503s are in its debug log.
  index.failPath("/simple/mla-gamma/", 1000, { status: 503 });
  await Deno.writeTextFile(`${dir}/pip.conf`, `[global]\nindex-url = ${index.url}\nretries = 0\n`);
  const file = `${dir}/p.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(profile("siteidx", [{ name: "a", packages: ["mla-gamma==1.0"] }])),
  );
  const { MLAGENT_INDEX_URL: _, ...vars } = installVars(dir, index.url);
  const r = await runMlagent(["install", file, "--json", "--no-models"], {
    env: { ...vars, PIP_CONFIG_FILE: `${dir}/pip.conf` },
    timeoutMs: 120_000,
  });
  assert.equal(r.code, 1, r.stderr);
  const err = r.json<{ error: { kind: string; attempts: number; installer_log: string } }>().error;
  assert.equal(err.kind, "network", r.stderr);
  assert.equal(err.attempts, 3, "network failures are retried");
  assert.match(err.installer_log, /\.mlagent\/a\.pip\.log$/);
  assert.match(r.stderr, /pip's full log: /);
});

Deno.test("install of a package the index lacks stays a resolution failure after pip's --log is read", async () => {
  await using tmp = await tempDir("mlagent-install-");
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  const file = `${tmp.path}/p.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(profile("miss", [{ name: "a", packages: ["mla-nonexistent==1.0"] }])),
  );
  const r = await runMlagent(["install", file, "--json", "--no-models"], {
    env: installVars(tmp.path, index.url),
    timeoutMs: 120_000,
  });
  assert.equal(r.code, 1, r.stderr);
  const err = r.json<{ error: { kind: string; attempts: number } }>().error;
  assert.equal(err.kind, "resolution");
  assert.equal(err.attempts, 1, "a missing package is not retried");
  assert.match(r.stderr, /No matching distribution found for mla-nonexistent==1\.0/);
});
