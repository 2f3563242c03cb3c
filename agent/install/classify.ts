/**
 * Installer failure classifier. Pure: installer output in (pip or uv, stdout and stderr together, plus
 * pip's --log file when there is one), a verdict out: what kind of failure, which package, the likely
 * cause, and the fix. Table-tested against captured real pip and uv output (tests/fixtures/installer_errors).
 *
 * Precedence, most specific first: a cache that cannot be used at all (locks, cross-device links) and a
 * corrupt cache entry beat a build failure, a definite build failure beats network noise earlier in the
 * log (pip retries, then goes on), and any network evidence beats "No matching distribution found",
 * because pip prints exactly that after it skipped an index it could not reach.
 */
import { canonicalName } from "../core/pep503.ts";

export type FailureKind =
  | "network"
  | "cache-corrupt"
  | "cache-unusable"
  | "resolution"
  | "build"
  | "unknown";

/** What the installer should do next; exactly one policy per kind. */
export type RetryPolicy =
  /** Transient: retry with exponential backoff and jitter (network). */
  | "backoff"
  /** Remove the corrupt cache entry (or the whole cache), then retry once. */
  | "heal-cache-then-once"
  /** The cache itself cannot be used here: retry once without it (no cache, copy instead of link). */
  | "without-cache-once"
  | "none";

export type NetworkDetail = "dns" | "connect" | "tls" | "http-5xx" | "http-4xx" | "timeout" | "interrupted";

export interface FailureVerdict {
  kind: FailureKind;
  /** The package the error names, lowercase canonical, when one is named. */
  package: string | null;
  /** The likely cause in words (e.g. "nvcc not found", "Python.h missing"). */
  cause: string | null;
  /** The fix a user can act on. */
  remedy: string;
  /** For network failures: what failed (dns, connect, tls, http-5xx, http-4xx, timeout, interrupted). */
  detail: NetworkDetail | null;
  /** For network failures: the URL that failed, credentials removed, when the output names one. */
  url: string | null;
  retry: RetryPolicy;
  /** The output line the verdict rests on (trimmed), for logs and messages. */
  evidence: string | null;
}

const RETRY_FOR: Record<FailureKind, RetryPolicy> = {
  "network": "backoff",
  "cache-corrupt": "heal-cache-then-once",
  "cache-unusable": "without-cache-once",
  "resolution": "none",
  "build": "none",
  "unknown": "none",
};

interface Rule {
  kind: FailureKind;
  test: RegExp;
  cause: string | null;
  remedy: string;
  detail?: NetworkDetail;
}

// ---------------------------------------------------------------------------------------------------------
// The cache cannot be used at all on this filesystem: healing it does not help, skipping it does.

const CACHE_UNUSABLE: Rule[] = [
  {
    kind: "cache-unusable",
    test: /Invalid cross-device link|os error 18\b/,
    cause:
      "cross-device link (Errno 18): the installer's temp dir or cache is on another filesystem than the venv",
    remedy:
      "set TMPDIR to a directory on the venv's filesystem and install without hard links (uv --link-mode=copy)",
  },
  {
    kind: "cache-unusable",
    test:
      /(?:Could not acquire lock|failed to lock)[\s\S]{0,400}?(?:os error (?:524|38|9|37)\b|Function not implemented|Bad file descriptor|Unknown error 524)/,
    cause: "file locks are not supported on the cache's filesystem (NFS/Lustre/GPFS)",
    remedy:
      "Put the installer cache on node-local disk (UV_CACHE_DIR / PIP_CACHE_DIR under /tmp or $TMPDIR) or install with no cache",
  },
  {
    kind: "cache-unusable",
    test: /Failed to (?:clone|hardlink|reflink|copy) `[^`]*` to `[^`]*`[\s\S]{0,200}?os error \d+/,
    cause: "the installer could not link or clone files from its cache into the venv",
    remedy: "install with uv --link-mode=copy (UV_LINK_MODE=copy) or with no cache",
  },
  {
    kind: "cache-unusable",
    test:
      /Failed to write to the distribution cache|Permission denied[^\n]*(?:\.cache\/(?:pip|uv)|cache-dir)|cache directory .* is not (?:owned|writable)/,
    cause: "the installer cache is not writable",
    remedy:
      "fix the cache directory's permissions or point UV_CACHE_DIR / PIP_CACHE_DIR at a directory you own",
  },
];

// ---------------------------------------------------------------------------------------------------------
// A cache entry (or a downloaded file) is broken: remove it and retry once.

const CACHE_CORRUPT: Rule[] = [
  {
    kind: "cache-corrupt",
    test: /THESE PACKAGES DO NOT MATCH THE HASHES|[Hh]ash mismatch for `?[^`\n]+`?/,
    cause: "downloaded file does not match its expected hash (truncated or corrupt download or cache entry)",
    remedy:
      "remove the cached file and download it again; if it repeats, the index serves a different file than the hashes expect",
  },
  {
    kind: "cache-corrupt",
    test:
      /BadZipFile|File is not a zip file|zip file .{0,40}(?:corrupt|truncated)|Bad magic number for central directory/i,
    cause: "a wheel is not a valid zip archive (truncated cache entry or download)",
    remedy:
      "Purge the installer cache entry for this package (pip cache remove / uv cache clean PACKAGE) and retry",
  },
  {
    kind: "cache-corrupt",
    test:
      /Wheel '[^']+' located at .* is invalid|The wheel is invalid|No \.dist-info directory found|Missing \.dist-info directory/,
    cause: "invalid wheel (truncated or corrupt cache entry or download)",
    remedy:
      "Purge the installer cache entry for this package and retry; if it repeats, the index serves a broken wheel",
  },
  {
    kind: "cache-corrupt",
    test:
      /RECORD file is invalid|dist-info\/(?:METADATA|RECORD)`?[^\n]*\n?[^\n]*No such file or directory|Failed to read metadata for|Metadata field \w+ not found/,
    cause: "a wheel or installed package is missing its METADATA or RECORD",
    remedy: "Purge the installer cache (uv cache clean / pip cache purge) and reinstall the package",
  },
  {
    kind: "cache-corrupt",
    // uv's is fatal; pip's "Cache entry deserialization failed, entry ignored" is a warning pip recovers from.
    test: /Failed to deserialize cache entry/,
    cause: "an installer cache entry cannot be read (written by another installer version, or truncated)",
    remedy: "Clean the installer cache (uv cache clean) and retry",
  },
  {
    // pip 23 reading a dist whose METADATA is gone: its resolver dies on version None.
    kind: "cache-corrupt",
    test:
      /metadata[/\\]importlib[/\\]_dists\.py[\s\S]*?in version[\s\S]*?TypeError: expected string or bytes-like object, got 'NoneType'/,
    cause: "a wheel or installed package has no readable METADATA (its version is missing)",
    remedy: "Purge the installer cache entry for this package and retry; if it is a local wheel, rebuild it",
  },
  {
    kind: "cache-corrupt",
    test: /416 (?:Client Error: )?Range Not Satisfiable/,
    cause:
      "a partial download (.incomplete) left from an earlier run is already complete or bigger than the file",
    remedy: "Delete the .incomplete file and download again",
  },
];

// ---------------------------------------------------------------------------------------------------------
// Build failures, most specific cause first.

const BUILD: Rule[] = [
  {
    kind: "build",
    test:
      /nvcc was not found|nvcc: (?:command )?not found|No such file or directory: '[^']*\/nvcc'|Could not find nvcc|nvcc not found/,
    cause: "nvcc not found",
    remedy:
      "load a CUDA toolkit that matches torch's CUDA (e.g. `module load cuda/12.1`) so nvcc is on PATH and CUDA_HOME is set, or build on a node with the toolkit installed",
  },
  {
    kind: "build",
    test: /CUDA_HOME environment variable is not set/,
    cause: "CUDA_HOME unset",
    remedy:
      "set CUDA_HOME to the CUDA toolkit root (the directory holding bin/nvcc), e.g. via `module load cuda`",
  },
  {
    kind: "build",
    test: /Python\.h: No such file or directory|fatal error: Python\.h|Python\.h' file not found/,
    cause: "Python.h missing",
    remedy:
      "install the Python development headers for the venv's interpreter (Debian/Ubuntu: python3.X-dev; RHEL: python3-devel), or use an interpreter that ships them",
  },
  {
    kind: "build",
    test: /Ninja is required|No such file or directory: 'ninja'|ninja: (?:command )?not found/,
    cause: "ninja missing",
    remedy: "install ninja in an earlier stage (the build runs without isolation and uses the venv's ninja)",
  },
  {
    kind: "build",
    test:
      /Killed signal terminated program|fatal error: Killed|virtual memory exhausted|c\+\+: internal compiler error: Killed|Cannot allocate memory/,
    cause: "the compiler was killed (out of memory)",
    remedy:
      "Lower MAX_JOBS in the stage's env (each nvcc job can take several GiB) or build on a node with more memory",
  },
  {
    kind: "build",
    test:
      /(?:command|execute) '[^']*(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+)' failed: No such file or directory|unable to execute '[^']*(?:gcc|g\+\+|cc|c\+\+|clang)'|(?:gcc|g\+\+|cc|c\+\+): (?:command )?not found|No CMAKE_C(?:XX)?_COMPILER could be found|error: linker `cc` not found/,
    cause: "C/C++ compiler missing",
    remedy: "install gcc and g++ (build-essential / gcc-c++) or load a compiler module",
  },
  {
    kind: "build",
    test: /No module named 'torch'/,
    cause: "torch is not importable in the build environment (build isolation hides the venv's torch)",
    remedy: "set no_build_isolation on this stage and install torch in an earlier stage",
  },
  {
    kind: "build",
    test: /invalid command 'bdist_wheel'|No module named 'wheel'/,
    cause: "the wheel package is missing for a build without isolation",
    remedy: "install wheel (and setuptools) in an earlier stage before building without isolation",
  },
  {
    kind: "build",
    test: /No module named 'setuptools'|No module named 'packaging'|No module named 'psutil'/,
    cause: "a build dependency is missing for a build without isolation",
    remedy: "install the build dependencies (setuptools, packaging, psutil, wheel) in an earlier stage",
  },
];

/** Generic build failure markers; the cause is then unknown. */
const BUILD_GENERIC =
  /Failed building wheel for|Failed to build |Could not build wheels for|metadata-generation-failed|subprocess-exited-with-error|The build backend returned an error|Failed to (?:download and )?build `|error: command '[^']+' failed with exit (?:status|code)/;

// ---------------------------------------------------------------------------------------------------------
// Network. Only lines that show a request failing count; retry warnings do (pip prints nothing else).

const NETWORK: Rule[] = [
  {
    kind: "network",
    detail: "tls",
    test:
      /SSLError|SSLCertVerificationError|CERTIFICATE_VERIFY_FAILED|certificate verify failed|invalid peer certificate|UnknownIssuer|tls handshake|TLS handshake/i,
    cause: "TLS failed (certificate not trusted, or a proxy intercepting HTTPS)",
    remedy:
      "give the installer the site's CA bundle (PIP_CERT / SSL_CERT_FILE / REQUESTS_CA_BUNDLE) or use the site mirror via MLAGENT_INDEX_URL",
  },
  {
    kind: "network",
    detail: "dns",
    test:
      /Temporary failure in name resolution|Name or service not known|nodename nor servname|getaddrinfo failed|dns error|failed to lookup address information|No address associated with hostname|No such host is known/i,
    cause: "DNS lookup failed",
    remedy:
      "check DNS on this node (compute nodes often cannot resolve outside names); use the site mirror via MLAGENT_INDEX_URL",
  },
  {
    kind: "network",
    detail: "http-5xx",
    test:
      /too many 5\d\d error responses|\b5\d\d Server Error|HTTP (?:error|status) 5\d\d|status(?: code)?:? 5\d\d|server error \(5\d\d|5\d\d Service Unavailable|5\d\d Bad Gateway|5\d\d Gateway Time-?out/i,
    cause: "the index answered with a server error (5xx)",
    remedy: "The index or a proxy is failing; retry later or use the site mirror via MLAGENT_INDEX_URL",
  },
  {
    kind: "network",
    detail: "timeout",
    test:
      /ReadTimeoutError|ConnectTimeoutError|Read timed out|timed out|operation timed out|Timeout was reached|request or response body error: operation timed out/i,
    cause: "the connection timed out",
    remedy:
      "The index is slow or unreachable; retry, raise the timeout (PIP_DEFAULT_TIMEOUT / UV_HTTP_TIMEOUT), or use the site mirror",
  },
  {
    kind: "network",
    detail: "connect",
    test:
      /Connection refused|Failed to establish a new connection|tcp connect error|client error \(Connect\)|Network is unreachable|No route to host|Could not connect, are you offline|ProxyError|Cannot connect to proxy/i,
    cause: "could not connect to the index",
    remedy:
      "check that this node can reach the index (proxy settings, firewall); use the site mirror via MLAGENT_INDEX_URL",
  },
  {
    kind: "network",
    detail: "interrupted",
    test:
      /IncompleteRead|Connection reset by peer|Connection broken|ChunkedEncodingError|ProtocolError|connection closed before message completed|Consistency check failed: file should be of size/i,
    cause: "the download was cut off",
    remedy: "Retry; if it repeats, a proxy is cutting long downloads (use the site mirror)",
  },
  {
    kind: "network",
    detail: "http-4xx",
    test:
      /\b40[13] (?:Client Error|Unauthorized|Forbidden)|HTTP (?:error|status) 40[13]|status(?: code)?:? 40[13]/i,
    cause: "the index refused the request (401/403: credentials or access rules)",
    remedy: "check the index credentials (netrc / keyring) or the mirror's access rules",
  },
];

// ---------------------------------------------------------------------------------------------------------
// Resolution: the index answered, and no set of versions fits.

const RESOLUTION: Rule[] = [
  {
    kind: "resolution",
    test:
      /No matching distribution found for|Could not find a version that satisfies the requirement|not found in the package registry|there is no version of|no wheels are available with a matching|is unusable because no wheels/,
    cause:
      "no matching distribution: the version does not exist on the index, or has no wheel for this Python/platform",
    remedy:
      "check the pin and the stage's index (CUDA wheels live on the variant's index); the Python version may be outside what the package supports",
  },
  {
    kind: "resolution",
    test:
      /ResolutionImpossible|conflicting dependencies|The conflict is caused by|No solution found when resolving dependencies|requirements are unsatisfiable|Cannot install [^\n]+ because/,
    cause: "conflicting pins: no set of versions satisfies every requirement",
    remedy:
      "Change the conflicting pins in the profile (the installer output lists which requirement wants what)",
  },
];

// ---------------------------------------------------------------------------------------------------------
// Not installer failures, but worth naming when they are what the output shows.

const OTHER: Rule[] = [
  {
    // A warning uv prints while it waits; it explains a timeout, never a failure that has its own cause.
    kind: "cache-unusable",
    test: /Waiting to acquire lock for .*(?:cache|\.lock)/,
    cause: "another process holds a lock in the shared installer cache",
    remedy: "give each node its own cache (UV_CACHE_DIR on local disk), or install with no cache",
  },
  {
    kind: "unknown",
    test: /ensurepip is not\s+available|No module named ensurepip/,
    cause: "ensurepip unavailable: the interpreter cannot create venvs (python3-venv missing)",
    remedy:
      "install the venv package for this interpreter (Debian/Ubuntu: python3.X-venv) or choose another interpreter",
  },
  {
    kind: "unknown",
    test: /No space left on device|os error 28\b|Errno 28\b|Disk quota exceeded|os error 122\b/,
    cause: "no space left on device (or quota exceeded)",
    remedy: "free space where the venv, the cache and TMPDIR live, or point them at a bigger filesystem",
  },
];

/**
 * Classifies an installer's failure from its output. Never throws; unrecognised output is "unknown" with
 * a remedy pointing at the output.
 */
export function classifyInstallFailure(output: string): FailureVerdict {
  // Colour codes from a terminal-minded installer would split the phrases the rules look for.
  // deno-lint-ignore no-control-regex
  const text = output.replace(/\r\n?/g, "\n").replace(/\x1b\[[0-9;]*m/g, "");
  const pick = (rules: Rule[]) => {
    for (const rule of rules) {
      const m = rule.test.exec(text);
      if (m) return { rule, m };
    }
    return null;
  };

  const hit = pick(CACHE_UNUSABLE) ?? pick(CACHE_CORRUPT) ?? pick(BUILD);
  if (hit) return verdict(text, hit.rule, hit.m);

  const generic = BUILD_GENERIC.exec(text);
  const network = pick(NETWORK);
  // A generic build failure with network errors inside it (build dependencies could not be fetched) is a
  // network failure; without them it is a build failure with an unknown cause.
  if (network && (!generic || network.m.index > generic.index || insideBuildOutput(text, network.m.index))) {
    return verdict(text, network.rule, network.m);
  }
  if (generic) {
    return verdict(text, {
      kind: "build",
      test: BUILD_GENERIC,
      cause: null,
      remedy:
        "The package's build failed; read its output above (compiler errors, missing build dependencies)",
    }, generic);
  }
  if (network) return verdict(text, network.rule, network.m);

  const resolution = pick(RESOLUTION) ?? pick(OTHER);
  if (resolution) return verdict(text, resolution.rule, resolution.m);

  return {
    kind: "unknown",
    package: null,
    cause: null,
    remedy: "Read the installer output above",
    detail: null,
    url: null,
    retry: "none",
    evidence: lastErrorLine(text),
  };
}

function insideBuildOutput(text: string, at: number): boolean {
  const before = text.slice(0, at);
  return /Installing build dependencies[^\n]*(?:\n[^\n]*){0,3}$/.test(before) ||
    before.lastIndexOf("Installing build dependencies") > before.lastIndexOf("Building wheel");
}

function verdict(text: string, rule: Rule, m: RegExpExecArray): FailureVerdict {
  const evidence = lineAt(text, m.index);
  let cause = rule.cause ?? null;
  let remedy = rule.remedy;
  if (rule.kind === "unknown" && /ensurepip/.test(m[0])) {
    const apt = /apt(?:-get)? install (python3[\w.]*-venv)/.exec(text);
    if (apt) {
      remedy = `install the venv package: apt install ${apt[1]} (needs root), or choose another interpreter`;
    }
  }
  if (
    rule.kind === "build" && cause === "nvcc not found" &&
    /CUDA_HOME environment variable is not set/.test(text)
  ) {
    cause = "nvcc not found (CUDA_HOME unset)";
  }
  const url = rule.kind === "network" ? findUrl(text, m.index) : null;
  return {
    kind: rule.kind,
    package: findPackage(text, rule.kind, m.index, url),
    cause,
    remedy,
    detail: rule.detail ?? null,
    url,
    retry: rule.kind === "network" && rule.detail === "http-4xx" ? "none" : RETRY_FOR[rule.kind],
    evidence,
  };
}

function lineAt(text: string, index: number): string {
  const start = text.lastIndexOf("\n", index) + 1;
  const end = text.indexOf("\n", index);
  const line = text.slice(start, end === -1 ? undefined : end).trim();
  return line.length > 400 ? line.slice(0, 397) + "..." : line;
}

function lastErrorLine(text: string): string | null {
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/^(ERROR|error|×|Error|[A-Za-z]+Error:)/.test(lines[i])) return lines[i].slice(0, 400);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// URLs and package names

/** Removes user:password@ from a URL so tokens in index URLs never reach logs or JSON. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1");
}

function findUrl(text: string, at: number): string | null {
  const clean = (u: string) => redactUrl(u.replace(/[`'"),.;:]+$/, ""));
  const window = text.slice(Math.max(0, text.lastIndexOf("\n", at - 1) - 2000), at + 2000);
  // pip: "could not fetch URL https://host/simple/x/: ..."; uv: "Failed to fetch: `URL`", "request for url (URL)"
  const explicit =
    /Could not fetch URL (\S+?):? |Failed to fetch:?\s*(?:\n\s*│\s*)?`([^`]+)`|for url \(?(\S+?)\)?(?:\s|$)|for url: (\S+)/
      .exec(
        window,
      );
  if (explicit) return clean(explicit[1] ?? explicit[2] ?? explicit[3] ?? explicit[4]);
  // pip: "HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: /simple/x/"
  const pool =
    /(HTTPS?)ConnectionPool\(host='([^']+)', port=(\d+)\)(?:: Max retries exceeded with url: (\S+))?/.exec(
      window,
    );
  const retryPath = /after connection broken by .*?': (\/\S*)/.exec(window);
  const path = pool?.[4] ?? retryPath?.[1] ?? null;
  if (pool) {
    const scheme = pool[1].toLowerCase();
    const port = (scheme === "https" && pool[3] === "443") || (scheme === "http" && pool[3] === "80")
      ? ""
      : `:${pool[3]}`;
    return clean(`${scheme}://${pool[2]}${port}${path ?? ""}`);
  }
  const index = /(?:Looking in indexes:|--index-url[ =]|-i) (\S+?)(?:,|\s|$)/.exec(text);
  if (index && path) {
    try {
      return clean(new URL(path, index[1]).href);
    } catch {
      return clean(index[1]);
    }
  }
  // Only a URL on the failing line itself: elsewhere the output names unrelated pages (issue trackers).
  const any = /https?:\/\/[^\s'"`)]+/.exec(lineAt(text, at));
  return any ? clean(any[0]) : null;
}

const NAME = String.raw`[A-Za-z0-9][A-Za-z0-9._-]*`;

function firstGroup(text: string, patterns: RegExp[]): string | null {
  for (const p of patterns) {
    const m = p.exec(text);
    if (m?.[1]) return m[1];
  }
  return null;
}

/** Name from a wheel or sdist file name: flash_attn-2.6.3.tar.gz -> flash-attn */
function nameFromFile(file: string): string | null {
  const m = new RegExp(`^(${NAME}?)-[0-9]`).exec(file.replace(/^.*\//, ""));
  return m ? m[1] : null;
}

function findPackage(text: string, kind: FailureKind, at: number, url: string | null): string | null {
  const near = text.slice(Math.max(0, at - 4000), at + 2000);
  let name: string | null = null;
  if (kind === "cache-corrupt" || kind === "cache-unusable") {
    name = firstGroup(near, [
      new RegExp(`Wheel '(${NAME})' located at`),
      new RegExp(
        `Failed to (?:install|download|read|read metadata for|download and build|build)(?: for)?:? \`?(?:${NAME}\\.whl \\()?(${NAME})(?:==| @|\`|\\))`,
      ),
      new RegExp(`\\n\\s+(${NAME})==\\S+ from \\S+`), // pip hash mismatch block
    ]);
    if (!name) {
      const file = /([A-Za-z0-9._-]+-[0-9][A-Za-z0-9._+-]*\.whl)/.exec(near);
      if (file) name = nameFromFile(file[1]);
    }
    if (!name) {
      name = firstGroup(near, [
        new RegExp(`(${NAME}?)-[0-9][^/\\s]*\\.dist-info/`),
        /Waiting to acquire lock for \S*\/([A-Za-z0-9._-]+)\/[0-9][^/\s]*(?:\s|$)/,
        /site-packages\/(?!pip\/|_distutils)([A-Za-z0-9_]+)\//,
      ]);
    }
  } else if (kind === "build") {
    name = firstGroup(text, [
      new RegExp(`Failed building wheel for (${NAME})`),
      new RegExp(`Failed to (?:download and )?build \`(${NAME})`),
      new RegExp(`Building wheel for (${NAME}) \\(`),
      new RegExp(`could not build wheels for (${NAME})`),
      new RegExp(`pip-install-[^/]+/(${NAME}?)_[0-9a-f]{32}/`),
    ]);
    if (!name) {
      const files = [
        ...text.matchAll(
          /(?:Using cached|Downloading|Processing) \S*?([A-Za-z0-9._-]+-[0-9][^\s/]*\.(?:tar\.gz|zip|whl))/g,
        ),
      ];
      if (files.length > 0) name = nameFromFile(files[files.length - 1][1]);
    }
    if (!name) {
      const collecting = [...text.matchAll(new RegExp(`Collecting (${NAME})`, "g"))];
      if (collecting.length > 0) name = collecting[collecting.length - 1][1];
    }
  } else if (kind === "network") {
    const fromUrl = url && /\/simple\/([^/]+)\/?$/.exec(new URL(url, "http://x").pathname);
    if (fromUrl) name = fromUrl[1];
    else if (url && /\.(?:whl|tar\.gz|zip)$/.test(url)) name = nameFromFile(url);
    if (!name) {
      name = firstGroup(text, [
        /after connection broken by .*?': \/(?:[^\s/]+\/)*simple\/([^/\s]+)\//,
        new RegExp(`Failed to (?:download|fetch|build)[^\`\\n]*\`(${NAME})(?:==|\`)`),
        new RegExp(`No matching distribution found for (${NAME})`),
      ]);
    }
  } else if (kind === "resolution") {
    name = firstGroup(text, [
      new RegExp(`\\n\\s+\\S+ [^\\s]+ depends on (${NAME})`), // pip: the dependency both sides pin
      new RegExp(`No matching distribution found for (${NAME})`),
      new RegExp(`there is no version of (${NAME})`),
      new RegExp(`Because (${NAME}) was not found in the package registry`),
      new RegExp(`Because (${NAME})==\\S+ is unusable`),
      new RegExp(`you require (${NAME})==[^,\\s]+, we can conclude that your requirements`),
      new RegExp(`[Yy]ou require (${NAME})[=<>!~]`),
    ]);
  }
  return name ? canonicalName(name) : null;
}
