/**
 * Locks safe across processes and hosts. (Contract stub: the full implementation replaces the bodies and
 * keeps these exported names and signatures, which install, cache and download already use.)
 */
import type { Env } from "./env.ts";
import { MlagentError } from "./errors.ts";
import { localLockDir } from "./paths.ts";

export interface LockSpec {
  /** Human name shown in messages, e.g. "venv:hunyuan-video-i2v". */
  name: string;
  /** The lock file. */
  path: string;
  /** What the holder is doing ("install", "cache heal", ...). */
  purpose: string;
}

export interface LockOptions {
  /** Give up after this long (default 30 min). */
  timeoutMs?: number;
  /** Fail at once (exit 3) if held. */
  noWait?: boolean;
  mode?: "auto" | "flock" | "lease";
}

export interface LockHandle {
  spec: LockSpec;
  fencing: number;
  /** Aborted if the lock is lost (lease broken by someone else). */
  lost: AbortSignal;
  release(): Promise<void>;
}

export function venvLockSpec(venvDir: string, purpose: string): LockSpec {
  const name = venvDir.slice(venvDir.lastIndexOf("/") + 1);
  return { name: `venv:${name}`, path: `${venvDir}.lock`, purpose };
}

export function cacheLockSpec(env: Env, cacheDir: string, purpose: string): LockSpec {
  const key = cacheDir.replace(/[^A-Za-z0-9._-]/g, "_");
  return { name: `cache:${cacheDir}`, path: `${localLockDir(env)}/cache-${key}.lock`, purpose };
}

export function downloadLockSpec(targetDir: string, purpose: string): LockSpec {
  return { name: `download:${targetDir}`, path: `${targetDir}/.cache/huggingface/.mlagent.lock`, purpose };
}

export function namedLockSpec(env: Env, name: string, purpose: string): LockSpec {
  return { name, path: `${localLockDir(env)}/${name}.lock`, purpose };
}

export async function acquire(env: Env, spec: LockSpec, opts: LockOptions = {}): Promise<LockHandle> {
  const deadline = env.now() + (opts.timeoutMs ?? 30 * 60_000);
  await env.fs.mkdir(spec.path.slice(0, spec.path.lastIndexOf("/")), { recursive: true });
  while (true) {
    try {
      const f = await env.fs.open(spec.path, { write: true, createNew: true });
      f.close();
      const ctl = new AbortController();
      return {
        spec,
        fencing: 1,
        lost: ctl.signal,
        release: async () => {
          await env.fs.remove(spec.path).catch(() => {});
        },
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    if (opts.noWait) throw new MlagentError("lock-busy", `Cannot acquire lock "${spec.name}": held`);
    if (env.now() > deadline) {
      throw new MlagentError("lock-timeout", `Timed out waiting for lock "${spec.name}"`);
    }
    await env.sleep(100);
  }
}

export async function withLock<T>(
  env: Env,
  spec: LockSpec,
  opts: LockOptions,
  fn: (lock: LockHandle) => Promise<T>,
): Promise<T> {
  const lock = await acquire(env, spec, opts);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}
