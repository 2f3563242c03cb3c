/**
 * A hostile Hub (issue 12, "Redirects and responses from the Hub" and "Small lies"): redirects to other
 * schemes or from https to http, answers that never end, bodies longer than the listing says, names with
 * control characters, and a `.cache` that leads out of the target dir. Each is refused with a clear error
 * and leaves nothing from the hostile answer on disk.
 */
import assert from "node:assert/strict";
import { downloadRepo, verifyLocalModel } from "../../agent/download/mod.ts";
import { API_BODY_MAX_BYTES, hasControlChar, quote, redirectProblem } from "../../agent/download/hub.ts";
import { MlagentError } from "../../agent/core/errors.ts";
import { filesUnder, hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { runMlagent } from "../support/cli.ts";
import { HubServer, smallRepo } from "../support/hf_server.ts";

const FAST = { backoffBaseMs: 1, skipDiskCheck: true, stallTimeoutMs: 2000 };
const cliOpts = { sanitizeResources: false, sanitizeOps: false };

function envFor(server: HubServer, extra: Partial<Parameters<typeof testEnv>[0]> = {}) {
  return testEnv({
    vars: hermeticVars({ HF_ENDPOINT: server.url, HF_HOME: "/nonexistent-hf-home" }),
    sleep: () => Promise.resolve(),
    ...extra,
  });
}

/** Every byte of every file under `dir`, as text (the test files are small). */
async function everything(dir: string): Promise<string> {
  let all = "";
  for (const f of filesUnder(dir)) all += await Deno.readTextFile(`${dir}/${f}`).catch(() => "");
  return all;
}

Deno.test("redirectProblem() follows http and https only, and never from https to http", () => {
  const rows: [string, string, RegExp | null][] = [
    ["https://hub/a", "https://cdn/b", null],
    ["http://hub/a", "https://cdn/b", null],
    ["http://hub/a", "/relative", null],
    ["https://hub/a", "http://cdn/b", /https to plain http/],
    ["https://hub/a", "file:///etc/passwd", /"file" URL/],
    ["http://hub/a", "data:text/plain,hello", /"data" URL/],
    ["http://hub/a", "ftp://mirror/x", /"ftp" URL/],
    ["http://hub/a", "javascript:alert(1)", /"javascript" URL/],
  ];
  for (const [from, to, want] of rows) {
    const got = redirectProblem(from, to);
    if (want === null) assert.equal(got, null, `${from} -> ${to}`);
    else assert.match(got ?? "", want, `${from} -> ${to}`);
  }
});

for (
  const [name, location] of [
    ["file:", "file://SECRET"],
    ["data:", "data:application/octet-stream;base64,c2VjcmV0LWZyb20tZGF0YQ=="],
    ["ftp:", "ftp://127.0.0.1/secret"],
  ] as const
) {
  Deno.test(`download refuses a Hub redirect to a ${name} URL (exit 2) and writes none of it`, async () => {
    await using server = smallRepo();
    await using dir = await tempDir();
    await using secrets = await tempDir();
    const secret = `${secrets.path}/private.key`;
    await Deno.writeTextFile(secret, "-----BEGIN PRIVATE KEY----- do not copy");
    const target = location.replace("SECRET", secret);
    // As the LFS file's resolve answer (the CDN location the body would be read from) and as a regular file's
    // body GET.
    server.addFault({
      path: "model.safetensors",
      on: "resolve",
      fault: { kind: "redirect", location: target },
    });
    server.addFault({ path: "config.json", on: "body", fault: { kind: "redirect", location: target } });
    for (const include of [["model.safetensors"], ["config.json"]]) {
      await assert.rejects(
        downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, include, ...FAST }),
        (e: unknown) =>
          e instanceof MlagentError && e.exitCode === 2 &&
          new RegExp(`redirect to a "${name.slice(0, -1)}" URL`).test(e.message) && /refused/.test(e.message),
      );
    }
    const onDisk = await everything(dir.path);
    assert.ok(!onDisk.includes("do not copy") && !onDisk.includes("secret-from-data"));
    await assert.rejects(Deno.stat(`${dir.path}/model.safetensors`), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(`${dir.path}/config.json`), Deno.errors.NotFound);
  });
}

Deno.test("download over https refuses a redirect to plain http", async () => {
  await using certs = await tempDir();
  const gen = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${certs.path}/k.pem`,
      "-out",
      `${certs.path}/c.pem`,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(gen.code, 0, new TextDecoder().decode(gen.stderr));
  const cert = await Deno.readTextFile(`${certs.path}/c.pem`);
  const key = await Deno.readTextFile(`${certs.path}/k.pem`);
  await using server = smallRepo({ tls: { cert, key } });
  await using plain = smallRepo();
  await using dir = await tempDir();
  const client = Deno.createHttpClient({ caCerts: [cert] });
  try {
    const fetchTls: typeof fetch = (input, init) => fetch(input, { ...init, client });
    // First prove the https Hub works at all, then send its LFS file to the plain-http twin.
    const ok = await downloadRepo(envFor(server, { fetch: fetchTls }), {
      repo: server.repo,
      localDir: `${dir.path}/ok`,
      include: ["config.json"],
      ...FAST,
    });
    assert.equal(ok.ok, true);
    const sha = server.entry("model.safetensors")!.sha256;
    server.addFault({
      path: "model.safetensors",
      on: "resolve",
      fault: { kind: "redirect", location: `${plain.cdnUrl}/cdn/${sha}` },
    });
    await assert.rejects(
      downloadRepo(envFor(server, { fetch: fetchTls }), {
        repo: server.repo,
        localDir: `${dir.path}/bad`,
        include: ["model.safetensors"],
        ...FAST,
      }),
      (e: unknown) => e instanceof MlagentError && e.exitCode === 2 && /https to plain http/.test(e.message),
    );
    assert.equal(plain.requests.length, 0, "nothing was asked of the plain-http host");
  } finally {
    client.close();
  }
});

for (const on of ["revision", "tree"] as const) {
  Deno.test(`an endless ${on} answer is cut at the cap and named, not read into memory`, async () => {
    await using server = smallRepo();
    await using dir = await tempDir();
    server.addFault({ path: "*", on, fault: { kind: "endless" } });
    const t0 = Date.now();
    await assert.rejects(
      downloadRepo(envFor(server), {
        repo: server.repo,
        localDir: dir.path,
        ...FAST,
        stallTimeoutMs: 30_000,
      }),
      (e: unknown) =>
        e instanceof MlagentError && e.exitCode === 1 &&
        new RegExp(
          `answer from http://127\\.0\\.0\\.1:\\d+/api/models/acme/tiny-model/${on}/.* is larger than 64\\.0 MiB`,
        )
          .test(e.message),
    );
    assert.ok(Date.now() - t0 < 30_000, `${Date.now() - t0} ms`);
    // Read as it streams and stopped at the cap: the server sent little more than the cap (socket buffers).
    assert.ok(
      server.endlessBytesSent < API_BODY_MAX_BYTES + 32 * 1024 * 1024,
      String(server.endlessBytesSent),
    );
    assert.ok(server.endlessBytesSent >= API_BODY_MAX_BYTES);
  });
}

for (const announce of [true, false]) {
  Deno.test(`a file body longer than its listed size is an error, not a bigger file (${announce ? "announced in Content-Length" : "chunked"})`, async () => {
    await using server = smallRepo();
    await using dir = await tempDir();
    for (const path of ["model.safetensors", "config.json"]) {
      server.addFault({
        path,
        on: "body",
        fault: { kind: "extra-bytes", bytes: 200_000, announce },
        times: 5,
      });
      await assert.rejects(
        downloadRepo(envFor(server), { repo: server.repo, localDir: dir.path, include: [path], ...FAST }),
        (e: unknown) =>
          e instanceof MlagentError && e.exitCode === 1 &&
          e.message.includes(`${path}: the server`) && /lists the file at \d+ bytes; refused/.test(e.message),
      );
      await assert.rejects(Deno.stat(`${dir.path}/${path}`), Deno.errors.NotFound);
      const part = await Deno.stat(`${dir.path}/.cache/huggingface/download/${path}.incomplete`).catch(() =>
        null
      );
      assert.ok(!part || part.size <= server.entry(path)!.size, `part of ${path} is ${part?.size} bytes`);
    }
  });
}

Deno.test("a listed file name with a control character is refused, echoed escaped, nothing written", async () => {
  for (const hostile of ["evil\u001b[31m.txt", "line\nbreak.json", "bell\u0007", "c1\u009b.bin"]) {
    await using server = smallRepo();
    await using dir = await tempDir();
    server.extraEntries.push({ type: "file", oid: "0".repeat(40), size: 3, path: hostile });
    await assert.rejects(
      downloadRepo(envFor(server), { repo: server.repo, localDir: `${dir.path}/target`, ...FAST }),
      (e: unknown) =>
        e instanceof MlagentError && e.exitCode === 2 && e.message.includes(quote(hostile)) &&
        /control character/.test(e.message) && !hasControlChar(e.message),
    );
    assert.deepEqual([...Deno.readDirSync(dir.path)], []);
  }
});

Deno.test(
  "mlagent download echoes a repo id or revision with control characters escaped (exit 2)",
  cliOpts,
  async () => {
    const id = await runMlagent(["download", "acme/tiny\nFAKE: all good"]);
    assert.equal(id.code, 2);
    assert.match(id.stderr, /repo id "acme\/tiny\\nFAKE: all good" contains a control character/);
    assert.ok(!id.stderr.includes("tiny\nFAKE"), id.stderr);
    const rev = await runMlagent(["download", "acme/tiny", "--revision", "main\u001b[2J", "--json"]);
    assert.equal(rev.code, 2);
    assert.match(rev.stderr, /revision "main\\u001b\[2J" contains a control character/);
    assert.ok(!rev.stderr.includes("\u001b[2J") && !rev.stdout.includes("\u001b"));
  },
);

Deno.test("a .cache in the target that is a symlink out of it: download refuses (exit 2, naming it), verify distrusts it", async () => {
  await using server = smallRepo();
  await using dir = await tempDir();
  await using elsewhere = await tempDir();
  const target = `${dir.path}/model`;
  await Deno.mkdir(target);
  await Deno.symlink(elsewhere.path, `${target}/.cache`);
  await assert.rejects(
    downloadRepo(envFor(server), { repo: server.repo, localDir: target, ...FAST }),
    (e: unknown) =>
      e instanceof MlagentError && e.exitCode === 2 &&
      e.message.includes(`${target}/.cache is a symlink to`) &&
      e.message.includes(elsewhere.path),
  );
  assert.deepEqual([...Deno.readDirSync(elsewhere.path)], []);
  assert.equal(server.requests.length, 0);
  const v = await verifyLocalModel(envFor(server), { repo: server.repo, localDir: target });
  assert.equal(v.complete, false);
  assert.match(v.reason ?? "", /\.cache is a symlink to .* not trusted/);
  // One level down, too.
  await Deno.remove(`${target}/.cache`);
  await Deno.mkdir(`${target}/.cache`);
  await Deno.symlink(elsewhere.path, `${target}/.cache/huggingface`);
  await assert.rejects(
    downloadRepo(envFor(server), { repo: server.repo, localDir: target, ...FAST }),
    (e: unknown) =>
      e instanceof MlagentError && e.exitCode === 2 && /\.cache\/huggingface is a symlink/.test(e.message),
  );
});
