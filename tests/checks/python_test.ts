import assert from "node:assert/strict";
import {
  askPython,
  choosePython,
  comparePythonVersions,
  evaluatePython,
  findPythons,
  gatherPython,
  headersRemedy,
  parseOsRelease,
  type PythonInfo,
  satisfies,
  venvRemedy,
} from "../../checks/python.ts";
import { MlagentError } from "../../agent/core/errors.ts";
import type { Profile } from "../../agent/profiles/types.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";
import { fakeCalls, writeFakeBin } from "../support/fake_bin.ts";

Deno.test("satisfies() follows PEP 440 for the constraints profiles use", () => {
  const cases: [string, string, boolean][] = [
    ["3.11.7", ">=3.10,<3.12", true],
    ["3.12.1", ">=3.10,<3.12", false],
    ["3.12.0rc1", "<3.12", false],
    ["3.10.0", ">=3.10", true],
    ["3.9.18", ">=3.10", false],
    ["3.11.7", "~=3.11", true],
    ["3.12.0", "~=3.11", true],
    ["4.0.0", "~=3.11", false],
    ["3.11.7", "~=3.11.8", false],
    ["3.11.9", "~=3.11.8", true],
    ["3.11.7", "==3.11.*", true],
    ["3.12.0", "==3.11.*", false],
    ["3.11.0", "==3.11", true],
    ["3.11.7", "!=3.11.*", false],
    ["3.11.7", "!=3.11.6", true],
    ["3.12.1", ">3.12", true],
    ["3.12", ">3.12", false],
    ["3.11.7", "<=3.11.7", true],
    ["3.11.7", "===3.11.7", true],
    ["3.11.7", "", true],
    ["3.13.0", " >= 3.10 , < 3.14 ", true],
  ];
  for (const [version, spec, want] of cases) {
    assert.equal(satisfies(version, spec), want, `${version} ${spec}`);
  }
});

Deno.test("satisfies() rejects a malformed specifier as bad input naming the clause", () => {
  for (const bad of ["3.11", ">=three", "~=3", ">>3.10"]) {
    assert.throws(
      () => satisfies("3.11.7", bad),
      (e) => e instanceof MlagentError && e.exitCode === 2 && e.message.includes(bad.split(",")[0]),
    );
  }
});

Deno.test("comparePythonVersions() orders pre-releases before finals and numerically", () => {
  const sorted = ["3.13.0", "3.9.18", "3.13.0rc2", "3.10.13", "3.13.0a1"].sort(comparePythonVersions);
  assert.deepEqual(sorted, ["3.9.18", "3.10.13", "3.13.0a1", "3.13.0rc2", "3.13.0"]);
});

const info = (version: string, over: Partial<PythonInfo> = {}): PythonInfo => ({
  executable: `/opt/py/${version}/bin/python3`,
  version,
  implementation: "cpython",
  source: "PATH",
  found_as: [],
  include_dir: `/opt/py/${version}/include`,
  headers: true,
  venv_module: true,
  ensurepip: "24.0",
  venv: true,
  problem: null,
  ...over,
});

Deno.test("choosePython() takes the newest that meets the constraint, else the newest overall", () => {
  const ps = [info("3.9.18"), info("3.11.7"), info("3.12.1"), info("3.10.13")];
  assert.deepEqual(choosePython(ps, ">=3.10,<3.12"), { python: ps[1], meets_constraint: true });
  assert.deepEqual(choosePython(ps, null), { python: ps[2], meets_constraint: true });
  assert.deepEqual(choosePython(ps, ">=3.13"), { python: ps[2], meets_constraint: false });
  assert.equal(choosePython([], ">=3.10"), null);
});

Deno.test("choosePython() prefers a working venv, and headers when the profile builds extensions", () => {
  const noVenv = info("3.12.1", { ensurepip: null });
  const noHeaders = info("3.11.9", { headers: false });
  const ok = info("3.11.2");
  assert.equal(choosePython([noVenv, noHeaders, ok], ">=3.10")!.python, noHeaders);
  assert.equal(choosePython([noVenv, noHeaders, ok], ">=3.10", { needHeaders: true })!.python, ok);
});

Deno.test("headersRemedy() names the exact package per distribution and interpreter manager", () => {
  const os = (text: string) => parseOsRelease(text);
  const cases: [string, Partial<PythonInfo>, string, RegExp][] = [
    [
      "Debian system 3.11",
      { executable: "/usr/bin/python3.11" },
      'ID=debian\nVERSION_ID="12"',
      /apt-get install python3\.11-dev/,
    ],
    [
      "Ubuntu system 3.10",
      { executable: "/usr/bin/python3", version: "3.10.12" },
      "ID=ubuntu\nID_LIKE=debian",
      /python3\.10-dev/,
    ],
    [
      "Rocky platform python3",
      { executable: "/usr/bin/python3", version: "3.9.18" },
      'ID="rocky"\nID_LIKE="rhel centos fedora"',
      /dnf install python3-devel/,
    ],
    ["RHEL python3.11", { executable: "/usr/bin/python3.11" }, 'ID="rhel"', /dnf install python3\.11-devel/],
    ["SLES python3.11", { executable: "/usr/bin/python3.11" }, 'ID="sles"', /zypper install python311-devel/],
    [
      "pyenv build",
      { executable: "/home/u/.pyenv/versions/3.11.7/bin/python3" },
      "ID=debian",
      /pyenv install --force 3\.11\.7/,
    ],
    [
      "uv-managed",
      { executable: "/home/u/.local/share/uv/python/cpython-3.11.9-linux-x86_64-gnu/bin/python3" },
      "ID=debian",
      /uv python install --reinstall 3\.11/,
    ],
  ];
  for (const [name, over, osText, want] of cases) {
    assert.match(headersRemedy({ ...info("3.11.7"), ...over }, os(osText)), want, name);
  }
  assert.match(headersRemedy(info("3.11.7"), null), /python3\.11-dev or python3\.11-devel/);
  assert.match(
    venvRemedy({ executable: "/usr/bin/python3.11", version: "3.11.2" }, os("ID=debian")),
    /apt-get install python3\.11-venv/,
  );
});

Deno.test("gatherPython() finds this machine's Debian and pyenv interpreters once each, and asks in full the one it takes", async () => {
  const env = testEnv({
    vars: hermeticVars({ PATH: "/usr/bin:/bin", HOME: "/root", PYENV_ROOT: undefined }),
  });
  // Debian's 3.11.2 is the newest that meets this; pyenv's 3.11.7 does not, 3.10.13 is older.
  const facts = await gatherPython(env, 20_000, { python: ">=3.10,<3.11.5", builds_extensions: true });
  const found = facts.found;
  const debian = found.find((p) =>
    p.executable === "/usr/bin/python3.11" || p.executable === "/usr/bin/python3"
  );
  assert.ok(debian, JSON.stringify(found.map((p) => p.executable)));
  assert.match(debian.version, /^3\.11\./);
  // /usr/bin/python3 and /usr/bin/python3.11 are one interpreter.
  assert.equal(
    found.filter((p) => p.executable.startsWith("/usr/bin/") || p.executable.startsWith("/bin/")).length,
    1,
  );
  assert.ok(found.find((p) => p.source === "pyenv" && p.version === "3.11.7"), "pyenv 3.11.7");
  assert.equal(new Set(found.map((p) => p.real)).size, found.length);
  // Only the one it takes is asked for headers, venv and ensurepip.
  assert.deepEqual(facts.pythons.map((p) => p.executable), [debian.executable]);
  const [asked] = facts.pythons;
  assert.equal(asked.headers, true);
  assert.equal(asked.venv, true);
  assert.ok(asked.ensurepip);
  assert.equal(asked.include_dir, "/usr/include/python3.11");
});

/**
 * A fake interpreter that answers who it is, and the full probe like a Debian python3.X without the
 * -dev/-venv packages unless told.
 */
async function fakePython(
  dir: string,
  { headers = false, ensurepip = true, version = "3.11.2", slowS = 0, answersProbe = true } = {},
) {
  const mm = version.split(".").slice(0, 2).join(".");
  const include = `${dir}/include/python${mm}`;
  await Deno.mkdir(include, { recursive: true });
  if (headers) await Deno.writeTextFile(`${include}/Python.h`, "");
  await Deno.mkdir(`${dir}/bin`, { recursive: true });
  const exe = `${dir}/bin/python${mm}`;
  // A wrapper may print before it execs the interpreter: only the last line is the answer.
  const identity = "wrapper says hello\n" + JSON.stringify([version, "cpython", exe, exe]) + "\n";
  await writeFakeBin(`${dir}/bin`, `python${mm}`, [{ whenArgsContain: "-I -S -c", stdout: identity }, {
    sleepS: slowS,
    exitCode: answersProbe ? 0 : 1,
    stdout: JSON.stringify({
      version,
      executable: exe,
      real: exe,
      implementation: "cpython",
      include_dir: include,
      headers,
      venv_module: true,
      ensurepip: ensurepip ? "23.0.1" : null,
      venv: ensurepip,
      problem: ensurepip ? null : "ensurepip: ModuleNotFoundError: No module named 'ensurepip'",
    }) + "\n",
  }]);
  return exe;
}

Deno.test("gatherPython() asks the rest in full only when the newest does not fit: the choice asking all would make", async () => {
  await using dir = await tempDir();
  const at = (v: string) => `${dir.path}/${v}`;
  await fakePython(at("3.12"), { version: "3.12.1", headers: true, ensurepip: false });
  await fakePython(at("3.11"), { version: "3.11.7", headers: false });
  await fakePython(at("3.10"), { version: "3.10.13", headers: true });
  await fakePython(at("3.9"), { version: "3.9.18", headers: true });
  const env = testEnv({
    vars: hermeticVars({
      PATH: ["3.12", "3.11", "3.10", "3.9"].map((v) => `${at(v)}/bin`).join(":"),
      HOME: dir.path,
      PYENV_ROOT: undefined,
    }),
  });
  const asked = async (python: string, builds_extensions: boolean) => {
    const facts = await gatherPython(env, 5000, { python, builds_extensions });
    assert.equal(facts.found.length, 4);
    const p = profile({ python, builds_extensions });
    const interp = evaluatePython(facts, { profile: p })[0];
    // The same choice as asking every interpreter in full.
    const every = [];
    for (const f of facts.found) every.push((await askPython(env, f))!);
    const all = choosePython(every, python, { needHeaders: builds_extensions })!.python.version;
    assert.equal((interp.facts?.python as { version: string }).version, all);
    return facts.pythons.map((x) => x.version);
  };
  // 3.12 cannot make a venv, so the rest that meet it are asked too: 3.11 has no headers, 3.10 has both.
  assert.deepEqual(await asked(">=3.10", true), ["3.12.1", "3.11.7", "3.10.13"]);
  assert.deepEqual(await asked(">=3.10", false), ["3.12.1", "3.11.7", "3.10.13"]);
  // The newest fits: it alone is asked in full.
  assert.deepEqual(await asked(">=3.11,<3.12", false), ["3.11.7"]);
  assert.deepEqual(await asked("<3.10", true), ["3.9.18"]);
  // Nothing meets it: the newest is asked, and the check fails listing all four.
  assert.deepEqual(await asked(">=3.13", true), ["3.12.1"]);
});

Deno.test("gatherPython() ranks two interpreters of one version by where they were found, not by which answers first", async () => {
  await using dir = await tempDir();
  const at = (v: string) => `${dir.path}/${v}`;
  await fakePython(at("new"), { version: "3.12.1", headers: true, ensurepip: false });
  // First on PATH, and slower to answer than the second.
  const first = await fakePython(at("a"), { version: "3.11.7", headers: true, slowS: 0.3 });
  await fakePython(at("b"), { version: "3.11.7", headers: true });
  const env = testEnv({
    vars: hermeticVars({
      PATH: ["new", "a", "b"].map((v) => `${at(v)}/bin`).join(":"),
      HOME: dir.path,
      PYENV_ROOT: undefined,
    }),
  });
  const facts = await gatherPython(env, 5000, { python: ">=3.10", builds_extensions: true });
  const interp = evaluatePython(facts, { profile: profile({ python: ">=3.10" }) })[0];
  assert.equal((interp.facts?.python as { executable: string }).executable, first);
});

Deno.test("an interpreter that meets the constraint but fails the full probe is named, not taken for absent", async () => {
  await using dir = await tempDir();
  const at = (v: string) => `${dir.path}/${v}`;
  const broken = await fakePython(at("3.12"), { version: "3.12.1", headers: true, answersProbe: false });
  await fakePython(at("3.9"), { version: "3.9.18", headers: true });
  const env = testEnv({
    vars: hermeticVars({
      PATH: [at("3.12"), at("3.9")].map((d) => `${d}/bin`).join(":"),
      HOME: dir.path,
      PYENV_ROOT: undefined,
    }),
  });
  const facts = await gatherPython(env, 5000, { python: ">=3.12", builds_extensions: true });
  const r = evaluatePython(facts, { profile: profile({ python: ">=3.12" }) })[0];
  assert.equal(r.status, "fail");
  assert.ok(
    r.message.includes(`3.12.1 at ${broken} did not answer the probe for sysconfig, venv and ensurepip`),
    r.message,
  );
});

const profile = (over: Partial<Profile> = {}): Profile => ({
  name: "ext-model",
  description: "",
  python: ">=3.10,<3.12",
  gpu: { required: false },
  cuda_variants: [],
  builds_extensions: true,
  disk_gib: 1,
  stages: [],
  verify: [],
  models: [],
  ...over,
});

Deno.test("python.headers fails with the package to install when Python.h is missing", async () => {
  await using dir = await tempDir();
  const exe = await fakePython(dir.path);
  const env = testEnv({
    vars: hermeticVars({ PATH: `${dir.path}/bin`, HOME: dir.path, PYENV_ROOT: undefined }),
  });
  const facts = await gatherPython(env, 5000);
  assert.deepEqual(facts.pythons.map((p) => p.executable), [exe]);
  // The probe script spans lines in the log; each call starts with "-I -c".
  const calls = await fakeCalls(`${dir.path}/bin`, "python3.11");
  assert.equal(calls.filter((l) => l.startsWith("-I -S -c")).length, 1, "asked who it is once");
  assert.equal(calls.filter((l) => l.startsWith("-I -c")).length, 1, "asked in full once");
  const rs = Object.fromEntries(
    evaluatePython({ ...facts, os: parseOsRelease("ID=debian") }, { profile: profile() }).map((
      r,
    ) => [r.id, r]),
  );
  assert.equal(rs["python.interpreter"].status, "pass");
  assert.equal(rs["python.headers"].status, "fail");
  assert.match(rs["python.headers"].message, /Python\.h missing from .*include\/python3\.11/);
  assert.equal(rs["python.headers"].remedy, "install the headers: `apt-get install python3.11-dev`");
  // A profile that builds nothing only warns.
  const plain = evaluatePython({ ...facts, os: null }, { profile: profile({ builds_extensions: false }) });
  assert.equal(plain.find((r) => r.id === "python.headers")!.status, "warn");
});

Deno.test("python.venv fails when ensurepip is missing, naming the venv package", async () => {
  await using dir = await tempDir();
  await fakePython(dir.path, { headers: true, ensurepip: false });
  const env = testEnv({
    vars: hermeticVars({ PATH: `${dir.path}/bin`, HOME: dir.path, PYENV_ROOT: undefined }),
  });
  const facts = await gatherPython(env, 5000);
  const r = evaluatePython({ ...facts, os: parseOsRelease("ID=ubuntu\nID_LIKE=debian") }, { profile: null })
    .find((x) => x.id === "python.venv")!;
  assert.equal(r.status, "fail");
  assert.match(r.message, /ensurepip is not available/);
  assert.match(r.remedy ?? "", /apt-get install python3\.11-venv/);
});

Deno.test("python.interpreter fails when nothing meets the profile's constraint, listing what was found", async () => {
  await using dir = await tempDir();
  await fakePython(dir.path, { headers: true });
  const env = testEnv({
    vars: hermeticVars({ PATH: `${dir.path}/bin`, HOME: dir.path, PYENV_ROOT: undefined }),
  });
  const facts = await gatherPython(env, 5000);
  const r = evaluatePython(facts, { profile: profile({ python: ">=3.12" }) })[0];
  assert.equal(r.status, "fail");
  assert.match(r.message, /no interpreter meets >=3\.12.*found 3\.11\.2/);
  assert.equal((r.facts?.python as { meets_constraint: boolean }).meets_constraint, false);
});

Deno.test("no interpreter at all fails python.interpreter and skips the rest", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  const env = testEnv({
    vars: hermeticVars({ PATH: `${dir.path}/bin`, HOME: dir.path, PYENV_ROOT: undefined }),
  });
  const rs = evaluatePython(await gatherPython(env, 5000), { profile: null });
  assert.deepEqual(rs.map((r) => r.status), ["fail", "skip", "skip"]);
});

Deno.test("findPythons() asks uv for an interpreter when uv is on PATH", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/bin`);
  await writeFakeBin(`${dir.path}/bin`, "uv", {
    whenArgsContain: "python find",
    stdout: "/usr/bin/python3.11\n",
  });
  const env = testEnv({
    vars: hermeticVars({ PATH: `${dir.path}/bin`, HOME: dir.path, PYENV_ROOT: undefined }),
  });
  const ps = await findPythons(env, ">=3.10", 20_000);
  assert.deepEqual(ps.map((p) => [p.executable, p.source]), [["/usr/bin/python3.11", "uv"]]);
  assert.deepEqual(await fakeCalls(`${dir.path}/bin`, "uv"), ["python find >=3.10"]);
});
