import assert from "node:assert/strict";
import { classifyInstallFailure, type FailureVerdict, redactUrl } from "../../agent/install/classify.ts";
import { FIXTURES } from "../support/env.ts";

const DIR = `${FIXTURES}/installer_errors`;

/** A fixture's text; for pip runs captured with --log, the console output followed by the log. */
function fixture(name: string): string {
  const text = Deno.readTextFileSync(`${DIR}/${name}`);
  const log = `${DIR}/${name.replace(/\.txt$/, ".log")}`;
  try {
    return text + "\n" + Deno.readTextFileSync(log);
  } catch {
    return text;
  }
}

type Expect = Partial<Pick<FailureVerdict, "kind" | "package" | "detail" | "retry">> & {
  cause?: RegExp | null;
  url?: RegExp | null;
};

function check(name: string, v: FailureVerdict, want: Expect) {
  for (const key of ["kind", "package", "detail", "retry"] as const) {
    if (key in want) assert.equal(v[key], want[key], `${name}: ${key}`);
  }
  if (want.cause === null) assert.equal(v.cause, null, `${name}: cause`);
  else if (want.cause) assert.match(v.cause ?? "", want.cause, `${name}: cause`);
  if (want.url === null) assert.equal(v.url, null, `${name}: url`);
  else if (want.url) assert.match(v.url ?? "", want.url, `${name}: url`);
  assert.ok(v.remedy.length > 10, `${name}: remedy`);
}

// Every entry of the shared error corpus, by id: what an installer should make of it.
const SHARED: Record<string, Expect> = {
  uv_installed_metadata_missing: { kind: "cache-corrupt", package: "pandas", cause: /METADATA/ },
  uv_wheel_invalid_metadata_name: { kind: "cache-corrupt", package: "lgpio", cause: /invalid wheel/ },
  uv_record_invalid_enoent: { kind: "cache-corrupt", package: "cobertura-clover-transform", cause: /RECORD/ },
  uv_no_dist_info_dir: { kind: "cache-corrupt", package: "my-package" },
  uv_no_dist_info_dir_local_wheel: { kind: "cache-corrupt", package: "mypackage" },
  uv_cache_deserialize: { kind: "cache-corrupt", package: "docx2txt", retry: "heal-cache-then-once" },
  uv_cache_write_eperm: { kind: "cache-unusable", package: "pyqtree", cause: /not writable/ },
  uv_nfs_lock_os_error_524: {
    kind: "cache-unusable",
    cause: /locks are not supported/,
    retry: "without-cache-once",
  },
  uv_nfs_lock_os_error_9: { kind: "cache-unusable", cause: /locks are not supported/ },
  uv_lock_os_error_38: { kind: "cache-unusable", cause: /locks are not supported/ },
  uv_clone_os_error_11: { kind: "cache-unusable", package: "python-discovery", cause: /link or clone/ },
  uv_nfs_lock_wait_warning: { kind: "cache-unusable", package: "reportlab", cause: /holds a lock/ },
  uv_hardlink_fallback_warning: { kind: "unknown", cause: null, retry: "none" },
  pip_exdev_gpfs: { kind: "cache-unusable", package: "scipy", cause: /cross-device/ },
  pip_exdev_wsl: { kind: "cache-unusable", cause: /cross-device/ },
  pip_exdev_pip_issue: { kind: "cache-unusable", cause: /cross-device/ },
  python_h_missing_gcc_old: { kind: "build", cause: /^Python\.h missing$/, retry: "none" },
  python_h_missing_gcc_caret: { kind: "build", cause: /^Python\.h missing$/ },
  python_h_missing_x86_64_linux_gnu_gcc: { kind: "build", cause: /^Python\.h missing$/ },
  python_h_missing_cmake: { kind: "build", cause: /^Python\.h missing$/ },
  ensurepip_unavailable_py310: { kind: "unknown", cause: /ensurepip/ },
  ensurepip_unavailable_with_failing_command: { kind: "unknown", cause: /ensurepip/ },
  ensurepip_unavailable_py311_new_failing_format: { kind: "unknown", cause: /ensurepip/ },
  ensurepip_module_missing: { kind: "unknown", cause: /ensurepip/ },
  hf_consistency_check_old_wording: { kind: "network", detail: "interrupted", url: null },
  hf_consistency_check_new_wording: { kind: "network", detail: "interrupted", url: null },
  hf_consistency_check_size0: { kind: "network", detail: "interrupted" },
  hf_416_with_ranges: { kind: "cache-corrupt", cause: /\.incomplete/ },
  hf_416_fully_downloaded_incomplete: { kind: "cache-corrupt", cause: /\.incomplete/ },
  hf_incomplete_blob_log: { kind: "unknown" },
  hf_incomplete_read: { kind: "network", detail: "interrupted", retry: "backoff" },
  hf_resume_not_reused_note: { kind: "unknown" },
};

Deno.test("classifyInstallFailure() gives every entry of the shared error corpus its expected verdict", () => {
  const corpus: { id: string; text: string }[] = JSON.parse(
    Deno.readTextFileSync(`${FIXTURES}/errors/error_texts.json`),
  );
  assert.deepEqual(
    corpus.map((e) => e.id).sort(),
    Object.keys(SHARED).sort(),
    "a new corpus entry needs a row",
  );
  for (const e of corpus) check(e.id, classifyInstallFailure(e.text), SHARED[e.id]);
});

// Real pip 23 runs against local servers (tests/fixtures/installer_errors/pip23, see SOURCES.md).
const PIP23: [string, string, Expect][] = [
  ["index on a dead port, pip retried once", "connection_refused_dead_port.txt", {
    kind: "network",
    detail: "connect",
    package: "demo-pkg",
    url: /^http:\/\/127\.0\.0\.1:\d+\/simple\/demo-pkg\/$/,
    retry: "backoff",
  }],
  ["index on a dead port, seen only in pip's --log", "connection_refused_dead_port_logged.txt", {
    kind: "network",
    detail: "connect",
    url: /^http:\/\/127\.0\.0\.1:\d+\/simple\/demo-pkg\/$/,
  }],
  ["index answering 503, seen in pip's --log", "http_503_index_logged.txt", {
    kind: "network",
    detail: "http-5xx",
    package: "demo-pkg",
    url: /\/simple\/demo-pkg\/$/,
  }],
  ["wheel download answering 503", "http_503_on_wheel_download.txt", {
    kind: "network",
    detail: "http-5xx",
    package: "demo-pkg",
    url: /^http:\/\/127\.0\.0\.1:\d+\/files\/demo_pkg-1\.0-py3-none-any\.whl$/,
  }],
  ["index that never answers, seen in pip's --log", "read_timeout_stalled_index_logged.txt", {
    kind: "network",
    detail: "timeout",
  }],
  ["index with a self-signed certificate", "tls_self_signed_index.txt", {
    kind: "network",
    detail: "tls",
    url: /^https:\/\/127\.0\.0\.1:\d+\/simple\/demo-pkg\/$/,
  }],
  ["package not on the index", "missing_package.txt", {
    kind: "resolution",
    package: "no-such-package",
    cause: /no matching distribution/,
    retry: "none",
  }],
  ["pinned version not on the index", "missing_version.txt", { kind: "resolution", package: "demo-pkg" }],
  ["two packages pinning different versions of a dependency", "resolution_conflict.txt", {
    kind: "resolution",
    package: "b-lib",
    cause: /conflicting pins/,
  }],
  ["a user pin against a dependency's pin", "resolution_conflict_with_pin.txt", {
    kind: "resolution",
    package: "b-lib",
    cause: /conflicting pins/,
  }],
  ["wheel download cut in half", "truncated_wheel_download.txt", {
    kind: "cache-corrupt",
    package: "demo-pkg",
    retry: "heal-cache-then-once",
  }],
  ["local wheel truncated to 200 bytes", "corrupt_local_wheel.txt", {
    kind: "cache-corrupt",
    package: "demo-pkg",
  }],
  ["wheel without METADATA crashing pip's resolver", "wheel_missing_metadata.txt", {
    kind: "cache-corrupt",
    package: "demo-pkg",
    cause: /METADATA/,
  }],
  ["downloaded wheel not matching --hash", "hash_mismatch.txt", {
    kind: "cache-corrupt",
    package: "demo-pkg",
    cause: /hash/,
  }],
  ["sdist importing torch under build isolation", "sdist_imports_torch_under_build_isolation.txt", {
    kind: "build",
    package: "needs-torch-to-build",
    cause: /build isolation/,
  }],
  ["--no-build-isolation in a venv without wheel", "no_build_isolation_without_wheel_package.txt", {
    kind: "build",
    package: "c-ext-demo",
    cause: /wheel package is missing/,
  }],
  ["C extension with the compiler missing", "c_compiler_missing.txt", {
    kind: "build",
    package: "c-ext-demo",
    cause: /compiler missing/,
  }],
];

for (const [situation, file, want] of PIP23) {
  Deno.test(`classifyInstallFailure() pip 23: ${situation}`, () => {
    check(file, classifyInstallFailure(fixture(`pip23/${file}`)), want);
  });
}

Deno.test("classifyInstallFailure() pip 23 console alone after a 503 or a timeout reads as resolution (why install needs --log)", () => {
  // pip 23 logs the skipped index page at debug level only; the console shows "No matching distribution".
  for (const f of ["http_503_index.txt", "read_timeout_stalled_index.txt"]) {
    const text = Deno.readTextFileSync(`${DIR}/pip23/${f}`);
    assert.equal(classifyInstallFailure(text).kind, "resolution", f);
  }
});

// Texts quoted in public issues (tests/fixtures/installer_errors/issues, sources in SOURCES.md).
const ISSUES: [string, string, Expect][] = [
  ["flash-attn 2.6.3 sdist on a node without nvcc", "flash_attn_2.6.3_nvcc_not_found.txt", {
    kind: "build",
    package: "flash-attn",
    cause: /^nvcc not found/,
  }],
  ["flash-attn with CUDA_HOME unset", "flash_attn_cuda_home_not_set.txt", {
    kind: "build",
    cause: /^CUDA_HOME unset$/,
  }],
  ["flash-attn 1.0.4 with a broken CUDA_HOME path to nvcc", "flash_attn_1.0.4_nvcc_path_missing.txt", {
    kind: "build",
    package: "flash-attn",
    cause: /^nvcc not found/,
  }],
  ["flash-attn 2.8.3 under build isolation without torch", "flash_attn_2.8.3_no_torch_build_isolation.txt", {
    kind: "build",
    package: "flash-attn",
    cause: /torch is not importable/,
  }],
  ["torch C++ extension without ninja", "torch_ninja_required.txt", {
    kind: "build",
    cause: /^ninja missing$/,
  }],
  ["pip in a container without DNS", "pip_dns_temporary_failure.txt", {
    kind: "network",
    detail: "dns",
    package: "certifi",
    url: /^https:\/\/pypi\.org\/simple\/certifi\/$/,
  }],
  ["pip with an unresolvable index host", "pip_dns_name_or_service_not_known.txt", {
    kind: "network",
    detail: "dns",
  }],
  ["pip reading PyPI too slowly", "pip_read_timeout_pypi.txt", {
    kind: "network",
    detail: "timeout",
    package: "numpy",
    url: /^https:\/\/pypi\.org\/simple\/numpy\/$/,
  }],
  ["uv in docker without DNS", "uv_dns_try_again.txt", {
    kind: "network",
    detail: "dns",
    package: "annotated-types",
    url: /files\.pythonhosted\.org\/.*annotated_types-0\.7\.0-py3-none-any\.whl$/,
  }],
  ["uv 0.1 behind a proxy that blocks DNS", "uv_dns_no_such_host_0.1.11.txt", {
    kind: "network",
    detail: "dns",
    package: "networkx",
  }],
  ["uv with a pinned version missing from the index", "uv_no_solution_missing_version.txt", {
    kind: "resolution",
    package: "miniupnpc",
    cause: /no matching distribution/,
  }],
  ["uv with two pins that cannot both hold", "uv_no_solution_conflicting_pins.txt", {
    kind: "resolution",
    package: "numpy",
    cause: /conflicting pins/,
  }],
  ["uv asking the CPU index for a wheel tag it lacks", "uv_no_solution_torch_wheel_tag.txt", {
    kind: "resolution",
    package: "torch",
  }],
  ["uv asked for a package that does not exist", "uv_not_found_in_registry.txt", {
    kind: "resolution",
    package: "install",
  }],
  ["pip reading a truncated wheel from its cache", "pip_cached_wheel_bad_zip.txt", {
    kind: "cache-corrupt",
    cause: /zip/,
  }],
];

for (const [situation, file, want] of ISSUES) {
  Deno.test(`classifyInstallFailure() quoted: ${situation}`, () => {
    check(file, classifyInstallFailure(fixture(`issues/${file}`)), want);
  });
}

Deno.test("classifyInstallFailure() prefers a definite build cause over earlier network retries", () => {
  const text = fixture("issues/pip_dns_temporary_failure.txt") + "\n" +
    fixture("issues/flash_attn_2.6.3_nvcc_not_found.txt");
  const v = classifyInstallFailure(text);
  assert.equal(v.kind, "build");
  assert.match(v.cause ?? "", /nvcc/);
});

Deno.test("classifyInstallFailure() reads a build that failed fetching its build dependencies as network", () => {
  const text = [
    "Collecting flash-attn==2.6.3",
    "  Installing build dependencies ... error",
    "  error: subprocess-exited-with-error",
    fixture("issues/pip_dns_temporary_failure.txt"),
  ].join("\n");
  assert.equal(classifyInstallFailure(text).kind, "network");
});

Deno.test("classifyInstallFailure() blames the nvcc build failure, not a cache warning next to it", () => {
  const text = "warning: Failed to hardlink files; falling back to full copy.\n" +
    fixture("issues/flash_attn_cuda_home_not_set.txt");
  assert.equal(classifyInstallFailure(text).cause, "CUDA_HOME unset");
});

Deno.test("classifyInstallFailure() says nvcc and CUDA_HOME together when both are reported", () => {
  const text = fixture("issues/flash_attn_2.6.3_nvcc_not_found.txt") + "\n" +
    fixture("issues/flash_attn_cuda_home_not_set.txt");
  assert.equal(classifyInstallFailure(text).cause, "nvcc not found (CUDA_HOME unset)");
});

Deno.test("classifyInstallFailure() takes the apt package from the ensurepip message into the remedy", () => {
  const corpus: { id: string; text: string }[] = JSON.parse(
    Deno.readTextFileSync(`${FIXTURES}/errors/error_texts.json`),
  );
  const e = corpus.find((c) => c.id === "ensurepip_unavailable_py310")!;
  assert.match(classifyInstallFailure(e.text).remedy, /apt install python3\.10-venv/);
});

Deno.test("classifyInstallFailure() strips terminal colours and CRLF before matching", () => {
  const v = classifyInstallFailure("\x1b[31mERROR: No matching distribution found for torch==9.9\x1b[0m\r\n");
  assert.equal(v.kind, "resolution");
  assert.equal(v.package, "torch");
});

Deno.test("classifyInstallFailure() keeps the last error line as evidence when nothing matches", () => {
  const v = classifyInstallFailure("Collecting x\nERROR: something new went wrong\n");
  assert.equal(v.kind, "unknown");
  assert.equal(v.retry, "none");
  assert.equal(v.evidence, "ERROR: something new went wrong");
  assert.equal(classifyInstallFailure("").kind, "unknown");
});

Deno.test("classifyInstallFailure() never puts index credentials in the URL it reports", () => {
  const v = classifyInstallFailure(
    "Could not fetch URL https://user:s3cret@mirror.example/simple/torch/: connection error: " +
      "HTTPSConnectionPool(host='mirror.example', port=443): Max retries exceeded (Caused by " +
      "NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused')) - skipping",
  );
  assert.equal(v.url, "https://mirror.example/simple/torch/");
  assert.equal(v.package, "torch");
  assert.equal(redactUrl("https://tok@h/x"), "https://h/x");
});

Deno.test("classifyInstallFailure() does not retry a 403 from the index", () => {
  const v = classifyInstallFailure("ERROR: HTTP error 403 while getting https://mirror/simple/x/");
  assert.equal(v.kind, "network");
  assert.equal(v.detail, "http-4xx");
  assert.equal(v.retry, "none");
});

Deno.test("classifyInstallFailure() names an out-of-memory compiler kill and points at MAX_JOBS", () => {
  const v = classifyInstallFailure(
    "Building wheel for flash-attn (setup.py) ... error\n  c++: fatal error: Killed signal terminated program cc1plus\n",
  );
  assert.equal(v.kind, "build");
  assert.equal(v.package, "flash-attn");
  assert.match(v.remedy, /MAX_JOBS/);
});

Deno.test("classifyInstallFailure() lets warnings the installer recovers from give way to the real failure", () => {
  const pipWarning = "  Cache entry deserialization failed, entry ignored\n" +
    fixture("pip23/missing_version.txt");
  assert.equal(classifyInstallFailure(pipWarning).kind, "resolution");
  const uvWait = "warning: Waiting to acquire lock for /shared/uv-cache/built-wheels-v3/x/.lock\n" +
    fixture("issues/flash_attn_cuda_home_not_set.txt");
  assert.equal(classifyInstallFailure(uvWait).cause, "CUDA_HOME unset");
});
