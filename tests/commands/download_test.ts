import assert from "node:assert/strict";
import { hermeticVars, tempDir } from "../support/env.ts";
import { mlagentArgv, runMlagent } from "../support/cli.ts";
import { HubServer, smallRepo } from "../support/hf_server.ts";

// The test server lives in this process while main.ts runs as a child.
const opts = { sanitizeResources: false, sanitizeOps: false };

function vars(server: HubServer, hfHome: string, extra: Record<string, string> = {}) {
  return { HF_ENDPOINT: server.url, HF_HOME: hfHome, MLAGENT_DOWNLOAD_BACKOFF_MS: "10", ...extra };
}

Deno.test(
  "mlagent download --json prints one summary with fetched, reused and resumed counts",
  opts,
  async () => {
    await using server = smallRepo();
    await using dir = await tempDir();
    const r = await runMlagent(["download", server.repo, "--local-dir", dir.path, "--json"], {
      env: vars(server, dir.path + "/hf"),
    });
    assert.equal(r.code, 0, r.stderr);
    const j = r.json();
    assert.equal(j.ok, true);
    assert.equal(j.commit, server.commit);
    assert.equal(j.files, 5);
    for (
      const k of [
        "fetched_bytes",
        "reused_bytes",
        "files_resumed",
        "retries",
        "duration_ms",
        "throughput_bytes_per_s",
      ]
    ) {
      assert.equal(typeof j[k], "number", k);
    }
    assert.equal(r.stderr.includes("\r"), false, "no progress without a terminal");
  },
);

Deno.test("mlagent download rejects a repo id that is not owner/name (exit 2)", opts, async () => {
  const r = await runMlagent(["download", "just-a-name"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /owner\/name/);
});

Deno.test("mlagent download refuses a target that is a file (exit 2)", opts, async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/file`, "x");
  const r = await runMlagent(["download", server.repo, "--local-dir", `${dir.path}/file`], {
    env: vars(server, dir.path + "/hf"),
  });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not a directory/);
});

Deno.test("mlagent download names a missing revision (exit 1) and never prints the token", opts, async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  const r = await runMlagent([
    "download",
    server.repo,
    "--revision",
    "no-such-branch",
    "--json",
    "--local-dir",
    dir.path,
  ], {
    env: vars(server, dir.path + "/hf", { HF_TOKEN: "hf_cli_secret_value" }),
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /revision "no-such-branch" does not exist/);
  assert.equal(r.json<{ ok: boolean }>().ok, false);
  assert.ok(!(r.stdout + r.stderr).includes("hf_cli_secret_value"));
});

Deno.test(
  "a download killed mid-file resumes in a second process; the server sends under 1.1x the file",
  opts,
  async () => {
    const size = 4_000_000;
    await using server = new HubServer({
      files: [{ path: "weights.safetensors", content: { size, seed: 3 }, lfs: true }],
    });
    await using dir = await tempDir();
    server.addFault({
      path: "weights.safetensors",
      on: "body",
      fault: { kind: "stall", afterBytes: size / 2, ms: 60_000 },
    });
    const [cmd, ...args] = mlagentArgv(["download", server.repo, "--local-dir", dir.path]);
    const child = new Deno.Command(cmd, {
      args,
      env: hermeticVars(vars(server, dir.path + "/hf")),
      clearEnv: true,
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 30_000;
    while (server.sent("weights.safetensors") < size / 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const part = `${dir.path}/.cache/huggingface/download/weights.safetensors.incomplete`;
    while (((await Deno.stat(part).catch(() => null))?.size ?? 0) < size / 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    await child.status;

    const r = await runMlagent(["download", server.repo, "--local-dir", dir.path, "--json"], {
      env: vars(server, dir.path + "/hf"),
    });
    assert.equal(r.code, 0, r.stderr);
    const j = r.json<{ files_resumed: number; reused_bytes: number; fetched_bytes: number }>();
    assert.equal(j.files_resumed, 1);
    assert.equal(j.reused_bytes + j.fetched_bytes, size);
    const sent = server.sent("weights.safetensors");
    assert.ok(sent < size * 1.1, `server sent ${sent} bytes for a ${size}-byte file`);
    assert.equal((await Deno.stat(`${dir.path}/weights.safetensors`)).size, size);
  },
);

Deno.test("two downloads into one dir take turns: the second finds the files done", opts, async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  // Slow the first transfer so the runs overlap.
  server.addFault({
    path: "model.safetensors",
    on: "body",
    fault: { kind: "stall", afterBytes: 1000, ms: 1500 },
  });
  const args = ["download", server.repo, "--local-dir", dir.path, "--json"];
  const env = vars(server, dir.path + "/hf");
  const [a, b] = await Promise.all([runMlagent(args, { env }), runMlagent(args, { env })]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const fetched = [a, b].map((r) => r.json<{ files_fetched: number }>().files_fetched).sort();
  assert.deepEqual(fetched, [0, 5]);
  const total = [...server.bytesSent.values()].reduce((x, y) => x + y, 0);
  const size = ["config.json", "tokenizer/vocab.txt", "model.safetensors", "transformer/diffusion.bin"]
    .reduce((x, p) => x + server.entry(p)!.size, 0);
  assert.equal(total, size);
});

Deno.test("mlagent download --verify lists what is missing without touching the network", opts, async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  const env = vars(server, dir.path + "/hf");
  assert.equal((await runMlagent(["download", server.repo, "--local-dir", dir.path], { env })).code, 0);
  await Deno.remove(`${dir.path}/config.json`);
  const n = server.requests.length;
  const r = await runMlagent(["download", server.repo, "--local-dir", dir.path, "--verify", "--json"], {
    env,
  });
  assert.equal(r.code, 1);
  assert.deepEqual(r.json<{ missing: string[] }>().missing, ["config.json"]);
  assert.equal(server.requests.length, n);
});

Deno.test(
  "SIGINT stops a download cleanly: exit 1, the partial file and lock left resumable",
  opts,
  async () => {
    const size = 3_000_000;
    await using server = new HubServer({
      files: [{ path: "weights.safetensors", content: { size, seed: 4 }, lfs: true }],
    });
    await using dir = await tempDir();
    server.addFault({
      path: "weights.safetensors",
      on: "body",
      fault: { kind: "stall", afterBytes: 1_000_000, ms: 60_000 },
    });
    const [cmd, ...args] = mlagentArgv(["download", server.repo, "--local-dir", dir.path]);
    const child = new Deno.Command(cmd, {
      args,
      env: hermeticVars(vars(server, dir.path + "/hf")),
      clearEnv: true,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const deadline = Date.now() + 30_000;
    while (server.sent("weights.safetensors") < 1_000_000 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 200));
    child.kill("SIGINT");
    const out = await child.output();
    assert.equal(out.code, 1);
    assert.match(new TextDecoder().decode(out.stderr), /interrupted/);
    const r = await runMlagent(["download", server.repo, "--local-dir", dir.path, "--json"], {
      env: vars(server, dir.path + "/hf"),
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json<{ files_resumed: number }>().files_resumed, 1);
    assert.ok(server.sent("weights.safetensors") < size * 1.1);
  },
);

Deno.test(
  "mlagent download prints the local dir as its only stdout line; the summary goes to stderr, -q silences it",
  opts,
  async () => {
    await using server = smallRepo({ lfsSize: 2_000_000 });
    await using dir = await tempDir();
    const env = vars(server, dir.path + "/hf");
    const target = `${dir.path}/m`;
    server.addFault({ path: "model.safetensors", on: "body", fault: { kind: "cut", afterBytes: 600_000 } });
    const r = await runMlagent(["download", server.repo, "--local-dir", target], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${target}\n`);
    assert.match(r.stderr, /downloaded acme\/tiny-model@main \([0-9a-f]{12}\) into /);
    assert.match(r.stderr, /fetched 5 of 5 files \(.* over the network\)/);
    const again = await runMlagent(["download", server.repo, "--local-dir", target], { env });
    assert.equal(again.stdout, `${target}\n`);
    assert.match(again.stderr, /fetched 0 of 5 files .*; 5 already complete and reused/);
    const quiet = await runMlagent(["download", server.repo, "--local-dir", target, "-q"], { env });
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stdout, `${target}\n`);
    assert.equal(quiet.stderr, "");
  },
);

Deno.test(
  "a resumed download's summary says what was kept from the earlier run and what was fetched",
  opts,
  async () => {
    const size = 3_000_000;
    await using server = new HubServer({
      files: [
        { path: "config.json", content: new TextEncoder().encode("{}\n"), lfs: false },
        { path: "weights.safetensors", content: { size, seed: 5 }, lfs: true },
      ],
    });
    await using dir = await tempDir();
    const env = vars(server, dir.path + "/hf", { MLAGENT_STALL_TIMEOUT_S: "0.3" });
    server.addFault({
      path: "weights.safetensors",
      on: "body",
      fault: { kind: "cut", afterBytes: 1_000_000 },
    });
    server.addFault({
      path: "weights.safetensors",
      on: "body",
      fault: { kind: "status", status: 500 },
      times: 10,
    });
    const first = await runMlagent(["download", server.repo, "--local-dir", dir.path], { env });
    assert.equal(first.code, 1);
    assert.equal(first.stdout, "", "nothing for a script to use when the download failed");
    server.faults.length = 0;
    const r = await runMlagent(["download", server.repo, "--local-dir", dir.path], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /fetched 1 of 2 files \(1\.9 MiB over the network\); 1 already complete and reused \(3 B\); 1 resumed from an earlier run's partial download \(976\.6 KiB kept, not fetched again\)/,
    );
  },
);

Deno.test("a Hub that cannot be reached is named with what failed and where to look", opts, async () => {
  // A port that was just free: the connection is refused.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await using dir = await tempDir();
  const base = { HF_HOME: dir.path + "/hf", MLAGENT_DOWNLOAD_BACKOFF_MS: "1" };
  const refused = await runMlagent(["download", "acme/tiny", "--local-dir", dir.path, "--json"], {
    env: { ...base, HF_ENDPOINT: `http://127.0.0.1:${port}` },
  });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /cannot reach 127\.0\.0\.1:\d+: the connection was refused or dropped/);
  assert.match(
    refused.stderr,
    /hint: .*check HF_ENDPOINT \(now http:\/\/127\.0\.0\.1:\d+\).*HF_HUB_OFFLINE=1/,
  );
  const doc = refused.json<{ error: { reach_failure: string } }>();
  assert.equal(doc.error.reach_failure, "connection");
  const dns = await runMlagent(["download", "acme/tiny", "--local-dir", dir.path], {
    env: { ...base, HF_ENDPOINT: "http://no-such-hub.invalid" },
  });
  assert.equal(dns.code, 1);
  assert.match(dns.stderr, /cannot reach no-such-hub\.invalid: DNS lookup failed/);
  assert.match(
    dns.stderr,
    /hint: DNS lookup failed: check HF_ENDPOINT .* and the host name and the node's DNS/,
  );
});

Deno.test(
  "offline, download names the revision the dir holds instead of a bare INCOMPLETE",
  opts,
  async () => {
    await using server = smallRepo();
    await using dir = await tempDir();
    const env = vars(server, dir.path + "/hf");
    assert.equal((await runMlagent(["download", server.repo, "--local-dir", dir.path], { env })).code, 0);
    const r = await runMlagent(["download", server.repo, "--local-dir", dir.path, "--revision", "v2.0"], {
      env: { ...env, HF_HUB_OFFLINE: "1" },
    });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /INCOMPLETE \(offline, HF_HUB_OFFLINE is set\)/);
    assert.match(r.stderr, /the dir holds revision "main" \(commit [0-9a-f]{12}\), not "v2\.0"/);
  },
);

Deno.test("mlagent download --verify --deep re-hashes every file with progress on stderr", opts, async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  const env = vars(server, dir.path + "/hf");
  assert.equal((await runMlagent(["download", server.repo, "--local-dir", dir.path], { env })).code, 0);
  const path = `${dir.path}/tokenizer/vocab.txt`;
  const st = await Deno.stat(path);
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(path, "z" + text.slice(1));
  await Deno.utime(path, st.atime!, st.mtime!);
  const fast = await runMlagent(["download", server.repo, "--local-dir", dir.path, "--verify"], { env });
  assert.equal(fast.code, 0, "same size and mtime: only a re-hash can tell");
  const deep = await runMlagent(["download", server.repo, "--local-dir", dir.path, "--verify", "--deep"], {
    env,
  });
  assert.equal(deep.code, 1);
  assert.match(
    deep.stdout,
    /INCOMPLETE: acme\/tiny-model in .* \(5 files, .*, 5 hashed\)\n {2}corrupt +tokenizer\/vocab\.txt/,
  );
  assert.match(deep.stderr, /re-hashing 5 files/);
  assert.match(deep.stderr, /hashed 5 files .*: 1 do not match/);
  const lone = await runMlagent(["download", server.repo, "--deep"], { env });
  assert.equal(lone.code, 2);
});

Deno.test(
  "a killed multi-range download keeps every finished range: the rerun asks only for the unfinished one",
  opts,
  async () => {
    const MiB = 1024 * 1024;
    const size = 8 * MiB;
    await using server = new HubServer({
      files: [{ path: "weights.safetensors", content: { size, seed: 8 }, lfs: true }],
    });
    await using dir = await tempDir();
    // One stream stalls after 1 MiB; judged slow after a second, the rest goes to parallel ranges that finish.
    server.addFault({
      path: "weights.safetensors",
      on: "body",
      fault: { kind: "stall", afterBytes: MiB, ms: 120_000 },
    });
    const env = vars(server, dir.path + "/hf", { MLAGENT_DOWNLOAD_RANGE_MIN_MIB: "1" });
    const [cmd, ...args] = mlagentArgv(["download", server.repo, "--local-dir", dir.path]);
    const child = new Deno.Command(cmd, {
      args,
      env: hermeticVars(env),
      clearEnv: true,
      stdout: "null",
      stderr: "null",
    }).spawn();
    const state = `${dir.path}/.cache/huggingface/download/weights.safetensors.incomplete.json`;
    // Every range but the stalled first stream finished, however the rest was split (ranges split again).
    const rangesFinished = async () => {
      try {
        const s = JSON.parse(await Deno.readTextFile(state)) as {
          segments: { start: number; end: number; pos: number }[];
        };
        const ranges = s.segments.filter((g) => g.start > 0);
        return ranges.length >= 3 && ranges.every((g) => g.pos === g.end);
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 60_000;
    while (server.sent("weights.safetensors") < size - 2 * MiB && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // The moment the other ranges are on record, before any periodic save could have caught up.
    while (!(await rangesFinished()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill("SIGKILL");
    await child.status;
    const before = server.requests.length;
    const sentBefore = server.sent("weights.safetensors");

    const r = await runMlagent(["download", server.repo, "--local-dir", dir.path, "--json"], { env });
    assert.equal(r.code, 0, r.stderr);
    const j = r.json<{ files_resumed: number; resumed_bytes: number; fetched_bytes: number }>();
    assert.equal(j.files_resumed, 1);
    const rerun = server.requests.slice(before).filter((q) =>
      q.method === "GET" && q.path.startsWith("/cdn/")
    );
    assert.deepEqual(rerun.map((q) => q.range), [`bytes=${MiB}-${3 * MiB - 1}`]);
    assert.equal(server.sent("weights.safetensors") - sentBefore, 2 * MiB);
    assert.equal(j.resumed_bytes, 6 * MiB);
    assert.equal(j.fetched_bytes, 2 * MiB);
  },
);
