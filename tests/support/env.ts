/** Test seams: hermetic variables, a real Env pointed at temp dirs, captured logs, temp dirs that clean up. */
import { type Env, type Logger, realEnv } from "../../agent/core/env.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
/** Captured real outputs, copied into the repository (see tests/fixtures/SOURCES.md). */
export const FIXTURES = `${REPO_ROOT}/tests/fixtures`;

/** The Deno cache of this test run (DENO_DIR, else XDG_CACHE_HOME/deno, else ~/.cache/deno). */
const DENO_DIR = Deno.env.get("DENO_DIR") ||
  `${Deno.env.get("XDG_CACHE_HOME") || `${Deno.env.get("HOME")}/.cache`}/deno`;

/**
 * Variables for anything a test runs: the machine's global pip configuration, uv settings and Hub settings
 * are dropped so installs and downloads go only where the test points them. INIT_CWD too: `deno task test`
 * sets it, and mlagent run from the repository would read paths against it instead of the test's cwd.
 */
export function hermeticVars(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (
      /^(PIP_|UV_|HF_|HUGGING|MLAGENT_|CUDA_|LSB_|SLURM_|XDG_|VIRTUAL_ENV|INIT_CWD$|PYTHON(HOME|PATH)$)/.test(
        k,
      )
    ) {
      continue;
    }
    vars[k] = v;
  }
  vars.PIP_CONFIG_FILE = "/dev/null";
  // Deno's own cache follows XDG_CACHE_HOME and HOME, which tests set to hostile values for mlagent's sake:
  // pin it to the cache this test run uses, so the runtime still finds its modules.
  vars.DENO_DIR = DENO_DIR;
  vars.PIP_DISABLE_PIP_VERSION_CHECK = "1";
  vars.PIP_NO_INPUT = "1";
  vars.NO_COLOR = "1";
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete vars[k];
    else vars[k] = v;
  }
  return vars;
}

export interface CapturedLog extends Logger {
  lines: string[];
}

export function captureLog(): CapturedLog {
  const lines: string[] = [];
  const push = (prefix: string) => (m: string) => void lines.push(prefix + m);
  return {
    lines,
    debug: push("debug: "),
    info: push(""),
    warn: push("warning: "),
    error: push("error: "),
    hint: push("hint: "),
    progress: push("progress: "),
  };
}

/** A real Env with hermetic variables and a captured log; override any seam. */
export function testEnv(overrides: Partial<Env> = {}): Env & { logs: string[] } {
  const log = captureLog();
  const env = realEnv({ vars: hermeticVars(), log, ...overrides });
  return Object.assign(env, { logs: log.lines });
}

/** A temp dir removed when the returned object is disposed (`await using dir = await tempDir()`). */
export async function tempDir(prefix = "mlagent-test-"): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Whether anything (a file, a directory, a dangling link) is at `path`. */
export const pathExists = (path: string): Promise<boolean> => Deno.lstat(path).then(() => true, () => false);

/** Every file below `dir`, depth first; none when it is missing. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) out.push(...filesUnder(p));
      else out.push(p);
    }
  } catch { /* missing */ }
  return out;
}

/** What an install test runs mlagent with: every location inside `dir`, `indexUrl` as the only index, short retries. */
export interface InstallVars extends Record<string, string> {
  MLAGENT_ROOT: string;
  MLAGENT_INDEX_URL: string;
  MLAGENT_CACHE_DIR: string;
  MLAGENT_LOCK_DIR: string;
  MLAGENT_RETRY_BASE_MS: string;
  MLAGENT_MODELS_DIR: string;
  HOME: string;
}

export function installVars(dir: string, indexUrl: string): InstallVars {
  return {
    MLAGENT_ROOT: `${dir}/venvs`,
    MLAGENT_INDEX_URL: indexUrl,
    MLAGENT_CACHE_DIR: `${dir}/cache`,
    MLAGENT_LOCK_DIR: `${dir}/locks`,
    MLAGENT_RETRY_BASE_MS: "20",
    MLAGENT_MODELS_DIR: `${dir}/models`,
    HOME: `${dir}/home`,
  };
}
