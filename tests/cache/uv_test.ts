/**
 * uv's cache as uv lays it out (crates/uv-cache: `archive-v0/<id>/` unzipped wheels, `wheels-v5/pypi/<pkg>/`
 * entries linking to them, `simple-v15/pypi/<pkg>.rkyv`, `sdists-v9`, CACHEDIR.TAG, `.lock` files), broken the
 * ways concurrent and interrupted installs break it; plus the zip and cachecontrol readers the pip scan uses.
 */
import assert from "node:assert/strict";
import { decodeCachedResponse, packageFromBytes, scanCache, zipProblem } from "../../agent/cache/mod.ts";
import { runMlagent } from "../support/cli.ts";
import { tempDir, testEnv } from "../support/env.ts";
import { buildWheel } from "../support/pypi.ts";

const enc = (s: string) => new TextEncoder().encode(s);

interface Layout {
  root: string;
  uv: string;
  ids: Record<string, string>;
}

let idCounter = 0;
/** A uv ArchiveId: 21 nanoid characters. */
const nanoid = () => `Ab3_-x${String(++idCounter).padStart(15, "0")}`;

/** Writes one unzipped wheel into archive-v0 and its link under wheels-v5/pypi/<pkg>/, as uv does. */
async function addWheel(
  l: Layout,
  name: string,
  version: string,
  opts: { drop?: string[]; dropPackageFile?: boolean; noDistInfo?: boolean; danglingLink?: boolean } = {},
) {
  const mod = name.replace(/-/g, "_");
  const id = nanoid();
  l.ids[`${name}-${version}`] = id;
  const dir = `${l.uv}/archive-v0/${id}`;
  const di = `${dir}/${mod}-${version}.dist-info`;
  await Deno.mkdir(`${dir}/${mod}`, { recursive: true });
  if (!opts.dropPackageFile) await Deno.writeTextFile(`${dir}/${mod}/__init__.py`, "x = 1\n");
  if (!opts.noDistInfo) {
    await Deno.mkdir(di);
    const files: Record<string, string> = {
      METADATA: `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`,
      WHEEL: "Wheel-Version: 1.0\nTag: py3-none-any\n",
      RECORD: [
        `${mod}/__init__.py,sha256=abc,6`,
        `${mod}-${version}.dist-info/METADATA,sha256=def,40`,
        `${mod}-${version}.dist-info/WHEEL,sha256=ghi,30`,
        `${mod}-${version}.dist-info/RECORD,,`,
        "",
      ].join("\n"),
    };
    for (const [f, text] of Object.entries(files)) {
      if (!opts.drop?.includes(f)) await Deno.writeTextFile(`${di}/${f}`, text);
    }
  }
  const pkgDir = `${l.uv}/wheels-v5/pypi/${name}`;
  await Deno.mkdir(pkgDir, { recursive: true });
  await Deno.writeFile(
    `${pkgDir}/${mod}-${version}-py3-none-any.msgpack`,
    new Uint8Array([0x81, 0xa1, 0x61, 0x01]),
  );
  await Deno.symlink(`../../../archive-v0/${id}`, `${pkgDir}/${mod}-${version}-py3-none-any`);
  if (opts.danglingLink) await Deno.remove(dir, { recursive: true });
  await Deno.mkdir(`${l.uv}/simple-v15/pypi`, { recursive: true });
  await Deno.writeTextFile(`${l.uv}/simple-v15/pypi/${name}.rkyv`, "rkyv");
}

async function uvLayout(root: string): Promise<Layout> {
  const uv = `${root}/uv`;
  await Deno.mkdir(`${uv}/archive-v0`, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(`${uv}/CACHEDIR.TAG`, "Signature: 8a477f597d28d172789f06886806bc55\n");
  await Deno.writeTextFile(`${uv}/.gitignore`, "*\n");
  await Deno.writeTextFile(`${uv}/.lock`, "");
  await Deno.mkdir(`${uv}/sdists-v9/pypi/mla-slow/1.0`, { recursive: true });
  await Deno.writeTextFile(`${uv}/sdists-v9/pypi/mla-slow/1.0/.lock`, "");
  await Deno.mkdir(`${uv}/interpreter-v4`, { recursive: true });
  await Deno.writeTextFile(`${uv}/interpreter-v4/0123456789abcdef.msgpack`, "x");
  return { root, uv, ids: {} };
}

Deno.test("cache heal removes exactly the uv entries missing METADATA, RECORD, recorded files or their archive", async () => {
  await using dir = await tempDir();
  const root = `${dir.path}/cache`;
  await Deno.mkdir(root, { mode: 0o700 });
  const l = await uvLayout(root);
  await addWheel(l, "good-one", "1.0");
  await addWheel(l, "good-two", "2.0");
  await addWheel(l, "no-metadata", "1.0", { drop: ["METADATA"] });
  await addWheel(l, "no-record", "1.0", { drop: ["RECORD"] });
  await addWheel(l, "lost-file", "1.0", { dropPackageFile: true });
  await addWheel(l, "no-dist-info", "1.0", { noDistInfo: true });
  await addWheel(l, "dangling", "1.0", { danglingLink: true });
  // Things mlagent does not know: left alone and counted.
  await Deno.writeTextFile(`${root}/notes.txt`, "mine");
  await Deno.mkdir(`${l.uv}/future-bucket-v1`);
  const vars = {
    MLAGENT_CACHE_DIR: root,
    XDG_STATE_HOME: `${dir.path}/state`,
    MLAGENT_ROOT: `${dir.path}/venvs`,
    MLAGENT_LOCK_DIR: `${dir.path}/locks`,
  };

  const dry = await runMlagent(["cache", "heal", "--dry-run", "--json"], { env: vars });
  assert.equal(dry.code, 0, dry.stderr);
  const expected = [
    `${l.uv}/archive-v0/${l.ids["no-metadata-1.0"]}`,
    `${l.uv}/archive-v0/${l.ids["no-record-1.0"]}`,
    `${l.uv}/archive-v0/${l.ids["lost-file-1.0"]}`,
    `${l.uv}/archive-v0/${l.ids["no-dist-info-1.0"]}`,
    `${l.uv}/wheels-v5/pypi/dangling/dangling-1.0-py3-none-any`,
    // Links to the corrupt archives go with them, or the next run would find them dangling.
    `${l.uv}/wheels-v5/pypi/no-metadata/no_metadata-1.0-py3-none-any`,
    `${l.uv}/wheels-v5/pypi/no-record/no_record-1.0-py3-none-any`,
    `${l.uv}/wheels-v5/pypi/lost-file/lost_file-1.0-py3-none-any`,
    `${l.uv}/wheels-v5/pypi/no-dist-info/no_dist_info-1.0-py3-none-any`,
  ].sort();
  const found = dry.json<{ corrupt: { path: string; reason: string }[]; unknown_entries: number }>();
  assert.deepEqual(found.corrupt.map((c) => c.path).sort(), expected);
  assert.equal(found.unknown_entries, 2);
  const reasons = found.corrupt.map((c) => c.reason).join("\n");
  assert.match(reasons, /lacks METADATA/);
  assert.match(reasons, /lacks RECORD/);
  assert.match(reasons, /RECORD lists 1 missing file \(lost_file\/__init__\.py\)/);
  assert.match(reasons, /without a \.dist-info/);
  assert.match(reasons, /missing archive/);
  for (const p of expected) await Deno.lstat(p); // the dry run changed nothing

  const heal = await runMlagent(["cache", "heal", "--json"], { env: vars });
  assert.equal(heal.code, 0, heal.stderr);
  assert.deepEqual(heal.json<{ removed: string[] }>().removed.sort(), expected);
  for (const p of expected) await assert.rejects(Deno.lstat(p), Deno.errors.NotFound);
  // The healthy entries, uv's own lock files and the unknown entries are all still there.
  for (
    const p of [
      `${l.uv}/archive-v0/${l.ids["good-one-1.0"]}/good_one-1.0.dist-info/RECORD`,
      `${l.uv}/wheels-v5/pypi/good-two/good_two-2.0-py3-none-any/good_two/__init__.py`,
      `${l.uv}/.lock`,
      `${l.uv}/sdists-v9/pypi/mla-slow/1.0/.lock`,
      `${root}/notes.txt`,
      `${l.uv}/future-bucket-v1`,
    ]
  ) {
    await Deno.stat(p);
  }
  const log = (await Deno.readTextFile(`${dir.path}/state/mlagent/cache-heal.log`)).trim().split("\n");
  assert.equal(log.length, 1);
  assert.equal(JSON.parse(log[0]).removed.length, 9);

  // Idempotent: a second run finds nothing.
  const again = await runMlagent(["cache", "heal", "--json"], { env: vars });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.json<{ corrupt_entries: number }>().corrupt_entries, 0);
  assert.match(again.json<{ message: string }>().message, /nothing to heal/);

  const info = await runMlagent(["cache", "info", "--json"], { env: vars });
  assert.equal(info.code, 0, info.stderr);
  const ij = info.json<{ last_heal: { action: string }; unknown_entries: number; entries: { uv: number } }>();
  assert.equal(ij.unknown_entries, 2);
  assert.ok(ij.entries.uv > 0);
  assert.equal(ij.last_heal.action, "none");
});

Deno.test("healAfterFailure on a uv cache removes the named package and proven-corrupt entries, then moves it aside once", async () => {
  await using dir = await tempDir();
  const root = `${dir.path}/cache`;
  await Deno.mkdir(root, { mode: 0o700 });
  const l = await uvLayout(root);
  await addWheel(l, "keep-me", "1.0");
  await addWheel(l, "torch-ish", "1.0", { drop: ["METADATA"] });
  await addWheel(l, "named", "1.0");
  const { healAfterFailure } = await import("../../agent/cache/mod.ts");
  const env = testEnv();
  env.vars = {
    ...env.vars,
    XDG_STATE_HOME: `${dir.path}/state`,
    PATH: "/nonexistent",
    MLAGENT_LOCK_DIR: `${dir.path}/locks`,
  };
  const verdict = {
    kind: "cache-corrupt" as const,
    package: "named",
    cause: "cached wheel is missing METADATA",
    remedy: "",
    detail: null,
    url: null,
    retry: "heal-cache-then-once" as const,
    evidence: null,
  };
  const first = await healAfterFailure(env, { cacheDir: `${root}/uv`, installer: "uv", verdict, attempt: 1 });
  assert.equal(first.action, "targeted");
  await assert.rejects(Deno.lstat(`${l.uv}/archive-v0/${l.ids["named-1.0"]}`), Deno.errors.NotFound);
  await assert.rejects(Deno.lstat(`${l.uv}/archive-v0/${l.ids["torch-ish-1.0"]}`), Deno.errors.NotFound);
  await assert.rejects(Deno.lstat(`${l.uv}/simple-v15/pypi/named.rkyv`), Deno.errors.NotFound);
  await Deno.stat(`${l.uv}/archive-v0/${l.ids["keep-me-1.0"]}/keep_me/__init__.py`);
  await Deno.stat(`${l.uv}/.lock`);

  const second = await healAfterFailure(env, {
    cacheDir: `${root}/uv`,
    installer: "uv",
    verdict,
    attempt: 2,
  });
  assert.equal(second.action, "moved-aside");
  assert.deepEqual([...Deno.readDirSync(l.uv)], []);
  assert.deepEqual([...Deno.readDirSync(`${root}/.mlagent-trash`)], []);

  const third = await healAfterFailure(env, { cacheDir: `${root}/uv`, installer: "uv", verdict, attempt: 3 });
  assert.equal(third.action, "none");
});

Deno.test("zipProblem() accepts a whole wheel and rejects one cut in half", async () => {
  const { data } = buildWheel({ name: "mla-zip", version: "1.0" });
  assert.equal(zipProblem(data), null);
  assert.match(zipProblem(data.subarray(0, data.length >> 1)) ?? "", /cut short/);
  assert.match(zipProblem(new Uint8Array(5)) ?? "", /too short/);
  assert.equal(await packageFromBytes(data), "mla-zip");
  assert.equal(await packageFromBytes(data.subarray(0, 60)), "mla-zip"); // from the first local header
});

Deno.test("decodeCachedResponse() reads cachecontrol's cc=4 msgpack and reports a torn one", async () => {
  // {"response": {"body": b"abc", "headers": {"Content-Length": "3"}, "status": 200}, "vary": {}}
  const parts: number[] = [];
  const str = (s: string) => parts.push(0xa0 | s.length, ...enc(s));
  parts.push(0x82);
  str("response");
  parts.push(0x83);
  str("body");
  parts.push(0xc4, 3, 0x61, 0x62, 0x63);
  str("headers");
  parts.push(0x81);
  str("Content-Length");
  str("3");
  str("status");
  parts.push(0xcc, 200);
  str("vary");
  parts.push(0x80);
  const raw = new Uint8Array([...enc("cc=4,"), ...parts]);
  const r = await decodeCachedResponse(raw);
  assert.ok(typeof r !== "string");
  assert.equal(r.contentLength, 3);
  assert.equal(r.status, 200);
  assert.equal(new TextDecoder().decode(r.body), "abc");
  assert.match(await decodeCachedResponse(raw.subarray(0, raw.length - 6)) as string, /ends early/);
  assert.match(await decodeCachedResponse(enc("garbage")) as string, /cc=4/);
});

Deno.test("scanCache() counts entries of an empty or missing cache as zero", async () => {
  await using dir = await tempDir();
  const r = await scanCache(testEnv(), `${dir.path}/missing`);
  assert.equal(r.entries.total, 0);
  assert.equal(r.corrupt.length, 0);
});

Deno.test("healAfterFailure runs `uv cache clean PACKAGE` on the uv cache when uv is on PATH, keeping uv's locks", async () => {
  await using dir = await tempDir();
  const root = `${dir.path}/cache`;
  await Deno.mkdir(root, { mode: 0o700 });
  const l = await uvLayout(root);
  await addWheel(l, "named", "1.0");
  await addWheel(l, "other", "1.0");
  const bin = `${dir.path}/bin`;
  await Deno.mkdir(bin);
  await Deno.writeTextFile(`${bin}/uv`, `#!/bin/sh\necho "$UV_CACHE_DIR $*" >> '${dir.path}/uv.calls'\n`, {
    mode: 0o755,
  });
  const { healAfterFailure } = await import("../../agent/cache/mod.ts");
  const env = testEnv();
  env.vars = {
    ...env.vars,
    PATH: `${bin}:/usr/bin:/bin`,
    XDG_STATE_HOME: `${dir.path}/state`,
    MLAGENT_LOCK_DIR: `${dir.path}/locks`,
  };
  const r = await healAfterFailure(env, {
    cacheDir: root,
    installer: "uv",
    verdict: {
      kind: "cache-corrupt",
      package: "Named",
      cause: "missing METADATA",
      remedy: "",
      detail: null,
      url: null,
      retry: "heal-cache-then-once",
      evidence: null,
    },
    attempt: 1,
  });
  assert.equal(r.action, "targeted");
  assert.equal((await Deno.readTextFile(`${dir.path}/uv.calls`)).trim(), `${l.uv} cache clean named`);
  // The fake removed nothing, so mlagent removed the package's entries itself; never uv's locks.
  await assert.rejects(Deno.lstat(`${l.uv}/archive-v0/${l.ids["named-1.0"]}`), Deno.errors.NotFound);
  await Deno.stat(`${l.uv}/archive-v0/${l.ids["other-1.0"]}`);
  await Deno.stat(`${l.uv}/.lock`);
  await Deno.stat(`${l.uv}/sdists-v9/pypi/mla-slow/1.0/.lock`);
});
