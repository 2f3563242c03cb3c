/**
 * Issue 11's first case with real processes: `mlagent install P` is SIGKILLed while the profile's model
 * downloads (caught mid-file by the Hub look-alike's stall). Afterwards status, prologue and
 * `download --verify` all say the model is incomplete and name the file, and a plain rerun of install
 * finishes it by resuming the part (the server's log proves less than the file was sent again).
 */
import assert from "node:assert/strict";
import { mlagentArgv, runMlagent } from "../support/cli.ts";
import { hermeticVars, installVars, tempDir } from "../support/env.ts";
import { HubServer } from "../support/hf_server.ts";
import { makeNode, testProfile, writeProfile } from "../support/node_states.ts";
import { startIndex, testDists } from "../support/pypi.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const MiB = 1024 * 1024;

interface ModelDoc {
  repo: string;
  complete: boolean;
  missing: string[];
  partial: string[];
}

Deno.test(
  "install SIGKILLed mid-model: status, prologue and --verify say which file; a rerun resumes it",
  opts,
  async () => {
    await using tmp = await tempDir("mlagent-kill-");
    const n = await makeNode(tmp.path);
    await using index = await startIndex((await testDists()).dir);
    const size = 8 * MiB;
    await using hub = new HubServer({
      repo: "acme/killed-model",
      files: [
        { path: "config.json", content: new TextEncoder().encode('{"model_type": "tiny"}\n'), lfs: false },
        { path: "weights.safetensors", content: { size, seed: 21 }, lfs: true },
      ],
    });
    hub.addFault({
      path: "weights.safetensors",
      on: "body",
      fault: { kind: "stall", afterBytes: 3 * MiB, ms: 120_000 },
    });
    const profile = testProfile("killed-model", {
      stages: [{ name: "one", packages: ["mla-gamma==1.0"] }],
      models: [{ repo: hub.repo }],
    });
    await writeProfile(n, profile);
    const vars = {
      ...n.vars,
      ...installVars(tmp.path, index.url),
      MLAGENT_PROFILE_PATH: n.profiles,
      MLAGENT_MODELS_DIR: n.models,
      HF_ENDPOINT: hub.url,
      HF_HOME: `${tmp.path}/hf`,
      MLAGENT_DOWNLOAD_BACKOFF_MS: "10",
    };
    const modelDir = `${n.models}/${hub.repo}`;
    const part = `${modelDir}/.cache/huggingface/download/weights.safetensors.incomplete`;

    const [cmd, ...args] = mlagentArgv(["install", "killed-model"]);
    const child = new Deno.Command(cmd, {
      args,
      env: hermeticVars(vars),
      clearEnv: true,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const deadline = Date.now() + 120_000;
    while (((await Deno.stat(part).catch(() => null))?.size ?? 0) < 3 * MiB && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    const out = await child.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.signal, "SIGKILL", stderr);
    assert.ok((await Deno.stat(part)).size >= 3 * MiB, `the kill came mid-file: ${stderr}`);
    const sentBefore = hub.sent("weights.safetensors");

    const status = await runMlagent(["status", "killed-model", "--json"], { env: vars });
    const [model] = status.json<{ profiles: { ready: boolean; models: ModelDoc[] }[] }>().profiles[0].models;
    assert.equal(model.complete, false, status.stdout);
    assert.deepEqual(model.partial, ["weights.safetensors"]);
    assert.equal(status.code, 1);

    const prologue = await runMlagent(["prologue", "--profile", "killed-model", "--json"], { env: vars });
    const check = prologue.json<{ checks: { id: string; status: string; message: string }[] }>().checks
      .find((c) => c.id === "models.complete");
    assert.equal(check?.status, "fail", prologue.stdout);
    assert.match(check!.message, /weights\.safetensors/);

    const verify = await runMlagent(["download", hub.repo, "--verify", "--json"], { env: vars });
    assert.equal(verify.code, 1);
    assert.deepEqual(verify.json<ModelDoc>().partial, ["weights.safetensors"]);

    // A plain rerun: the venv is ready (nothing to do there), the model is not, and its part is resumed.
    const again = await runMlagent(["install", "killed-model", "--json"], { env: vars, timeoutMs: 120_000 });
    assert.equal(again.code, 0, again.stderr);
    const report = again.json<{ action: string; models: { ok: boolean }[] }>();
    assert.equal(report.action, "none");
    assert.deepEqual(report.models.map((m) => m.ok), [true]);
    assert.match(again.stderr, /weights\.safetensors: resuming at 3\.\d MiB of 8\.0 MiB/);
    const resent = hub.sent("weights.safetensors") - sentBefore;
    assert.ok(resent < size, `the rerun sent ${resent} bytes of an ${size}-byte file`);
    const ranged = hub.requests.filter((q) =>
      q.path.startsWith("/cdn/") && q.range && /^bytes=(\d+)-/.test(q.range)
    );
    assert.ok(
      ranged.some((q) => Number(q.range!.match(/^bytes=(\d+)-/)![1]) >= 3 * MiB),
      JSON.stringify(hub.requests.map((q) => [q.method, q.range])),
    );
    const done = await runMlagent(["status", "killed-model", "--json"], { env: vars });
    assert.equal(done.json<{ profiles: { models: ModelDoc[] }[] }>().profiles[0].models[0].complete, true);
    assert.equal((await Deno.stat(`${modelDir}/weights.safetensors`)).size, size);
  },
);
