import assert from "node:assert/strict";
import { evaluateDisk, gatherDisk, parseDfP } from "../../checks/disk.ts";
import {
  evaluateInstallers,
  gatherInstallers,
  parseToolVersion,
  selectInstaller,
} from "../../checks/installers.ts";
import { checkPlacement, judgeTmpdir } from "../../checks/tmpdir.ts";
import { placeCache } from "../../agent/cache/placement.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";

const GIB = 1024 ** 3;

Deno.test("parseDfP() reads POSIX df rows, including filesystem names with spaces", () => {
  const text = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n" +
    "/dev/vda         264212084 22896456  83494456      22% /\n" +
    "server:/export home 1000 10 990 1% /mnt/my home\n";
  assert.deepEqual(parseDfP(text), [
    {
      filesystem: "/dev/vda",
      total_bytes: 264212084 * 1024,
      used_bytes: 22896456 * 1024,
      available_bytes: 83494456 * 1024,
      mount_point: "/",
    },
    {
      filesystem: "server:/export home",
      total_bytes: 1024000,
      used_bytes: 10240,
      available_bytes: 990 * 1024,
      mount_point: "/mnt/my home",
    },
  ]);
});

Deno.test("gatherDisk() asks df once for paths that do not exist yet, through their nearest ancestor", async () => {
  await using dir = await tempDir();
  const env = testEnv();
  const f = await gatherDisk(env, [
    { role: "venv root", path: `${dir.path}/not/yet/venvs` },
    { role: "cache", path: `${dir.path}/cache` },
  ]);
  assert.equal(f.problem, null);
  assert.deepEqual(f.places.map((p) => p.probed), [dir.path, dir.path]);
  assert.ok(f.places.every((p) => (p.available_bytes ?? -1) >= 0));
});

const place = (role: string, fs: string, free: number) => ({
  role,
  path: `/${role}`,
  probed: `/${role}`,
  filesystem: fs,
  mount_point: `/${fs}`,
  available_bytes: free,
});

const profile = (disk_gib: number): Profile => ({
  name: "big-model",
  description: "",
  python: ">=3.10",
  gpu: { required: false },
  cuda_variants: [],
  builds_extensions: false,
  disk_gib,
  stages: [],
  verify: [],
  models: [],
});

Deno.test("evaluateDisk() warns below 20 GiB without a profile and fails below the profile's need", () => {
  const cases: [string, ReturnType<typeof place>[], Profile | null, string][] = [
    ["plain node with 80 GiB", [place("venv root", "sda", 80 * GIB)], null, "pass"],
    ["plain node with 12 GiB", [place("venv root", "sda", 12 * GIB)], null, "warn"],
    ["profile needing 100 GiB on 50 GiB", [place("venv root", "sda", 50 * GIB)], profile(100), "fail"],
    [
      "cache fs short, venv fs fine",
      [place("venv root", "sda", 500 * GIB), place("cache", "tmp", 5 * GIB)],
      profile(10),
      "fail",
    ],
  ];
  for (const [name, places, p, status] of cases) {
    const r = evaluateDisk({ places, problem: null }, { profile: p });
    assert.equal(r.status, status, name);
    if (status !== "pass") assert.ok(r.remedy, name);
  }
  const shared = evaluateDisk({
    places: [place("venv root", "sda", 30 * GIB), { ...place("cache", "sda", 30 * GIB) }],
    problem: null,
  }, { profile: null });
  assert.match(shared.message, /30\.0 GiB free for venv root \/venv root and cache \/cache/);
  const unknown = evaluateDisk({ places: [], problem: "df is not on PATH" }, { profile: null });
  assert.equal(unknown.status, "warn");
});

Deno.test("judgeTmpdir() falls back to /tmp when TMPDIR is missing or a file, and says which", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/file`;
  await Deno.writeTextFile(file, "");
  const cases: [string | undefined, string, RegExp | null][] = [
    [undefined, "/tmp", null],
    [dir.path, dir.path, null],
    [`${dir.path}/missing`, "/tmp", /does not exist/],
    [file, "/tmp", /is not a directory/],
  ];
  for (const [tmpdir, effective, problem] of cases) {
    const v = await judgeTmpdir(testEnv({ vars: hermeticVars({ TMPDIR: tmpdir }) }));
    assert.equal(v.effective, effective, String(tmpdir));
    if (problem) assert.match(v.problem ?? "", problem);
    else assert.equal(v.problem, null);
  }
});

Deno.test("placeCache() takes MLAGENT_CACHE_DIR, else a usable TMPDIR, else /tmp", async () => {
  await using dir = await tempDir();
  await Deno.chmod(dir.path, 0o700);
  const forced = testEnv({ vars: hermeticVars({ MLAGENT_CACHE_DIR: `${dir.path}/c` }) });
  assert.equal((await placeCache(forced)).path, `${dir.path}/c`);
  const tmp = testEnv({ vars: hermeticVars({ TMPDIR: dir.path }) });
  assert.equal((await placeCache(tmp)).path, `${dir.path}/mlagent-cache-${tmp.uid}`);
  const broken = testEnv({ vars: hermeticVars({ TMPDIR: `${dir.path}/gone` }) });
  const c = await placeCache(broken);
  assert.equal(c.path, `/tmp/mlagent-cache-${broken.uid}`);
  assert.match(c.reason, /does not exist/);
});

/** A mountinfo where dir/scratch is its own xfs and dir/nfs is NFS, beside an ext4 root. */
async function fakeMounts(dir: string): Promise<string> {
  const proc = `${dir}/proc`;
  await Deno.mkdir(`${proc}/self`, { recursive: true });
  for (const d of ["scratch", "nfs", "home"]) await Deno.mkdir(`${dir}/${d}`);
  const real = await Deno.realPath(dir);
  await Deno.writeTextFile(
    `${proc}/self/mountinfo`,
    [
      "1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw",
      `2 1 8:2 / ${real}/scratch rw,relatime - xfs /dev/sdb1 rw`,
      `3 1 0:50 / ${real}/nfs rw,relatime - nfs4 fileserver:/export rw,vers=4.2`,
    ].join("\n") + "\n",
  );
  return proc;
}

const ctxFor = (env: ReturnType<typeof testEnv>, venvRoot: string, cacheDir?: string) => ({
  env,
  profile: null,
  venvRoot,
  probeTimeoutMs: 5000,
  cacheDir,
});

Deno.test("cache and venv root on different filesystems make installs copy (EXDEV), same one hard-link", async () => {
  await using dir = await tempDir();
  const procRoot = await fakeMounts(dir.path);
  const env = testEnv({ vars: hermeticVars(), procRoot });
  const split = await checkPlacement(ctxFor(env, `${dir.path}/home/venvs`, `${dir.path}/scratch/cache`));
  const link = split.results.find((r) => r.id === "cache.link_mode")!;
  assert.match(
    link.message,
    /different filesystems \(xfs at .*scratch vs ext4 at \/\): installs copy .*errno 18/,
  );
  assert.equal(split.results[0].facts?.link_mode, "copy");
  const same = await checkPlacement(ctxFor(env, `${dir.path}/scratch/venvs`, `${dir.path}/scratch/cache`));
  assert.match(same.results.find((r) => r.id === "cache.link_mode")!.message, /hard-link/);
});

Deno.test("a cache on NFS warns and a venv root on NFS is named as network-backed", async () => {
  await using dir = await tempDir();
  const procRoot = await fakeMounts(dir.path);
  const env = testEnv({ vars: hermeticVars(), procRoot });
  const { results } = await checkPlacement(ctxFor(env, `${dir.path}/nfs/venvs`, `${dir.path}/nfs/cache`));
  const byId = Object.fromEntries(results.map((r) => [r.id, r]));
  assert.equal(byId["cache.fs"].status, "warn");
  assert.match(byId["cache.fs"].message, /network filesystem \(nfs4 at/);
  assert.match(byId["cache.fs"].remedy ?? "", /MLAGENT_CACHE_DIR/);
  assert.match(byId["venv.fs"].message, /nfs4 .*network/);
});

Deno.test("a user cache dir on a network filesystem is reported beside the node-local one", async () => {
  await using dir = await tempDir();
  const procRoot = await fakeMounts(dir.path);
  const env = testEnv({ vars: hermeticVars({ UV_CACHE_DIR: `${dir.path}/nfs/uv` }), procRoot });
  const { results } = await checkPlacement(
    ctxFor(env, `${dir.path}/home/venvs`, `${dir.path}/scratch/cache`),
  );
  const cache = results.find((r) => r.id === "cache.fs")!;
  assert.equal(cache.status, "pass");
  assert.match(cache.message, /UV_CACHE_DIR=.*nfs4.*node-local cache instead/);
});

Deno.test("tmpdir check warns with a fix when TMPDIR does not exist", async () => {
  await using dir = await tempDir();
  const env = testEnv({ vars: hermeticVars({ TMPDIR: `${dir.path}/nope` }) });
  const { results } = await checkPlacement(ctxFor(env, `${dir.path}/venvs`));
  assert.equal(results[0].id, "tmpdir");
  assert.equal(results[0].status, "warn");
  assert.match(results[0].message, /TMPDIR=.*nope does not exist; falling back to \/tmp/);
  assert.match(results[0].remedy ?? "", /mkdir -p/);
});

Deno.test("selectInstaller() prefers uv, honours MLAGENT_INSTALLER, and explains a forced one that is missing", () => {
  assert.deepEqual(selectInstaller(null, "0.4.18", "24.0"), {
    installer: "uv",
    reason: "uv 0.4.18 is on PATH (faster resolves, shared cache)",
  });
  assert.equal((selectInstaller(null, null, "24.0") as { installer: string }).installer, "pip");
  assert.equal((selectInstaller("pip", "0.4.18", "24.0") as { installer: string }).installer, "pip");
  assert.match(
    (selectInstaller("uv", null, "24.0") as { error: string }).error,
    /MLAGENT_INSTALLER=uv but uv is not on PATH/,
  );
  assert.match((selectInstaller("conda", null, "24.0") as { error: string }).error, /must be "uv" or "pip"/);
  assert.equal(parseToolVersion("uv 0.4.18 (7b55e9790 2024-10-01)"), "0.4.18");
  assert.equal(parseToolVersion("pip 24.0 from /x/site-packages/pip (python 3.11)"), "24.0");
});

Deno.test("installer check reads uv's version from a uv on PATH", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "uv", {
    whenArgsContain: "--version",
    stdout: "uv 0.4.18 (7b55e9790 2024-10-01)\n",
  });
  const env = testEnv({ vars: hermeticVars({ PATH: `${dir.path}/bin:/usr/bin:/bin` }) });
  const r = evaluateInstallers(await gatherInstallers(env, "23.2.1"));
  assert.equal(r.status, "pass");
  assert.match(
    r.message,
    /installs will use uv: uv 0\.4\.18 is on PATH.*pip 23\.2\.1 from the chosen interpreter.s ensurepip/,
  );
  assert.deepEqual(await fakeCalls(`${dir.path}/bin`, "uv"), ["--version"]);
  const forcedPip = evaluateInstallers(
    await gatherInstallers(testEnv({ vars: { ...env.vars, MLAGENT_INSTALLER: "pip" } }), "23.2.1"),
  );
  assert.match(forcedPip.message, /installs will use pip: forced by MLAGENT_INSTALLER=pip/);
});

Deno.test("cache.fs fails, naming the path, when the cache dir installs would use is a file", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/cache-file`, "");
  const env = testEnv({ vars: hermeticVars({ MLAGENT_CACHE_DIR: `${dir.path}/cache-file` }) });
  const { results, cacheDir } = await checkPlacement(ctxFor(env, `${dir.path}/venvs`));
  const cache = results.find((r) => r.id === "cache.fs")!;
  assert.equal(cache.status, "fail");
  assert.match(cache.message, /cache-file is not a directory/);
  assert.equal(cacheDir, `${dir.path}/cache-file`);
});

Deno.test("doctor's cache dir is the one agent/cache.ts places, without creating it", async () => {
  await using dir = await tempDir();
  const env = testEnv({ vars: hermeticVars({ TMPDIR: dir.path }) });
  await Deno.chmod(dir.path, 0o700);
  const { cacheDir } = await checkPlacement(ctxFor(env, `${dir.path}/venvs`));
  assert.equal(cacheDir, `${dir.path}/mlagent-cache-${env.uid}`);
  await assert.rejects(Deno.stat(cacheDir), Deno.errors.NotFound);
});
