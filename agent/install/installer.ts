/**
 * The installer: which one (uv or pip) and the exact argv and environment for each stage. Pure apart from
 * looking uv up on PATH, so dry runs print exactly what a real run executes.
 */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import type { CudaVariant, Stage } from "../profiles/types.ts";
import { findOnPath, type RunResult } from "../core/run.ts";
import { venvPython } from "./venv.ts";

export type InstallerKind = "uv" | "pip";

export interface InstallerChoice {
  kind: InstallerKind;
  /** Path of uv when kind is uv. */
  uv: string | null;
  reason: string;
}

/** uv when it is on PATH, pip otherwise; MLAGENT_INSTALLER=uv|pip forces one. */
export function chooseInstaller(env: Env): InstallerChoice {
  const forced = env.vars.MLAGENT_INSTALLER?.trim();
  const uv = findOnPath("uv", env.vars.PATH);
  if (forced) {
    if (forced !== "uv" && forced !== "pip") {
      throw badInput(`MLAGENT_INSTALLER must be "uv" or "pip", got "${forced}"`);
    }
    if (forced === "uv" && !uv) {
      throw badInput("MLAGENT_INSTALLER=uv but uv is not on PATH", "install uv, or unset MLAGENT_INSTALLER");
    }
    return { kind: forced, uv: forced === "uv" ? uv : null, reason: "forced by MLAGENT_INSTALLER" };
  }
  if (uv) return { kind: "uv", uv, reason: `uv found at ${uv}` };
  return { kind: "pip", uv: null, reason: "uv is not on PATH" };
}

export interface StageIndexes {
  indexUrl: string | null;
  extraIndexUrls: string[];
}

/**
 * The indexes a stage uses. MLAGENT_INDEX_URL replaces every index of every stage, the CUDA one included,
 * with one mirror (compute nodes that reach only a site mirror). "cuda" means the chosen variant's index.
 */
export function stageIndexes(stage: Stage, cuda: CudaVariant | null, mirror: string | null): StageIndexes {
  if (mirror) return { indexUrl: mirror, extraIndexUrls: [] };
  const resolve = (u: string) => {
    if (u !== "cuda") return u;
    if (!cuda) {
      throw badInput(`stage "${stage.name}" uses the "cuda" index but no CUDA variant was chosen`);
    }
    return cuda.index_url;
  };
  return {
    indexUrl: stage.index_url ? resolve(stage.index_url) : null,
    extraIndexUrls: (stage.extra_index_urls ?? []).map(resolve),
  };
}

export interface StageCommandInput {
  installer: InstallerChoice;
  venvDir: string;
  stage: Stage;
  indexes: StageIndexes;
  /** Node-local cache dir; null or stage.no_cache/skipCache means no cache. */
  cacheDir: string | null;
  /** The cache and the venv are on different filesystems: copy, never hard-link (Errno 18, EXDEV). */
  crossDevice: boolean;
  /** True when MLAGENT_INDEX_URL is set: environment-configured indexes are dropped so only the mirror is used. */
  mirrorOnly: boolean;
  /** A constraints file holding earlier stages' pins (pip -c, uv --constraint); null for none. */
  constraintsFile?: string | null;
  /** Reinstall even when installed (a repair of damaged files): pip --force-reinstall, uv --reinstall. */
  reinstall?: boolean;
}

export interface StageCommand {
  argv: string[];
  /** Variables over the Env's for this call (undefined removes one). */
  env: Record<string, string | undefined>;
  /** Whether this stage uses the cache. */
  cached: boolean;
  timeoutMs: number;
}

const DEFAULT_STAGE_TIMEOUT_S = 3 * 3600;

/** The argv and environment that install one stage. */
export function stageCommand(input: StageCommandInput): StageCommand {
  const { installer, venvDir, stage, indexes } = input;
  // Large stages (no_cache: multi-GB wheels, git sources) skip the cache; so does every stage without one.
  const cached = input.cacheDir !== null && !stage.no_cache;
  const vars: Record<string, string | undefined> = { ...(stage.env ?? {}) };
  if (input.mirrorOnly) {
    for (
      const k of [
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS",
        "UV_INDEX_URL",
        "UV_EXTRA_INDEX_URL",
        "UV_INDEX",
        "UV_DEFAULT_INDEX",
        "UV_FIND_LINKS",
      ]
    ) vars[k] = undefined;
  }
  const argv: string[] = [];
  if (installer.kind === "uv") {
    argv.push(installer.uv ?? "uv", "pip", "install", "--python", venvPython(venvDir));
    if (cached) {
      argv.push("--cache-dir", input.cacheDir!);
      vars.UV_CACHE_DIR = input.cacheDir!;
    } else {
      argv.push("--no-cache");
    }
    if (input.crossDevice || !cached) argv.push("--link-mode", "copy");
    if (indexes.indexUrl) argv.push("--index-url", indexes.indexUrl);
    for (const u of indexes.extraIndexUrls) argv.push("--extra-index-url", u);
    // pip's default: try every index for the best match (torch from the CUDA index, the rest from PyPI).
    if (indexes.extraIndexUrls.length) argv.push("--index-strategy", "unsafe-best-match");
  } else {
    argv.push(venvPython(venvDir), "-m", "pip", "install", "--disable-pip-version-check", "--no-input");
    argv.push("--progress-bar", "off");
    if (cached) argv.push("--cache-dir", input.cacheDir!);
    else argv.push("--no-cache-dir");
    if (indexes.indexUrl) argv.push("--index-url", indexes.indexUrl);
    for (const u of indexes.extraIndexUrls) argv.push("--extra-index-url", u);
    // pip ignores plain-http indexes on other hosts unless trusted; a site mirror named by the admin is trusted.
    for (const u of [indexes.indexUrl, ...indexes.extraIndexUrls]) {
      const host = httpHost(u);
      if (host && input.mirrorOnly) argv.push("--trusted-host", host);
    }
  }
  if (input.constraintsFile) {
    argv.push(installer.kind === "uv" ? "--constraint" : "-c", input.constraintsFile);
  }
  if (input.reinstall) argv.push(installer.kind === "uv" ? "--reinstall" : "--force-reinstall");
  if (stage.no_build_isolation) argv.push("--no-build-isolation");
  if (stage.no_deps) argv.push("--no-deps");
  argv.push(...stage.packages);
  return {
    argv,
    env: vars,
    cached,
    timeoutMs: (stage.timeout_s ?? DEFAULT_STAGE_TIMEOUT_S) * 1000,
  };
}

function httpHost(u: string | null): string | null {
  if (!u?.startsWith("http://")) return null;
  try {
    const host = new URL(u).hostname;
    return host === "127.0.0.1" || host === "localhost" || host === "::1" ? null : host;
  } catch {
    return null;
  }
}

/**
 * True when uv itself broke (missing, crashed, panicked) rather than reporting a package problem; then
 * pip takes over. A resolution failure is uv working correctly and must not fall back.
 */
export function uvItselfBroke(r: RunResult): boolean {
  if (r.kind === "not-found") return true;
  if (r.kind === "timed-out") return false;
  if (r.signal && r.signal !== "SIGKILL") return true;
  const out = r.stderr + r.stdout;
  return /panicked at|RUST_BACKTRACE|error while loading shared libraries|GLIBC_[\d.]+' not found|Illegal instruction|unexpected argument/
    .test(out);
}
