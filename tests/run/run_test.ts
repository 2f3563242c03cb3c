/**
 * `mlagent run`, `env`, `models` and `remove` against a real venv (built once by `mlagent install` from the
 * local index, its model fetched from the local Hub) and real processes: the command runs the venv's python
 * and sees its models; exit codes and signals pass through; a running command holds the venv against
 * `remove`, also after mlagent is SIGKILLed, and no longer once it is gone. Venvs only removed are written
 * as install leaves them (tests/support/node_states.ts writeVenv), without pip.
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { installVars, pathExists, tempDir } from "../support/env.ts";
import { alive, lockVars, spawnMlagent, waitUntil } from "../support/lock_helpers.ts";
import { startIndex, testDists } from "../support/pypi.ts";
import { smallRepo } from "../support/hf_server.ts";
import { testProfile, writeVenv } from "../support/node_states.ts";
import { waitForNumberIn } from "../support/procs.ts";
import type { Profile } from "../../agent/profiles/types.ts";

/** Python that writes its pid to `pidFile`, then waits until `goFile` exists, then exits with `code`. */
const holdPy = (pidFile: string, goFile: string, code = 0) =>
  `import os, time, sys
open(${JSON.stringify(pidFile)} + ".tmp", "w").write(str(os.getpid()))
os.rename(${JSON.stringify(pidFile)} + ".tmp", ${JSON.stringify(pidFile)})
while not os.path.exists(${JSON.stringify(goFile)}): time.sleep(0.02)
sys.exit(${code})`;

Deno.test("run, env, models and remove use what install built", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const dists = await testDists();
  await using index = await startIndex(dists.dir);
  await using hub = smallRepo();
  await using tmp = await tempDir("mlagent-run-");
  const dir = tmp.path;
  await Deno.mkdir(`${dir}/profiles`);
  const vars: Record<string, string> = {
    ...installVars(dir, index.url),
    ...lockVars(dir),
    MLAGENT_PROFILE_PATH: `${dir}/profiles`,
    HF_ENDPOINT: hub.url,
    HF_HOME: `${dir}/hf`,
    MLAGENT_DOWNLOAD_BACKOFF_MS: "10",
    CUDA_VISIBLE_DEVICES: "3,1",
  };
  const writeProfile = async (p: Profile) => {
    await Deno.writeTextFile(`${dir}/profiles/${p.name}.json`, JSON.stringify(p, null, 2));
    return p;
  };
  const usey = await writeProfile(testProfile("usey", { models: [{ repo: hub.repo, revision: "main" }] }));
  const venv = `${vars.MLAGENT_ROOT}/usey`;
  const modelDir = `${vars.MLAGENT_MODELS_DIR}/${hub.repo}`;
  const modelVar = `MLAGENT_MODEL_${hub.repo.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}`;
  const mlagent = (args: string[], extra: Record<string, string> = {}) =>
    runMlagent(args, { env: { ...vars, ...extra }, timeoutMs: 120_000 });

  await t.step("install's last line says how to use the venv", async () => {
    const r = await mlagent(["install", "usey"]);
    assert.equal(r.code, 0, r.stderr);
    const last = r.stdout.trimEnd().split("\n").at(-1)!;
    assert.match(last, /^use it: mlagent run usey -- python \.\.\./);
  });

  await t.step("run executes the venv's python, which sees the models and the offline Hub", async () => {
    const code = `import os, sys, json
print(json.dumps({k: os.environ.get(k) for k in ["VIRTUAL_ENV", "MLAGENT_VENV", "MLAGENT_PROFILE", "${modelVar}",
  "MLAGENT_MODELS_DIR", "HF_HOME", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES", "PYTHONHOME"]} | {"prefix": sys.prefix,
  "path0": os.environ["PATH"].split(":")[0]}))`;
    // A PYTHONHOME from elsewhere would break the venv's python: run removes it.
    const r = await mlagent(["run", "usey", "--", "python", "-c", code], { PYTHONHOME: "/nonexistent" });
    assert.equal(r.code, 0, r.stderr);
    const seen = JSON.parse(r.stdout);
    assert.equal(seen.prefix, venv);
    assert.equal(seen.VIRTUAL_ENV, venv);
    assert.equal(seen.MLAGENT_VENV, venv);
    assert.equal(seen.path0, `${venv}/bin`);
    assert.equal(seen.MLAGENT_PROFILE, "usey");
    assert.equal(seen[modelVar], modelDir);
    assert.ok(await pathExists(`${seen[modelVar]}/config.json`));
    assert.equal(seen.MLAGENT_MODELS_DIR, vars.MLAGENT_MODELS_DIR);
    assert.equal(seen.HF_HOME, vars.HF_HOME);
    assert.equal(seen.HF_HUB_OFFLINE, "1");
    assert.equal(seen.CUDA_VISIBLE_DEVICES, "3,1", "the scheduler's GPUs are left alone");
    assert.equal(seen.PYTHONHOME, null);
    assert.equal(r.stderr, "", "mlagent says nothing when all is well");
  });

  await t.step(
    "exit codes pass through; a signal death is 128+N; --json-status records the run",
    async () => {
      const seven = await mlagent([
        "run",
        "usey",
        "--json-status",
        `${dir}/st.json`,
        "--",
        "python",
        "-c",
        "exit(7)",
      ]);
      assert.equal(seven.code, 7);
      const st = JSON.parse(await Deno.readTextFile(`${dir}/st.json`));
      assert.equal(st.exit_code, 7);
      assert.equal(st.profile, "usey");
      assert.equal(st.venv, venv);
      assert.deepEqual(st.command, ["python", "-c", "exit(7)"]);
      assert.equal(st.signal, null);
      assert.ok(Date.parse(st.ended_at) >= Date.parse(st.started_at));
      const killed = await mlagent([
        "run",
        "usey",
        "--",
        "python",
        "-c",
        "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
      ]);
      assert.equal(killed.code, 143);
    },
  );

  await t.step("signals sent to mlagent reach the command", async () => {
    for (
      const [sig, want] of [["SIGUSR1", 42], ["SIGTERM", 143], ["SIGHUP", 129], ["SIGQUIT", 44]] as const
    ) {
      const pidFile = `${dir}/sig-${sig}.pid`;
      const code = `import os, signal, sys, time
signal.signal(signal.SIGUSR1, lambda *a: sys.exit(42))
signal.signal(signal.SIGQUIT, lambda *a: sys.exit(44))
open("${pidFile}.tmp", "w").write(str(os.getpid())); os.rename("${pidFile}.tmp", "${pidFile}")
time.sleep(60)`;
      const p = spawnMlagent(["run", "usey", "--", "python", "-c", code], { env: vars });
      await waitForNumberIn(pidFile, 30_000);
      Deno.kill(p.pid, sig);
      const done = await p.done;
      assert.equal(done.code, want, `${sig}: ${done.stderr}`);
    }
  });

  await t.step(
    "a command that cannot run exits 127 (not found) or 126 (not executable), one line each",
    async () => {
      const missing = await mlagent(["run", "usey", "--", "no-such-program-xyz"]);
      assert.equal(missing.code, 127);
      assert.equal(missing.stderr.trim().split("\n").length, 1, missing.stderr);
      assert.match(missing.stderr, /no-such-program-xyz: command not found/);
      await Deno.writeTextFile(`${dir}/plain.sh`, "echo hi\n");
      const notExec = await mlagent(["run", "usey", "--", `${dir}/plain.sh`]);
      assert.equal(notExec.code, 126);
      assert.equal(notExec.stderr.trim().split("\n").length, 1, notExec.stderr);
      const aDir = await mlagent(["run", "usey", "--", dir]);
      assert.equal(aDir.code, 126);
    },
  );

  await t.step(
    "bad input: unknown profile, no --, no command, --json, a path that climbs out: exit 2",
    async () => {
      for (
        const args of [
          ["run", "no-such-profile", "--", "true"],
          ["run", "usey", "true"],
          ["run", "usey", "--"],
          ["run", "--", "true"],
          ["run", "usey", "--json", "--", "true"],
          ["run", "../../etc/passwd", "--", "true"],
          ["env", "../usey"],
          ["remove", "../../etc"],
          ["models", "rm", "../../../etc"],
        ]
      ) {
        const r = await mlagent(args);
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, /^error: /m);
        assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, "no stack trace");
      }
    },
  );

  await t.step("a profile not installed, or with an incomplete model, is refused with the fix", async () => {
    await writeProfile(testProfile("absent"));
    const absent = await mlagent([
      "run",
      "absent",
      "--json-status",
      `${dir}/absent.json`,
      "--",
      "python",
      "-c",
      "1",
    ]);
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, /^error: run: profile absent is not ready: no venv at /m);
    assert.match(absent.stderr, /^hint: mlagent install absent/m);
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/absent.json`)).exit_code, 1);
    await Deno.rename(`${modelDir}/config.json`, `${dir}/config.json`);
    try {
      const r = await mlagent(["run", "usey", "--", "python", "-c", "print('ran')"]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, "", "the command must not run");
      assert.match(r.stderr, new RegExp(`model ${hub.repo} is incomplete`));
      const e = await mlagent(["env", "usey"]);
      assert.equal(e.code, 1);
      assert.equal(e.stdout, "");
    } finally {
      await Deno.rename(`${dir}/config.json`, `${modelDir}/config.json`);
    }
  });

  await t.step("run --install builds a missing venv first, then runs", async () => {
    const r = await mlagent([
      "run",
      "absent",
      "--install",
      "--",
      "python",
      "-c",
      "import sys; print(sys.prefix)",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${vars.MLAGENT_ROOT}/absent`);
  });

  await t.step("env for sh, evaluated by sh, gives the same python; fish and json too", async () => {
    const sh = await new Deno.Command("sh", {
      args: ["-c", `eval "$(${mlagentShell()} env usey)" && command -v python && echo "$${modelVar}"`],
      env: { ...envFor(vars) },
      clearEnv: true,
      cwd: dir,
    }).output();
    const out = new TextDecoder().decode(sh.stdout).trim().split("\n");
    assert.equal(sh.code, 0, new TextDecoder().decode(sh.stderr));
    assert.deepEqual(out, [`${venv}/bin/python`, modelDir]);
    const fish = await mlagent(["env", "usey", "--format", "fish"]);
    assert.match(fish.stdout, new RegExp(`^set -gx PATH ${venv}/bin `, "m"));
    assert.match(fish.stdout, /^set -e PYTHONHOME$/m);
    const json = (await mlagent(["env", "usey", "--json"])).json<{ variables: Record<string, string> }>();
    assert.equal(json.variables[modelVar], modelDir);
    assert.equal(json.variables.VIRTUAL_ENV, venv);
  });

  // Another installed profile sharing the model: its dir is kept when usey goes with --models.
  const sharer = await writeProfile(testProfile("sharer", { models: usey.models }));
  await writeVenv(vars.MLAGENT_ROOT, "sharer", { status: "ready", profile: sharer });

  await t.step("models list shows the dir complete, with the profiles using it", async () => {
    const doc = (await mlagent(["models", "list", "--json"])).json<{
      models: {
        local_dir: string;
        repo: string;
        complete: boolean;
        bytes: number;
        profiles: { profile: string; ready: boolean }[];
      }[];
    }>();
    const m = doc.models.find((m) => m.local_dir === modelDir)!;
    assert.ok(m, JSON.stringify(doc));
    assert.equal(m.repo, hub.repo);
    assert.equal(m.complete, true);
    assert.ok(m.bytes > 600_000);
    assert.deepEqual(m.profiles.map((p) => [p.profile, p.ready]), [["sharer", true], ["usey", true]]);
  });

  await t.step(
    "models rm refuses a model ready profiles need, unless --force (a dry run without --yes)",
    async () => {
      const r = await mlagent(["models", "rm", hub.repo, "--yes"]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /needed by ready profiles sharer, usey/);
      assert.ok(await pathExists(`${modelDir}/config.json`));
      const dry = await mlagent(["models", "rm", hub.repo, "--force"]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /dry run/);
      assert.ok(await pathExists(`${modelDir}/config.json`));
    },
  );

  await t.step(
    "a hub-cache model is named by its snapshot folder, and remove --models leaves the hub cache alone",
    async () => {
      const cached = await writeProfile(
        testProfile("cached", { models: [{ repo: hub.repo, revision: "main", layout: "hub-cache" }] }),
      );
      await writeVenv(vars.MLAGENT_ROOT, "cached", { status: "ready", profile: cached });
      const dl = await mlagent(["download", hub.repo, "--cache"]);
      assert.equal(dl.code, 0, dl.stderr);
      const r = await mlagent([
        "run",
        "cached",
        "--",
        "python",
        "-c",
        `import os; print(os.environ["${modelVar}"])`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const snapshot = r.stdout.trim();
      assert.match(snapshot, /\/hub\/models--[^/]+--[^/]+\/snapshots\/[0-9a-f]{40}$/);
      assert.ok(await pathExists(`${snapshot}/config.json`));
      const removed = await mlagent(["remove", "cached", "--models", "--yes", "--json"]);
      assert.equal(removed.code, 0, removed.stderr);
      assert.equal(removed.json<{ models: { action: string }[] }>().models[0].action, "keep");
      assert.ok(await pathExists(`${snapshot}/config.json`));
    },
  );

  await t.step("remove waits for a running run, and --no-wait refuses naming it", async () => {
    const gone = await writeProfile(testProfile("gone"));
    const goneVenv = await writeVenv(vars.MLAGENT_ROOT, "gone", { status: "ready", profile: gone });
    const pidFile = `${dir}/hold.pid`;
    const go = `${dir}/hold.go`;
    const run = spawnMlagent(["run", "gone", "--", "python", "-c", holdPy(pidFile, go, 5)], { env: vars });
    await waitForNumberIn(pidFile, 30_000);
    const refused = await mlagent(["remove", "gone", "--yes", "--no-wait"]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /pid \d+/);
    assert.ok(await pathExists(`${goneVenv}/.mlagent/state.json`));
    const force = await mlagent(["install", "gone", "--force", "--no-wait"]);
    assert.equal(force.code, 3, `install --force must not rebuild under a running job: ${force.stderr}`);
    const dry = await mlagent(["remove", "gone"]);
    assert.equal(dry.code, 0);
    assert.match(dry.stdout, /would remove venv .*gone \(\d/);
    const remover = spawnMlagent(["remove", "gone", "--yes", "--json"], { env: vars });
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(alive(remover.pid), "remove must wait for the running command");
    assert.ok(await pathExists(`${goneVenv}/.mlagent/state.json`), "the venv was pulled from under the job");
    await Deno.writeTextFile(go, "");
    assert.equal((await run.done).code, 5);
    const removed = await remover.done;
    assert.equal(removed.code, 0, removed.stderr);
    const doc = JSON.parse(removed.stdout);
    assert.equal(doc.venv.removed, true);
    assert.ok(doc.freed_bytes > 0);
    assert.equal(await pathExists(goneVenv), false);
  });

  await t.step(
    "SIGKILL of mlagent mid-run: the command keeps the hold while it lives, then remove succeeds",
    async () => {
      const killed = await writeProfile(testProfile("killed"));
      const killedVenv = await writeVenv(vars.MLAGENT_ROOT, "killed", { status: "ready", profile: killed });
      const pidFile = `${dir}/killed.pid`;
      const run = spawnMlagent(["run", "killed", "--", "python", "-c", holdPy(pidFile, `${dir}/never`)], {
        env: vars,
        detached: true,
      });
      const child = await waitForNumberIn(pidFile, 30_000);
      Deno.kill(run.pid, "SIGKILL");
      await waitUntil("mlagent is gone", () => !alive(run.pid));
      assert.ok(alive(child));
      const held = await mlagent(["remove", "killed", "--yes", "--no-wait"]);
      assert.equal(held.code, 3, "the orphaned command still uses the venv");
      Deno.kill(child, "SIGKILL");
      await waitUntil("the command is gone", () => !alive(child));
      await run.done;
      const r = await mlagent(["remove", "killed", "--yes", "--no-wait"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await pathExists(killedVenv), false);
    },
  );

  await t.step("remove --models keeps a model another installed profile uses", async () => {
    const r = await mlagent(["remove", "usey", "--models", "--yes", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const doc = r.json<{ models: { action: string; reason: string }[]; venv: { removed: boolean } }>();
    assert.equal(doc.venv.removed, true);
    assert.equal(doc.models[0].action, "keep");
    assert.match(doc.models[0].reason, /sharer/);
    assert.ok(await pathExists(`${modelDir}/config.json`));
    const status = await mlagent(["status", "usey"]);
    assert.equal(status.code, 1, "a removed venv is not ready");
  });

  await t.step(
    "a half-removed venv left by a killed remove is never ready, and the next remove ends it",
    async () => {
      const half = await writeProfile(testProfile("half"));
      await writeVenv(vars.MLAGENT_ROOT, "half", { status: "ready", profile: half });
      // What a remove killed between its rename and the end of the delete leaves.
      await Deno.rename(`${vars.MLAGENT_ROOT}/half`, `${vars.MLAGENT_ROOT}/.half.removing-1-2`);
      assert.equal((await mlagent(["status", "half"])).code, 1);
      const r = await mlagent(["remove", "half", "--yes"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await pathExists(`${vars.MLAGENT_ROOT}/.half.removing-1-2`), false);
    },
  );

  await t.step("models rm --force --yes removes the dir and frees its bytes", async () => {
    const r = await mlagent(["models", "rm", hub.repo, "--force", "--yes", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const doc = r.json<{ removed: boolean; freed_bytes: number }>();
    assert.equal(doc.removed, true);
    assert.ok(doc.freed_bytes > 600_000);
    assert.equal(await pathExists(modelDir), false);
  });
});

/** mlagent as a shell command line (for `eval "$(mlagent env P)"`). */
function mlagentShell(): string {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  return [
    Deno.execPath(),
    "run",
    "--allow-all",
    "--quiet",
    new URL("../../main.ts", import.meta.url).pathname,
  ]
    .map(q).join(" ");
}

function envFor(vars: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!/^(PIP_|UV_|HF_|MLAGENT_|CUDA_|VIRTUAL_ENV|PYTHON)/.test(k)) out[k] = v;
  }
  return { ...out, ...vars, NO_COLOR: "1" };
}
