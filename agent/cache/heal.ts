/** Removing corrupt entries and healing after an install failure: the named package first, then a fresh installer cache. */
import type { FailureVerdict } from "../install/classify.ts";
import type { Env } from "../core/env.ts";
import { failed } from "../core/errors.ts";
import { cacheLockSpec, withLock } from "../lock/mod.ts";
import { isoTime } from "../core/output.ts";
import { findOnPath } from "../core/run.ts";
import { appendHealLog, TRASH_DIR, writeBook } from "./book.ts";
import { cacheRootOf, cacheSubdirs } from "./placement.ts";
import { canonicalName } from "../core/pep503.ts";
import { type Installer, listDir } from "./entries.ts";
import { scanCache } from "./scan.ts";

/**
 * Takes an entry out of the installers' way: rename into the trash (one atomic step; open files stay
 * readable), then delete. A dir that holds a uv `.lock` is emptied in place instead, keeping the lock file.
 * Returns the paths removed.
 */
export async function removeEntry(
  env: Env,
  root: string,
  entry: { path: string; also: string[] },
): Promise<string[]> {
  const removed: string[] = [];
  for (const p of [entry.path, ...entry.also]) {
    if (p.endsWith("/.lock") || p === `${root}/.lock`) continue;
    if (hasUvLock(env, p)) {
      await emptyKeepingLocks(env, p);
      removed.push(p);
      continue;
    }
    const trash = `${root}/${TRASH_DIR}`;
    await env.fs.mkdir(trash, { recursive: true, mode: 0o700 });
    const dest = `${trash}/${env.pid}-${env.now()}-${Math.floor(env.random() * 1e9)}`;
    try {
      await env.fs.rename(p, dest);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    await env.fs.remove(dest, { recursive: true }).catch((e) =>
      env.log.warn(`cannot delete ${dest}: ${(e as Error).message}`)
    );
    removed.push(p);
  }
  return removed;
}

function hasUvLock(env: Env, p: string): boolean {
  try {
    if (!env.fs.lstatSync(p).isDirectory) return false;
  } catch {
    return false;
  }
  for (const e of listDir(env, p)) {
    if (e.name === ".lock") return true;
    if (e.isDirectory && hasUvLock(env, `${p}/${e.name}`)) return true;
  }
  return false;
}

async function emptyKeepingLocks(env: Env, dir: string) {
  for (const e of listDir(env, dir)) {
    const p = `${dir}/${e.name}`;
    if (e.name === ".lock") continue;
    if (e.isDirectory && hasUvLock(env, p)) await emptyKeepingLocks(env, p);
    else await env.fs.remove(p, { recursive: true }).catch(() => {});
  }
}

/** Deletes what a crashed heal left in the trash. */
export async function emptyTrash(env: Env, root: string): Promise<number> {
  let n = 0;
  for (const e of listDir(env, `${root}/${TRASH_DIR}`)) {
    await env.fs.remove(`${root}/${TRASH_DIR}/${e.name}`, { recursive: true }).catch(() => {});
    n++;
  }
  return n;
}
export interface HealAfterFailureInput {
  /** The cache root, or the installer's subdir under it (what install passes to the installer). */
  cacheDir: string;
  installer: Installer;
  verdict: FailureVerdict;
  /** 1: remove the named package's entries; 2: move the whole installer cache aside. Never more. */
  attempt: number;
  /** The caller already holds the cache lock (an install heals inside its own hold). */
  lockHeld?: boolean;
}

export interface HealResult {
  action: "targeted" | "moved-aside" | "none";
  removed: string[];
  message: string;
}

/**
 * After an install failure classified as cache corruption: attempt 1 removes the named package's entries
 * and every entry the scan proves corrupt (a broken entry is never worth keeping, and the error may name
 * the package that depends on it); attempt 2 moves the installer's whole cache aside so running readers keep
 * their files, starts a fresh one and deletes the old. Any later attempt does nothing: the caller stops.
 */
export async function healAfterFailure(env: Env, input: HealAfterFailureInput): Promise<HealResult> {
  const root = cacheRootOf(input.cacheDir, input.installer);
  const sub = cacheSubdirs(root)[input.installer];
  if (input.attempt > 2 || input.attempt < 1) {
    return { action: "none", removed: [], message: "the cache was already healed twice; not healing again" };
  }
  const work = async (): Promise<HealResult> => {
    const result = input.attempt === 1
      ? await healTargeted(env, root, sub, input.installer, input.verdict.package)
      : await moveAside(env, root, sub, input.installer);
    await writeBook(env, root, {
      last_heal_at: isoTime(env.now()),
      last_heal: {
        at: isoTime(env.now()),
        action: result.action,
        removed: result.removed.length,
        corrupt_found: result.removed.length,
        package: input.verdict.package,
        message: result.message,
      },
    });
    await appendHealLog(env, {
      at: isoTime(env.now()),
      trigger: "install-failure",
      cache: root,
      installer: input.installer,
      attempt: input.attempt,
      action: result.action,
      package: input.verdict.package,
      cause: input.verdict.cause,
      removed: result.removed,
    });
    env.log.warn(result.message);
    return result;
  };
  if (input.lockHeld) return await work();
  return await withLock(env, cacheLockSpec(env, root, "cache heal"), { timeoutMs: 10 * 60_000 }, work);
}

async function healTargeted(
  env: Env,
  root: string,
  sub: string,
  installer: Installer,
  pkg: string | null,
): Promise<HealResult> {
  const removed: string[] = [];
  const name = pkg ? canonicalName(pkg) : null;
  if (installer === "uv" && name) {
    const uv = findOnPath("uv", env.vars.PATH);
    if (uv) {
      const r = await env.run([uv, "cache", "clean", name], {
        timeoutMs: 5 * 60_000,
        env: { UV_CACHE_DIR: sub },
      });
      if (r.kind === "exited" && r.code === 0) env.log.info(`uv cache clean ${name}: done`);
      else env.log.warn(`uv cache clean ${name} failed; removing its entries directly`);
    }
  }
  const scan = await scanCache(env, root, { sizes: false, package: name ?? undefined });
  const matches = scan.matches;
  const targets = [
    ...scan.corrupt.filter((c) => c.installer === installer),
    ...matches.filter((m) => m.installer === installer),
  ];
  if (installer === "uv" && name) {
    // Index pages and pointers of the package too (what `uv cache clean PKG` removes), keeping lock files.
    for (const b of listDir(env, sub)) {
      if (!/^(wheels|sdists|built-wheels|simple)-v\d+$/.test(b.name)) continue;
      for (const p of uvPackagePaths(env, `${sub}/${b.name}`, name)) {
        targets.push({ path: p, also: [], installer, package: name, reason: "" });
      }
    }
  }
  const seen = new Set<string>();
  for (const t of targets) {
    if (seen.has(t.path)) continue;
    seen.add(t.path);
    removed.push(...(await removeEntry(env, root, t)));
  }
  const what = name ? `${name}'s entries` : "no package named in the error";
  return {
    action: "targeted",
    removed,
    message: removed.length
      ? `healed the ${installer} cache ${sub}: removed ${removed.length} entr${
        removed.length === 1 ? "y" : "ies"
      } (${what}, and entries proven corrupt); retrying once`
      : `found nothing to remove in the ${installer} cache ${sub} (${what}); retrying once`,
  };
}

function uvPackagePaths(env: Env, bucket: string, pkg: string): string[] {
  const out: string[] = [];
  const visit = (dir: string, depth: number) => {
    for (const e of listDir(env, dir)) {
      const n = canonicalName(e.name.replace(/\.(rkyv|msgpack)$/, ""));
      if (n === pkg) out.push(`${dir}/${e.name}`);
      else if (e.isDirectory && depth < 2) visit(`${dir}/${e.name}`, depth + 1);
    }
  };
  visit(bucket, 0);
  return out;
}

async function moveAside(env: Env, root: string, sub: string, installer: Installer): Promise<HealResult> {
  const trash = `${root}/${TRASH_DIR}`;
  await env.fs.mkdir(trash, { recursive: true, mode: 0o700 });
  const dest = `${trash}/${installer}-${env.pid}-${env.now()}`;
  try {
    await env.fs.rename(sub, dest);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw failed(
        `cannot move the ${installer} cache ${sub} aside: ${(e as Error).message}`,
        "remove it by hand: rm -rf " + sub,
      );
    }
  }
  await env.fs.mkdir(sub, { recursive: true, mode: 0o700 });
  // Deleting after the rename: nothing reads the old tree by name any more, and open files stay valid.
  await env.fs.remove(dest, { recursive: true }).catch((e) =>
    env.log.warn(`cannot delete ${dest}: ${(e as Error).message}`)
  );
  return {
    action: "moved-aside",
    removed: [sub],
    message:
      `the ${installer} cache ${sub} was still broken after a targeted heal; moved it aside and started a fresh one; retrying once more`,
  };
}
