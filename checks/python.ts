/**
 * Python: find interpreters (python3, python3.X, python on PATH; pyenv versions; `uv python find`), ask each
 * who it is, ask in full (sysconfig include dir, Python.h, venv, ensurepip) only as many as choosing one that
 * meets the profile's PEP 440 constraint takes, and say which package brings missing headers or venv.
 */
import type { Env } from "../agent/core/env.ts";
import { badInput } from "../agent/core/errors.ts";
import { findOnPath } from "../agent/core/run.ts";
import { type CheckContext, type CheckResult, result } from "./types.ts";

// ---------------------------------------------------------------------------------------------- PEP 440

interface ParsedVersion {
  release: number[];
  /** Pre-release ("a", "b", "rc") and its number; null for a final release. */
  pre: [string, number] | null;
  dev: number | null;
}

const VERSION_RE =
  /^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?(\d*))?(?:[-_.]?(post|rev|r)[-_.]?\d*)?(?:[-_.]?dev[-_.]?(\d*))?(?:\+[a-z0-9.]+)?$/i;

function parseVersion(v: string): ParsedVersion | null {
  const m = VERSION_RE.exec(v.trim());
  if (!m) return null;
  const preTag = m[2]?.toLowerCase();
  const norm = preTag === "alpha"
    ? "a"
    : preTag === "beta"
    ? "b"
    : preTag && /^(c|pre|preview)$/.test(preTag)
    ? "rc"
    : preTag;
  return {
    release: m[1].split(".").map(Number),
    pre: norm ? [norm, Number(m[3] || 0)] : null,
    dev: m[5] !== undefined ? Number(m[5] || 0) : null,
  };
}

function compareParsed(a: ParsedVersion, b: ParsedVersion): number {
  for (let i = 0; i < Math.max(a.release.length, b.release.length); i++) {
    const d = (a.release[i] ?? 0) - (b.release[i] ?? 0);
    if (d) return Math.sign(d);
  }
  const rank = (p: ParsedVersion) => (p.pre ? ["a", "b", "rc"].indexOf(p.pre[0]) : 3);
  if (rank(a) !== rank(b)) return Math.sign(rank(a) - rank(b));
  if (a.pre && b.pre && a.pre[1] !== b.pre[1]) return Math.sign(a.pre[1] - b.pre[1]);
  if ((a.dev === null) !== (b.dev === null)) return a.dev === null ? 1 : -1;
  return Math.sign((a.dev ?? 0) - (b.dev ?? 0));
}

/** Compares two PEP 440 versions; unparsable ones sort first. */
export function comparePythonVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) return pa ? 1 : pb ? -1 : 0;
  return compareParsed(pa, pb);
}

const CLAUSE_RE = /^(~=|===|==|!=|<=|>=|<|>)\s*(\S+)$/;

/** Throws badInput naming the bad clause when a specifier set is not PEP 440. */
export function validateSpecifier(specifier: string): void {
  for (const clause of specifier.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (clause === "*") continue;
    const m = CLAUSE_RE.exec(clause);
    const target = m?.[2].replace(/\.\*$/, "");
    if (!m || (m[1] !== "===" && !parseVersion(target!)) || (m[1] === "~=" && !target!.includes("."))) {
      throw badInput(
        `not a PEP 440 version specifier: "${clause}" in "${specifier}"`,
        'write it like ">=3.10,<3.13"',
      );
    }
  }
}

/**
 * PEP 440: does `version` satisfy every clause of `specifier` (">=3.10,<3.12", "~=3.11", "==3.11.*")?
 * An empty specifier matches everything. Throws badInput for a malformed specifier.
 */
export function satisfies(version: string, specifier: string): boolean {
  validateSpecifier(specifier);
  const v = parseVersion(version);
  if (!v) return false;
  for (const clause of specifier.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (clause === "*") continue;
    const [, op, raw] = CLAUSE_RE.exec(clause)!;
    if (op === "===") {
      if (version.trim() !== raw) return false;
      continue;
    }
    const wildcard = raw.endsWith(".*");
    const t = parseVersion(raw.replace(/\.\*$/, ""))!;
    const prefixMatch = () => t.release.every((n, i) => (v.release[i] ?? 0) === n);
    const c = compareParsed(v, t);
    let ok: boolean;
    switch (op) {
      case "==":
        ok = wildcard ? prefixMatch() : c === 0;
        break;
      case "!=":
        ok = wildcard ? !prefixMatch() : c !== 0;
        break;
      case ">=":
        ok = c >= 0;
        break;
      case "<=":
        ok = c <= 0;
        break;
      // "<3.12" must not admit 3.12.0rc1 (PEP 440 excludes pre-releases of the bound itself).
      case "<":
        ok = c < 0 && !(v.pre && !t.pre && t.release.every((n, i) => (v.release[i] ?? 0) === n));
        break;
      case ">":
        ok = c > 0;
        break;
      case "~=": {
        const prefix = t.release.slice(0, -1);
        ok = c >= 0 && prefix.every((n, i) => (v.release[i] ?? 0) === n);
        break;
      }
      default:
        ok = false;
    }
    if (!ok) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------- discovery

export interface PythonInfo {
  /** sys.executable: the interpreter itself, never a pyenv shim. */
  executable: string;
  version: string;
  implementation: string;
  /** Where it was found: "PATH", "pyenv", "uv". */
  source: string;
  /** The paths that led to it (several names can reach one interpreter). */
  found_as: string[];
  include_dir: string | null;
  /** Python.h exists in the sysconfig include dir. */
  headers: boolean;
  venv_module: boolean;
  /** ensurepip's bundled pip version; null when ensurepip is missing (Debian without python3.X-venv). */
  ensurepip: string | null;
  /** A venv could be created (null when not probed). */
  venv: boolean | null;
  problem: string | null;
}

/** What each interpreter runs: one process answers everything doctor asks. Python 3.6+; older ones fail and are listed as unusable. */
export const PROBE_SCRIPT = `
import sys, os, json, sysconfig, platform, importlib.util
r = {"version": platform.python_version(), "executable": sys.executable, "real": os.path.realpath(sys.executable),
     "implementation": sys.implementation.name}
inc = sysconfig.get_paths().get("include") or sysconfig.get_config_var("INCLUDEPY") or ""
r["include_dir"] = inc or None
r["headers"] = bool(inc) and os.path.exists(os.path.join(inc, "Python.h"))
r["venv_module"] = importlib.util.find_spec("venv") is not None
try:
    import ensurepip
    r["ensurepip"] = ensurepip.version()
except Exception as e:
    r["ensurepip"] = None
    r["problem"] = "ensurepip: %s: %s" % (type(e).__name__, e)
r["venv"] = None
if "--venv" in sys.argv and r["venv_module"]:
    import tempfile, shutil, venv
    d = tempfile.mkdtemp(prefix="mlagent-venv-probe-")
    try:
        venv.EnvBuilder(with_pip=False, symlinks=True).create(d)
        r["venv"] = os.path.exists(os.path.join(d, "bin", "python"))
    except BaseException as e:
        r["venv"] = False
        r["problem"] = "venv: %s: %s" % (type(e).__name__, e)
    finally:
        shutil.rmtree(d, ignore_errors=True)
print(json.dumps(r))
`;

const NAME_RE = /^python(3(\.\d+)?)?$/;

/** Candidate paths in discovery order, before asking them anything. */
export async function listPythonCandidates(env: Env, constraint?: string, timeoutMs = 10_000) {
  const out: { path: string; source: string }[] = [];
  // The interpreter install will use, and nothing else: the doctor judges what install builds from.
  const forced = env.vars.MLAGENT_PYTHON?.trim();
  if (forced) return [{ path: findOnPath(forced, env.vars.PATH) ?? forced, source: "MLAGENT_PYTHON" }];
  const pyenvRoot = env.vars.PYENV_ROOT || `${env.vars.HOME ?? ""}/.pyenv`;
  const listed = new Set<string>();
  for (const dir of (env.vars.PATH ?? "").split(":")) {
    // pyenv shims cost a bash+pyenv round trip each and only reach versions listed below.
    if (!dir || /\/shims\/?$/.test(dir)) continue;
    // /bin is /usr/bin on a merged-/usr system: listing its thousand entries twice cost ~15 ms here.
    const real = await env.fs.realPath(dir).catch(() => null);
    if (!real || listed.has(real)) continue;
    listed.add(real);
    const names: string[] = [];
    try {
      for await (const e of env.fs.readDir(dir)) if (NAME_RE.test(e.name)) names.push(e.name);
    } catch {
      continue;
    }
    names.sort((a, b) => b.localeCompare(a, "en", { numeric: true }));
    for (const n of names) out.push({ path: `${dir}/${n}`, source: "PATH" });
  }
  try {
    const versions: string[] = [];
    for await (const e of env.fs.readDir(`${pyenvRoot}/versions`)) {
      if (e.isDirectory || e.isSymlink) versions.push(e.name);
    }
    versions.sort((a, b) => b.localeCompare(a, "en", { numeric: true }));
    for (const v of versions) {
      for (const n of ["python3", "python"]) {
        const p = `${pyenvRoot}/versions/${v}/bin/${n}`;
        try {
          await env.fs.stat(p);
          out.push({ path: p, source: "pyenv" });
          break;
        } catch { /* not this name */ }
      }
    }
  } catch { /* no pyenv */ }
  if (findOnPath("uv", env.vars.PATH)) {
    const r = await env.run(["uv", "python", "find", ...(constraint ? [constraint] : [])], { timeoutMs });
    if (r.kind === "exited" && r.code === 0 && r.stdout.trim()) {
      out.push({ path: r.stdout.trim().split("\n")[0], source: "uv" });
    }
  }
  return out;
}

/** An interpreter as it named itself when asked who it is, before anything else is asked of it. */
export interface FoundPython {
  executable: string;
  /** os.path.realpath(sys.executable): one interpreter however many names reach it. */
  real: string;
  version: string;
  implementation: string;
  source: string;
  found_as: string[];
}

/**
 * What every interpreter is asked first: who it is, with nothing but json imported (-S), ~20 ms each where
 * the full probe costs ~150 ms. One JSON line, read last as the full probe's is: a wrapper may print first,
 * and JSON escapes a path the locale cannot encode.
 */
export const IDENTIFY_SCRIPT = "import sys, os, json; print(json.dumps([sys.version.split()[0], " +
  "sys.implementation.name, sys.executable, os.path.realpath(sys.executable)]))";

/** The last line of a probe's stdout as JSON, or null. */
function lastJsonLine(stdout: string): unknown {
  try {
    return JSON.parse(stdout.trim().split("\n").pop()!);
  } catch {
    return null;
  }
}

/** Finds every interpreter and asks each who it is; several names of one interpreter are merged. */
export async function findPythons(env: Env, constraint?: string, timeoutMs = 10_000): Promise<FoundPython[]> {
  const candidates = await listPythonCandidates(env, constraint, timeoutMs);
  // Merge names of one file before spawning anything.
  const byReal = new Map<string, { path: string; source: string; names: string[] }>();
  for (const c of candidates) {
    let real = c.path;
    try {
      real = await env.fs.realPath(c.path);
    } catch {
      continue;
    }
    const seen = byReal.get(real);
    if (seen) seen.names.push(c.path);
    else byReal.set(real, { ...c, names: [c.path] });
  }
  const answers = await Promise.all([...byReal.values()].map(async (c) => {
    // Python 2 refuses -I and drops out here, as it should.
    const r = await env.run([c.path, "-I", "-S", "-c", IDENTIFY_SCRIPT], { timeoutMs });
    if (r.kind !== "exited" || r.code !== 0) return null;
    const said = lastJsonLine(r.stdout);
    if (!Array.isArray(said) || !said.every((x) => typeof x === "string")) return null;
    const [version, implementation, executable, real] = said as string[];
    return version && real ? { c, version, implementation, executable, real } : null;
  }));
  const out = new Map<string, FoundPython>();
  for (const a of answers) {
    if (!a) continue;
    const prev = out.get(a.real);
    if (prev) {
      prev.found_as.push(...a.c.names);
      continue;
    }
    out.set(a.real, {
      executable: a.executable || a.c.path,
      real: a.real,
      version: a.version,
      implementation: a.implementation || "cpython",
      source: a.c.source,
      found_as: a.c.names,
    });
  }
  return [...out.values()];
}

/** Everything the doctor asks of one interpreter (one process); null when it does not answer. */
export async function askPython(
  env: Env,
  found: FoundPython,
  opts: { probeVenv?: boolean; timeoutMs?: number } = {},
): Promise<PythonInfo | null> {
  // By the name it was found as: a wrapper that sets up its interpreter's environment stays in the way.
  const r = await env.run(
    [found.found_as[0], "-I", "-c", PROBE_SCRIPT, ...(opts.probeVenv ? ["--venv"] : [])],
    { timeoutMs: opts.timeoutMs ?? 10_000 },
  );
  if (r.kind !== "exited" || r.code !== 0) return null;
  const said = lastJsonLine(r.stdout);
  if (!said || typeof said !== "object") return null;
  const j = said as Record<string, unknown>;
  return {
    executable: String(j.executable || found.executable),
    version: String(j.version ?? found.version),
    implementation: String(j.implementation ?? found.implementation),
    source: found.source,
    found_as: found.found_as,
    include_dir: (j.include_dir as string | null) ?? null,
    headers: !!j.headers,
    venv_module: !!j.venv_module,
    ensurepip: (j.ensurepip as string | null) ?? null,
    venv: (j.venv as boolean | null) ?? null,
    problem: (j.problem as string | null) ?? null,
  };
}

/**
 * Asks in full the newest interpreter that meets the constraint, and the others that meet it only when that
 * one is not what choosePython takes over all the rest (a working venv, and headers when they are needed).
 * The choice is the one asking every interpreter gives, for one full probe where the newest fits instead of
 * ten (~0.4 s of a doctor or cold install on a node with ten interpreters).
 */
export async function askWhatChoosingNeeds(
  env: Env,
  found: FoundPython[],
  want: { constraint?: string | null; needHeaders: boolean; probeVenv?: boolean; timeoutMs?: number },
): Promise<PythonInfo[]> {
  const newestFirst = [...found].sort((a, b) => comparePythonVersions(b.version, a.version));
  const meets = (v: string) => !want.constraint || satisfies(v, want.constraint);
  const asked: PythonInfo[] = [];
  // Answers are kept in newestFirst order, never in the order the probes end: two of one version then rank
  // as the old doctor ranked them, by where they were found (PATH order first).
  const askAll = async (fs: FoundPython[]) => {
    for (const info of await Promise.all(fs.map((f) => askPython(env, f, want)))) if (info) asked.push(info);
  };
  const fits = (p: PythonInfo) => usable(p) && (!want.needHeaders || p.headers);
  const [first, ...rest] = newestFirst.filter((f) => meets(f.version));
  if (first) {
    await askAll([first]);
    if (asked.length && fits(asked[0])) return asked;
    // The newest did not fit: the rest side by side, as a node with no fitting interpreter must ask them all.
    await askAll(rest);
  }
  // Nothing that meets the constraint answered: choosePython falls back to the newest that answers.
  if (!asked.some((p) => meets(p.version))) {
    const [newest, ...older] = newestFirst.filter((f) => !meets(f.version));
    if (newest) {
      await askAll([newest]);
      if (!asked.length) await askAll(older);
    }
  }
  return asked;
}

/** An interpreter a venv can be built with: venv works (or was not tried) and ensurepip brings pip. */
const usable = (p: PythonInfo) => p.venv !== false && p.venv_module && p.ensurepip !== null;

export interface PythonChoice {
  python: PythonInfo;
  /** False when nothing met the constraint and the newest was taken instead. */
  meets_constraint: boolean;
}

/**
 * The interpreter to build venvs with: among those meeting `constraint`, one whose venv and ensurepip work
 * (and, with needHeaders, that has Python.h), newest first; when none meets it, the newest overall.
 */
export function choosePython(
  pythons: PythonInfo[],
  constraint: string | null | undefined,
  { needHeaders = false }: { needHeaders?: boolean } = {},
): PythonChoice | null {
  if (pythons.length === 0) return null;
  const score = (p: PythonInfo) => [usable(p) ? 1 : 0, needHeaders && p.headers ? 1 : 0];
  const rank = (a: PythonInfo, b: PythonInfo) => {
    const [sa, sb] = [score(a), score(b)];
    for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return sb[i] - sa[i];
    return comparePythonVersions(b.version, a.version);
  };
  const meeting = constraint ? pythons.filter((p) => satisfies(p.version, constraint)) : pythons;
  if (meeting.length) return { python: [...meeting].sort(rank)[0], meets_constraint: true };
  const newest = [...pythons].sort((a, b) => comparePythonVersions(b.version, a.version))[0];
  return { python: newest, meets_constraint: false };
}

// ---------------------------------------------------------------------------------------------- packages

export interface OsRelease {
  id: string;
  id_like: string[];
  version_id: string;
}

export function parseOsRelease(text: string): OsRelease {
  const kv: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) kv[m[1]] = m[2].replace(/^["']|["']$/g, "");
  }
  return {
    id: (kv.ID ?? "").toLowerCase(),
    id_like: (kv.ID_LIKE ?? "").toLowerCase().split(/\s+/).filter(Boolean),
    version_id: kv.VERSION_ID ?? "",
  };
}

type Family = "debian" | "rhel" | "suse" | "arch" | "alpine" | null;

function family(os: OsRelease | null): Family {
  if (!os) return null;
  const ids = [os.id, ...os.id_like];
  if (ids.some((i) => i === "debian" || i === "ubuntu")) return "debian";
  if (ids.some((i) => ["rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn"].includes(i))) {
    return "rhel";
  }
  if (ids.some((i) => i.startsWith("sles") || i.startsWith("opensuse") || i === "suse")) return "suse";
  if (ids.includes("arch")) return "arch";
  if (ids.includes("alpine")) return "alpine";
  return null;
}

/** Where an interpreter came from, which decides how to repair it. */
function manager(executable: string): "pyenv" | "uv" | "conda" | "system" {
  if (/\/\.?pyenv\/versions\//.test(executable)) return "pyenv";
  if (/\/uv\/python\//.test(executable)) return "uv";
  if (/(conda|miniforge|mambaforge)[^/]*\//i.test(executable) || /\/envs\/[^/]+\/bin\//.test(executable)) {
    return "conda";
  }
  return "system";
}

const mm = (v: string) => v.split(".").slice(0, 2).join(".");

/** The exact command that brings Python.h for this interpreter. */
export function headersRemedy(p: Pick<PythonInfo, "executable" | "version">, os: OsRelease | null): string {
  const v = mm(p.version);
  switch (manager(p.executable)) {
    case "pyenv":
      return `pyenv builds always ship headers: reinstall it with \`pyenv install --force ${p.version}\``;
    case "uv":
      return `reinstall the uv-managed interpreter: \`uv python install --reinstall ${v}\``;
    case "conda":
      return `reinstall python in that environment: \`conda install python=${v}\``;
  }
  const base = p.executable.slice(p.executable.lastIndexOf("/") + 1);
  switch (family(os)) {
    case "debian":
      return `install the headers: \`apt-get install python${v}-dev\``;
    case "rhel":
      return `install the headers: \`dnf install ${
        base === "python3" ? "python3-devel" : `python${v}-devel`
      }\``;
    case "suse":
      return `install the headers: \`zypper install python${v.replace(".", "")}-devel\``;
    case "arch":
      return "install the headers: `pacman -S python` (Arch ships them in the python package)";
    case "alpine":
      return "install the headers: `apk add python3-dev`";
    default:
      return `install the development headers for Python ${v} (usually the package python${v}-dev or python${v}-devel), or use an interpreter from pyenv or uv`;
  }
}

/** The exact command that makes `python -m venv` work (ensurepip or venv missing). */
export function venvRemedy(p: Pick<PythonInfo, "executable" | "version">, os: OsRelease | null): string {
  const v = mm(p.version);
  const m = manager(p.executable);
  if (m === "pyenv") return `reinstall it with \`pyenv install --force ${p.version}\``;
  if (m === "uv") return `\`uv python install --reinstall ${v}\``;
  if (m === "conda") return `\`conda install python=${v} pip\``;
  if (family(os) === "debian") return `install venv support: \`apt-get install python${v}-venv\``;
  if (family(os) === "rhel") {
    return `reinstall the interpreter package: \`dnf reinstall python${v === "3" ? "3" : v}\``;
  }
  return `install the venv/ensurepip support package for Python ${v}, or use an interpreter from pyenv or uv`;
}

async function readOsRelease(env: Env): Promise<OsRelease | null> {
  for (const p of ["/etc/os-release", "/usr/lib/os-release"]) {
    try {
      return parseOsRelease(await env.fs.readTextFile(p));
    } catch { /* try the next */ }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------- evaluate

export interface PythonFacts {
  /** Every interpreter found, as it named itself. */
  found: FoundPython[];
  /** Those asked in full: as many as choosing takes (askWhatChoosingNeeds), newest first. */
  pythons: PythonInfo[];
  os: OsRelease | null;
  /** MLAGENT_PYTHON, when it chose the interpreter (then the only one judged). */
  forced?: string | null;
}

export async function gatherPython(
  env: Env,
  timeoutMs: number,
  profile?: { python?: string | null; builds_extensions: boolean } | null,
): Promise<PythonFacts> {
  const constraint = profile?.python || undefined;
  const [found, os] = await Promise.all([findPythons(env, constraint, timeoutMs), readOsRelease(env)]);
  const pythons = await askWhatChoosingNeeds(env, found, {
    constraint,
    needHeaders: needsHeaders(profile),
    probeVenv: true,
    timeoutMs,
  });
  return { found, pythons, os, forced: env.vars.MLAGENT_PYTHON?.trim() || null };
}

/** Without a profile the doctor judges the node for any model, so headers count. */
const needsHeaders = (profile: { builds_extensions: boolean } | null | undefined) =>
  profile ? profile.builds_extensions : true;

/** python.interpreter, python.headers and python.venv. */
export function evaluatePython(facts: PythonFacts, ctx: Pick<CheckContext, "profile">): CheckResult[] {
  const profile = ctx.profile;
  const constraint = profile?.python || null;
  const needHeaders = needsHeaders(profile);
  const choice = choosePython(facts.pythons, constraint, { needHeaders });
  const list = [...facts.found].sort((a, b) => comparePythonVersions(b.version, a.version))
    .map((p) => `${p.version}${p.source === "PATH" ? "" : ` (${p.source})`}`).join(", ");
  const found = facts.found.map((x) => ({ executable: x.executable, version: x.version, source: x.source }));
  // Said who they are, and meet the constraint, but failed the full probe: named, never taken for absent.
  const unanswered = facts.found.filter((f) =>
    (!constraint || satisfies(f.version, constraint)) &&
    !facts.pythons.some((p) => p.executable === f.executable)
  );
  const whyNot = unanswered.length
    ? `; ${
      unanswered.map((f) => `${f.version} at ${f.found_as[0]}`).join(", ")
    } did not answer the probe for sysconfig, venv and ensurepip`
    : "";
  if (!choice) {
    const none = result(
      "python.interpreter",
      "fail",
      facts.forced
        ? `MLAGENT_PYTHON=${facts.forced} does not run as a Python 3 interpreter`
        : facts.found.length
        ? `no interpreter found answers the probe for sysconfig, venv and ensurepip (found ${list})`
        : "no Python 3 interpreter found (looked for python3, python3.X, python on PATH, pyenv versions, uv)",
      facts.forced
        ? "point MLAGENT_PYTHON at a working interpreter (a path or a name on PATH), or unset it"
        : "install Python 3 (`uv python install 3.11`, `pyenv install 3.11`, or the OS package) or put it on PATH",
      {
        python: {
          executable: null,
          version: null,
          include_dir: null,
          headers: false,
          venv: false,
          found,
        },
      },
    );
    return [
      none,
      result("python.headers", "skip", "no interpreter"),
      result("python.venv", "skip", "no interpreter"),
    ];
  }
  const p = choice.python;
  const pyFacts = {
    python: {
      executable: p.executable,
      version: p.version,
      include_dir: p.include_dir,
      headers: p.headers,
      venv: p.venv ?? (p.venv_module && p.ensurepip !== null),
      ensurepip: p.ensurepip,
      source: p.source,
      meets_constraint: choice.meets_constraint,
      constraint,
      found,
    },
  };
  const out: CheckResult[] = [];
  if (!choice.meets_constraint) {
    out.push(result(
      "python.interpreter",
      "fail",
      `no interpreter meets ${constraint} (profile ${profile!.name}); found ${list}${whyNot}`,
      `install a matching Python: \`uv python install '${constraint}'\` or \`pyenv install <version>\`, then run doctor again`,
      pyFacts,
    ));
  } else {
    out.push(result(
      "python.interpreter",
      "pass",
      `Python ${p.version} at ${p.executable}${
        constraint ? ` meets ${constraint}` : ""
      } (${facts.found.length} found${facts.found.length > 1 ? `: ${list}` : ""})`,
      null,
      pyFacts,
    ));
  }
  if (p.headers) {
    out.push(result("python.headers", "pass", `Python.h present in ${p.include_dir}`));
  } else {
    out.push(result(
      "python.headers",
      needHeaders ? "fail" : "warn",
      `Python.h missing from ${
        p.include_dir ?? "the sysconfig include dir"
      } (${p.executable}); building C/CUDA extensions will fail with "fatal error: Python.h: No such file or directory"`,
      headersRemedy(p, facts.os),
    ));
  }
  if (p.venv_module && p.ensurepip !== null && p.venv !== false) {
    out.push(result(
      "python.venv",
      "pass",
      `venv ${p.venv === null ? "module present" : "works"} and ensurepip has pip ${p.ensurepip}`,
    ));
  } else {
    const why = !p.venv_module
      ? "the venv module is missing"
      : p.ensurepip === null
      ? `ensurepip is not available${p.problem ? ` (${p.problem})` : ""}`
      : `creating a venv failed${p.problem ? ` (${p.problem})` : ""}`;
    out.push(result("python.venv", "fail", `${p.executable}: ${why}`, venvRemedy(p, facts.os)));
  }
  return out;
}
