/**
 * A local PEP 503 package index for install and cache tests, plus builders for the wheels and sdists it serves.
 *
 * Usage:
 * ```ts
 * const dists = await testDists();                 // built once per content, shared by every test file
 * await using index = await startIndex(dists.dir);  // http://127.0.0.1:PORT/simple/
 * index.failNext(2, { status: 503 });              // next 2 requests answer 503, then serve normally
 * index.failPath("/simple/mla-beta/", 1, { status: 500 }); // a fault for one path only
 * // point pip at it: MLAGENT_INDEX_URL=index.url (or `--index-url index.url`); PIP_CONFIG_FILE=/dev/null
 * index.requests;                                   // [{method, path, status}] in arrival order
 * ```
 * `testDists()` builds the default set (see DEFAULT_DISTS: a dependency chain, a build helper, an sdist whose
 * in-tree PEP 517 backend imports the helper, and an sdist whose build sleeps) under
 * `.work/test-wheels/<content-hash>`; the directory is reached by rename from a temp name, so parallel test
 * files either reuse a complete set or build their own and lose the rename race harmlessly.
 * Use `buildDists(dir, specs)` for a custom set and `buildWheel`/`buildSdist` for single files.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { REPO_ROOT } from "./env.ts";
import { bundledPipWheels } from "./pythons.ts";

export interface DistSpec {
  /** Project name as written (normalized per PEP 503 for the index). */
  name: string;
  version: string;
  /** Requires-Dist lines, e.g. ["mla-beta==1.0"]. */
  requires?: string[];
  /** "wheel" (default) or "sdist" (built with an in-tree, pure-Python PEP 517 backend). */
  kind?: "wheel" | "sdist";
  /** Extra Python source for the package's __init__.py (default: `__version__ = "<version>"`). */
  initPy?: string;
  /**
   * For sdists: Python statements run at the start of the backend's build_wheel (inside the build
   * subprocess, with `os` imported). E.g. `import mla_helper` to prove the build sees an earlier stage.
   */
  buildHook?: string;
  /** Import name when it differs from the project's (opencv-python -> "cv2"); the package dir is named so. */
  module?: string;
  /** Provides-Extra names, for Requires-Dist lines with `extra == "..."` markers. */
  extras?: string[];
}

/** Module name for a project: lowercase, '-' and '.' to '_'. */
export const moduleName = (name: string) => name.toLowerCase().replace(/[-.]+/g, "_");
/** PEP 503 normalized project name. */
export const normalizeName = (name: string) => name.toLowerCase().replace(/[-_.]+/g, "-");

/**
 * The default test set.
 * - mla-alpha 1.0 -> mla-beta 1.0 -> mla-gamma 1.0 (a dependency chain); mla-alpha 2.0 also exists.
 * - mla-helper 1.0, a plain wheel; mla-needs-helper 1.0, an sdist whose backend imports mla_helper, so it
 *   builds only without build isolation and after mla-helper is installed.
 * - mla-slow 1.0, an sdist whose build writes its process group id to $MLA_BUILD_STARTED
 *   (when set) and sleeps $MLA_SLOW_BUILD_S.
 * - mla-broken 1.0, an sdist whose build always fails.
 * - mla-base 1.0 and 2.0; mla-mid 1.0 (needs mla-base>=1.0) and 2.0 (needs mla-base>=2.0); mla-top 1.0
 *   (needs mla-mid, unpinned): a later stage that can move an earlier stage's pin of mla-base, the way
 *   xfuser's unpinned optimum-quanto moves torch. mla-wants-new 1.0 needs mla-base>=2.0 outright.
 */
export const DEFAULT_DISTS: DistSpec[] = [
  { name: "mla-gamma", version: "1.0" },
  { name: "mla-beta", version: "1.0", requires: ["mla-gamma==1.0"] },
  { name: "mla-alpha", version: "1.0", requires: ["mla-beta==1.0"] },
  { name: "mla-alpha", version: "2.0", requires: ["mla-beta==1.0"] },
  { name: "mla-helper", version: "1.0", initPy: "MAGIC = 42\n" },
  {
    name: "mla-needs-helper",
    version: "1.0",
    kind: "sdist",
    buildHook: "import mla_helper\nassert mla_helper.MAGIC == 42",
  },
  {
    name: "mla-slow",
    version: "1.0",
    kind: "sdist",
    buildHook: [
      "import time",
      "if os.environ.get('MLA_BUILD_STARTED'):",
      "    with open(os.environ['MLA_BUILD_STARTED'], 'w') as f: f.write(str(os.getpgid(0)))",
      "time.sleep(float(os.environ.get('MLA_SLOW_BUILD_S', '0')))",
    ].join("\n"),
  },
  {
    name: "mla-broken",
    version: "1.0",
    kind: "sdist",
    buildHook: "raise RuntimeError('mla-broken: this build always fails (test fixture)')",
  },
  { name: "mla-base", version: "1.0" },
  { name: "mla-base", version: "2.0" },
  { name: "mla-mid", version: "1.0", requires: ["mla-base>=1.0"] },
  { name: "mla-mid", version: "2.0", requires: ["mla-base>=2.0"] },
  { name: "mla-top", version: "1.0", requires: ["mla-mid"] },
  { name: "mla-wants-new", version: "1.0", requires: ["mla-base>=2.0"] },
];

export interface DistSet {
  dir: string;
  /** File names in dir. */
  files: string[];
}

/** Builds (once per content) the given set under .work/test-wheels/<hash> and returns it. */
export async function testDists(specs: DistSpec[] = DEFAULT_DISTS): Promise<DistSet> {
  // The builders' own source is part of the key: a change to them must not reuse an old set.
  const self = await Deno.readTextFile(new URL(import.meta.url));
  const hash = createHash("sha256").update(self).update(JSON.stringify(specs)).digest("hex").slice(0, 16);
  const base = `${REPO_ROOT}/.work/test-wheels`;
  const final = `${base}/${hash}`;
  const existing = await listDir(final);
  if (existing) return { dir: final, files: existing };
  await Deno.mkdir(base, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: base, prefix: `.${hash}.tmp-` });
  await buildDists(tmp, specs);
  try {
    await Deno.rename(tmp, final);
  } catch {
    // Another test file won the race; its set has the same content.
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  return { dir: final, files: (await listDir(final)) ?? [] };
}

async function listDir(dir: string): Promise<string[] | null> {
  try {
    const out: string[] = [];
    for await (const e of Deno.readDir(dir)) if (e.isFile) out.push(e.name);
    return out.sort();
  } catch {
    return null;
  }
}

/** Writes one file per spec into dir; returns the file names. */
export async function buildDists(dir: string, specs: DistSpec[]): Promise<string[]> {
  const names: string[] = [];
  for (const s of specs) {
    const { name, data } = s.kind === "sdist" ? buildSdist(s) : buildWheel(s);
    await Deno.writeFile(`${dir}/${name}`, data);
    names.push(name);
  }
  return names;
}

function metadata(spec: DistSpec, version = "2.1"): string {
  return [
    `Metadata-Version: ${version}`,
    `Name: ${spec.name}`,
    `Version: ${spec.version}`,
    `Summary: mlagent test package`,
    ...(spec.extras ?? []).map((e) => `Provides-Extra: ${e}`),
    ...(spec.requires ?? []).map((r) => `Requires-Dist: ${r}`),
    "",
  ].join("\n");
}

const initPyOf = (s: DistSpec) => s.initPy ?? `__version__ = ${JSON.stringify(s.version)}\n`;

/** A valid py3-none-any wheel: package, METADATA, WHEEL, RECORD with sha256 hashes. */
export function buildWheel(spec: DistSpec): { name: string; data: Uint8Array } {
  const mod = moduleName(spec.name);
  const distInfo = `${mod}-${spec.version}.dist-info`;
  const files: [string, Uint8Array][] = [
    [`${spec.module ?? mod}/__init__.py`, enc(initPyOf(spec))],
    [`${distInfo}/METADATA`, enc(metadata(spec))],
    [
      `${distInfo}/WHEEL`,
      enc("Wheel-Version: 1.0\nGenerator: mlagent-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ],
  ];
  const record = files.map(([p, d]) => `${p},sha256=${urlsafeB64(sha256(d))},${d.length}`);
  record.push(`${distInfo}/RECORD,,`);
  files.push([`${distInfo}/RECORD`, enc(record.join("\n") + "\n")]);
  return { name: `${mod}-${spec.version}-py3-none-any.whl`, data: zip(files) };
}

/** An sdist with an in-tree PEP 517 backend (backend-path ["."], no setuptools) that writes a wheel itself. */
export function buildSdist(spec: DistSpec): { name: string; data: Uint8Array } {
  const mod = moduleName(spec.name);
  const root = `${mod}-${spec.version}`;
  const hook = (spec.buildHook ?? "pass").split("\n").map((l) => "    " + l).join("\n");
  const backend = `"""In-tree PEP 517 backend for an mlagent test sdist: pure Python, no setuptools."""
import base64, hashlib, os, zipfile

NAME = ${JSON.stringify(spec.name)}
MOD = ${JSON.stringify(mod)}
PKG = ${JSON.stringify(spec.module ?? mod)}
VERSION = ${JSON.stringify(spec.version)}
HERE = os.path.dirname(os.path.abspath(__file__))


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _metadata():
    with open(os.path.join(HERE, "PKG-INFO")) as f:
        return f.read()


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = f"{MOD}-{VERSION}.dist-info"
    os.makedirs(os.path.join(metadata_directory, dist_info), exist_ok=True)
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "w") as f:
        f.write(_metadata())
    return dist_info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
${hook}
    dist_info = f"{MOD}-{VERSION}.dist-info"
    name = f"{MOD}-{VERSION}-py3-none-any.whl"
    files = {}
    with open(os.path.join(HERE, PKG, "__init__.py"), "rb") as f:
        files[f"{PKG}/__init__.py"] = f.read()
    files[f"{dist_info}/METADATA"] = _metadata().encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: mlagent-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = []
    for p, d in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
        record.append(f"{p},sha256={h},{len(d)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for p, d in files.items():
            z.writestr(p, d)
    return name


def build_sdist(sdist_directory, config_settings=None):
    raise NotImplementedError("test sdists are prebuilt")
`;
  const pyproject = `[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n`;
  const pkgInfo = metadata(spec);
  const tarball = tar([
    [`${root}/PKG-INFO`, enc(pkgInfo)],
    [`${root}/pyproject.toml`, enc(pyproject)],
    [`${root}/backend.py`, enc(backend)],
    [`${root}/${spec.module ?? mod}/__init__.py`, enc(initPyOf(spec))],
  ]);
  return { name: `${root}.tar.gz`, data: new Uint8Array(gzipSync(tarball)) };
}

// ---- the index server ----

export interface IndexRequest {
  method: string;
  path: string;
  status: number;
}

export interface FaultOptions {
  /** HTTP status to answer (default 503). */
  status?: number;
  /** Close the connection without an answer instead of sending a status. */
  reset?: boolean;
}

export interface LocalIndex extends AsyncDisposable {
  /** The simple index root, ending in "/simple/". */
  url: string;
  /** http://127.0.0.1:PORT */
  origin: string;
  requests: IndexRequest[];
  /** The next n requests (any path) fail. */
  failNext(n: number, opts?: FaultOptions): void;
  /** The next n requests whose path starts with `prefix` fail. */
  failPath(prefix: string, n: number, opts?: FaultOptions): void;
  /** Requests for `prefix` are held for ms before being served (a slow index). */
  delayPath(prefix: string, ms: number): void;
  close(): Promise<void>;
}

/** The distribution files the index served since its request log was last cleared, each once, sorted. */
export const filesFetched = (index: LocalIndex): string[] =>
  [...new Set(index.requests.filter((r) => r.path.startsWith("/files/")).map((r) => r.path.slice(7)))].sort();

export interface CachingFront extends AsyncDisposable {
  /** The simple index root, ending in "/simple/". */
  url: string;
  close(): Promise<void>;
}

/**
 * A front over the test index that marks file downloads cacheable for a year, as PyPI does: the test index
 * does not, and pip stores nothing it may not reuse. With `wan`, each answer waits as a WAN link would
 * (latency plus size over bandwidth), since on 127.0.0.1 a download costs nothing. The index behind it
 * keeps the request log.
 */
export async function startCachingFront(
  index: LocalIndex,
  wan?: { latencyMs: number; bytesPerSec: number },
): Promise<CachingFront> {
  const ac = new AbortController();
  const { promise, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: ({ port }) => resolve(port),
  }, async (req) => {
    const path = new URL(req.url).pathname;
    const r = await fetch(index.origin + path);
    const data = await r.arrayBuffer();
    if (wan) {
      await new Promise((res) => setTimeout(res, wan.latencyMs + (data.byteLength / wan.bytesPerSec) * 1000));
    }
    const headers = new Headers(r.headers);
    if (path.startsWith("/files/")) headers.set("cache-control", "max-age=365000000, immutable, public");
    return new Response(data, { status: r.status, headers });
  });
  const port = await promise;
  const close = async () => {
    ac.abort();
    await server.finished;
  };
  return { url: `http://127.0.0.1:${port}/simple/`, close, [Symbol.asyncDispose]: close };
}

/** pip >= 23.3 keeps cached bodies apart (http-v2): the newest pip on the machine, run from its wheel, else python3 -m pip. */
export async function pipArgv(): Promise<string[]> {
  const [newest] = await bundledPipWheels();
  return newest ? ["python3", `${newest}/pip`] : ["python3", "-m", "pip"];
}

/** Serves `dir` as a PEP 503 simple index on 127.0.0.1 (a random port). */
export async function startIndex(dir: string): Promise<LocalIndex> {
  const byProject = new Map<string, { file: string; sha: string }[]>();
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile) continue;
    const project = projectOf(e.name);
    if (!project) continue;
    const sha = createHash("sha256").update(await Deno.readFile(`${dir}/${e.name}`)).digest("hex");
    const list = byProject.get(project) ?? [];
    list.push({ file: e.name, sha });
    byProject.set(project, list);
  }
  const faults: { prefix: string; left: number; opts: FaultOptions }[] = [];
  const delays: { prefix: string; ms: number }[] = [];
  const requests: IndexRequest[] = [];
  const ac = new AbortController();
  const handler = async (req: Request): Promise<Response> => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    const log = (status: number) => requests.push({ method: req.method, path, status });
    const fault = faults.find((f) => f.left > 0 && path.startsWith(f.prefix));
    if (fault) {
      fault.left--;
      log(fault.opts.reset ? 0 : fault.opts.status ?? 503);
      if (fault.opts.reset) throw new Error("injected connection reset");
      return new Response("injected fault\n", { status: fault.opts.status ?? 503 });
    }
    const delay = delays.find((d) => path.startsWith(d.prefix));
    if (delay) await new Promise((r) => setTimeout(r, delay.ms));
    if (path === "/simple/" || path === "/simple") {
      log(200);
      const links = [...byProject.keys()].sort().map((p) => `<a href="/simple/${p}/">${p}</a>`);
      return html(`<!DOCTYPE html><html><body>\n${links.join("<br/>\n")}\n</body></html>\n`);
    }
    const m = path.match(/^\/simple\/([^/]+)\/?$/);
    if (m) {
      const list = byProject.get(normalizeName(m[1]));
      if (!list) {
        log(404);
        return new Response("not found\n", { status: 404 });
      }
      log(200);
      const links = list.map((f) => `<a href="/files/${f.file}#sha256=${f.sha}">${f.file}</a>`);
      return html(`<!DOCTYPE html><html><body>\n${links.join("<br/>\n")}\n</body></html>\n`);
    }
    const f = path.match(/^\/files\/([^/]+)$/);
    if (f) {
      try {
        const data = await Deno.readFile(`${dir}/${f[1]}`);
        log(200);
        return new Response(data, { headers: { "content-type": "application/octet-stream" } });
      } catch {
        // fall through to 404
      }
    }
    log(404);
    return new Response("not found\n", { status: 404 });
  };
  const { promise: ready, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: ({ port }) => resolve(port),
    onError: () => new Response("error\n", { status: 500 }),
  }, handler);
  const port = await ready;
  const origin = `http://127.0.0.1:${port}`;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    ac.abort();
    await server.finished;
  };
  return {
    url: `${origin}/simple/`,
    origin,
    requests,
    failNext: (n, opts = {}) => void faults.push({ prefix: "/", left: n, opts }),
    failPath: (prefix, n, opts = {}) => void faults.push({ prefix, left: n, opts }),
    delayPath: (prefix, ms) => void delays.push({ prefix, ms }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

const html = (body: string) => new Response(body, { headers: { "content-type": "text/html" } });

/** The normalized project of a wheel or sdist file name. */
function projectOf(file: string): string | null {
  const w = file.match(/^(.+?)-([^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$/);
  if (w) return normalizeName(w[1]);
  const s = file.match(/^(.+)-([^-]+)\.(tar\.gz|zip)$/);
  if (s) return normalizeName(s[1]);
  return null;
}

// ---- minimal zip (stored) and tar writers ----

const enc = (s: string) => new TextEncoder().encode(s);
const sha256 = (d: Uint8Array) => new Uint8Array(createHash("sha256").update(d).digest());
function urlsafeB64(d: Uint8Array): string {
  let bin = "";
  for (const b of d) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(d: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of d) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip archive with stored (uncompressed) entries and a fixed timestamp, so builds are reproducible. */
function zip(files: [string, Uint8Array][]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const DOS_TIME = 0, DOS_DATE = (2020 - 1980) << 9 | 1 << 5 | 1;
  for (const [path, data] of files) {
    const name = enc(path);
    const crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, 0x0800, true); // UTF-8 names
    local.setUint16(8, 0, true);
    local.setUint16(10, DOS_TIME, true);
    local.setUint16(12, DOS_DATE, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, name.length, true);
    local.setUint16(28, 0, true);
    chunks.push(new Uint8Array(local.buffer), name, data);
    const cen = new DataView(new ArrayBuffer(46));
    cen.setUint32(0, 0x02014b50, true);
    cen.setUint16(4, 0x0314, true); // made by unix, v2.0
    cen.setUint16(6, 20, true);
    cen.setUint16(8, 0x0800, true);
    cen.setUint16(10, 0, true);
    cen.setUint16(12, DOS_TIME, true);
    cen.setUint16(14, DOS_DATE, true);
    cen.setUint32(16, crc, true);
    cen.setUint32(20, data.length, true);
    cen.setUint32(24, data.length, true);
    cen.setUint16(28, name.length, true);
    cen.setUint32(38, (0o100644 << 16) >>> 0, true);
    cen.setUint32(42, offset, true);
    central.push(new Uint8Array(cen.buffer), name);
    offset += 30 + name.length + data.length;
  }
  const cenSize = central.reduce((n, c) => n + c.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true);
  end.setUint32(12, cenSize, true);
  end.setUint32(16, offset, true);
  return concat([...chunks, ...central, new Uint8Array(end.buffer)]);
}

/** A ustar archive of regular files (mode 644, mtime fixed). */
function tar(files: [string, Uint8Array][]): Uint8Array {
  const out: Uint8Array[] = [];
  const dirs = new Set<string>();
  for (const [path] of files) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/") + "/");
  }
  const entries: [string, Uint8Array | null][] = [
    ...[...dirs].sort().map((d) => [d, null] as [string, null]),
    ...files,
  ];
  for (const [path, data] of entries) {
    const h = new Uint8Array(512);
    const put = (s: string, off: number, len: number) => h.set(enc(s).subarray(0, len), off);
    const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, "0") + "\0";
    if (path.length > 100) throw new Error(`tar path too long: ${path}`);
    put(path, 0, 100);
    put(octal(data ? 0o644 : 0o755, 8), 100, 8);
    put(octal(0, 8), 108, 8);
    put(octal(0, 8), 116, 8);
    put(octal(data?.length ?? 0, 12), 124, 12);
    put(octal(1577836800, 12), 136, 12);
    put("        ", 148, 8);
    put(data ? "0" : "5", 156, 1);
    put("ustar\0", 257, 6);
    put("00", 263, 2);
    let sum = 0;
    for (const b of h) sum += b;
    put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
    out.push(h);
    if (data) {
      out.push(data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad) out.push(new Uint8Array(pad));
    }
  }
  out.push(new Uint8Array(1024));
  return concat(out);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
