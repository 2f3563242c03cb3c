/** `mlagent cache`: where the node-local installer cache is, what in it is broken, and healing it. */
import {
  appendHealLog,
  BOOK_FILE,
  cacheInfo,
  type CorruptEntry,
  emptyTrash,
  planPrune,
  type PrunePlan,
  removeEntry,
  resolveCacheDir,
  scanCache,
  type ScanReport,
  TRASH_DIR,
  writeBook,
} from "../cache/mod.ts";
import type { Command } from "../cli.ts";
import { parseCommandArgs } from "./args.ts";
import type { Env } from "../core/env.ts";
import { EXIT, failed, MlagentError, usageError } from "../core/errors.ts";
import {
  CACHE_LOCK_DIR,
  cacheLockSpec,
  clearLock,
  listLocks,
  type LockHandle,
  venvLockSpec,
  withLock,
} from "../lock/mod.ts";
import { formatBytes, isoTime, type Outcome } from "../core/output.ts";
import { localLockDir, venvRoot } from "../core/paths.ts";
import { readVenvState, writeVenvState } from "../install/state.ts";
import { inspectVenvState, listVenvDirs } from "../status/mod.ts";

const HELP = `Usage: mlagent cache <info|heal|clean> [options]

  mlagent cache info [--json]
      Where the node-local installer cache is and why, its filesystem, size, entry counts, corrupt and
      unknown entries, and the last heal.
  mlagent cache heal [--dry-run] [--max-size SIZE] [--root DIR] [--json]
      Built for cron: takes the cache lock without waiting (held by an install: says "busy", exits 0),
      removes exactly the corrupt entries (uv archives without METADATA/RECORD or with files missing, uv wheel
      entries pointing at missing archives, pip cached downloads that are truncated or unreadable, pip cached
      wheels that are not whole zips), removes stale mlagent locks, marks venvs left "installing" by dead
      owners as failed, and with --max-size prunes least recently used entries down to SIZE. Appends one
      JSON line per run to $XDG_STATE_HOME/mlagent/cache-heal.log. A second run finds nothing to do.
  mlagent cache clean [--yes] [--json]
      Removes the whole cache (moved aside first, so running readers keep their files). A dry run unless --yes.

Options:
  --dry-run       report what heal would remove; change nothing
  --max-size S    heal: prune to S (e.g. 20G, 500M, 1.5GiB, bytes)
  --yes           clean: really remove
  --root DIR      venv root whose dead installs heal marks failed (default MLAGENT_ROOT)

Environment: MLAGENT_CACHE_DIR (the cache root; default <TMPDIR or /tmp>/mlagent-cache-<uid>), TMPDIR,
XDG_STATE_HOME (heal log), UV_CACHE_DIR / PIP_CACHE_DIR (reported when on a network filesystem; mlagent
uses its node-local cache instead).

Exit codes: 0 ok (heal: also when busy), 1 failed, 2 bad cache path or flag, 3 clean: the cache is in use.`;

const SUBCOMMANDS: Record<string, string> = {
  info: `Usage: mlagent cache info [--json]

Where the node-local installer cache is and why (MLAGENT_CACHE_DIR, else a private dir under TMPDIR, else
/tmp), its filesystem, size, entry counts, corrupt and unknown entries, and the last heal. Changes nothing.

Environment: MLAGENT_CACHE_DIR, TMPDIR, UV_CACHE_DIR, PIP_CACHE_DIR. Exit codes: 0 ok, 2 unusable cache dir.`,
  heal: `Usage: mlagent cache heal [--dry-run] [--max-size SIZE] [--root DIR] [--json]

For cron: takes the cache lock without waiting (an install holds it: says "busy", exits 0), removes exactly
the corrupt entries, stale mlagent locks and the records of dead installs, and with --max-size prunes the
least recently used entries down to SIZE (20G, 500M, 1.5GiB, bytes). One JSON line per run goes to the heal
log in MLAGENT_STATE_DIR. A second run finds nothing to do.

Environment: MLAGENT_CACHE_DIR, MLAGENT_ROOT, MLAGENT_STATE_DIR. Exit codes: 0 healed, nothing, or busy;
1 failed; 2 bad flag or unusable cache dir.`,
  clean: `Usage: mlagent cache clean [--yes] [--json]

Removes the whole cache (moved aside first, so running readers keep their files); a dry run unless --yes.
Refuses while an install holds the cache (exit 3).

Environment: MLAGENT_CACHE_DIR. Exit codes: 0 ok, 2 bad flag, 3 the cache is in use.`,
};

export const cacheCommand: Command = {
  name: "cache",
  help: HELP,
  subcommands: SUBCOMMANDS,
  run: async (env, argv) => {
    const { values, positionals } = parseCommandArgs("cache", argv, {
      "dry-run": { type: "boolean" },
      "max-size": { type: "string" },
      yes: { type: "boolean" },
      root: { type: "string" },
    });
    const [sub, ...extra] = positionals;
    if (extra.length) {
      throw usageError(`cache: unexpected argument "${extra[0]}"`, "see: mlagent cache --help");
    }
    if (sub === "info" || sub === undefined) return await runInfo(env);
    if (sub === "heal") {
      const maxBytes = values["max-size"] === undefined ? null : parseSize(values["max-size"]);
      return await runHeal(env, { dryRun: values["dry-run"] ?? false, maxBytes, root: values.root });
    }
    if (sub === "clean") return await runClean(env, values.yes ?? false);
    throw usageError(`cache: unknown subcommand "${sub}"`, "use one of: info, heal, clean");
  },
};

/** "20G", "500M", "1.5GiB", "1024" -> bytes (binary units). */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(s);
  if (!m) throw usageError(`cache: --max-size must be a size like 20G, 500M or 1.5GiB, got "${s}"`);
  const mult = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2].toLowerCase() as "" | "k"]!;
  return Math.floor(Number(m[1]) * mult);
}

function corruptJson(c: CorruptEntry) {
  return { path: c.path, installer: c.installer, package: c.package, reason: c.reason };
}

function scanJson(scan: ScanReport) {
  return {
    bytes: scan.bytes,
    files: scan.files,
    entries: scan.entries,
    unknown_entries: scan.unknown,
    unknown_paths: scan.unknown_paths,
    corrupt_entries: scan.corrupt.length,
    corrupt: scan.corrupt.map(corruptJson),
    scan_ms: scan.duration_ms,
  };
}

// ---- info

async function runInfo(env: Env): Promise<Outcome> {
  const info = await cacheInfo(env);
  const p = info.placement;
  const lines = [
    `cache:      ${p.path}`,
    `reason:     ${p.reason}`,
    `filesystem: ${p.fs_type ?? "unknown"}${p.network ? " (network)" : " (node-local)"}`,
    ...p.rejected.map((r) => `passed over: ${r.path} ${r.reason}`),
    ...p.notices.map((n) => `note:       ${n}`),
  ];
  if (!info.exists) lines.push("state:      not created yet (the first install creates it)");
  if (info.scan) {
    const s = info.scan;
    lines.push(
      `size:       ${formatBytes(s.bytes)} in ${s.files} files`,
      `entries:    ${s.entries.total} (uv ${s.entries.uv}, pip ${s.entries.pip}), unknown ${s.unknown} (left alone)`,
      `corrupt:    ${s.corrupt.length}${s.corrupt.length ? " (run: mlagent cache heal)" : ""}`,
      ...s.corrupt.slice(0, 20).map((c) => `  ${c.path}: ${c.reason}`),
    );
  }
  const last = info.book?.last_heal;
  lines.push(`last heal:  ${last ? `${last.at} ${last.action}: ${last.message}` : "never"}`);
  return {
    exitCode: EXIT.ok,
    text: lines.join("\n"),
    json: {
      ok: true,
      path: p.path,
      reason: p.reason,
      filesystem: p.fs_type,
      network: p.network,
      rejected: p.rejected,
      notices: p.notices,
      exists: info.exists,
      ...(info.scan ? scanJson(info.scan) : {
        bytes: 0,
        files: 0,
        entries: { uv: 0, pip: 0, total: 0 },
        unknown_entries: 0,
        unknown_paths: [],
        corrupt_entries: 0,
        corrupt: [],
        scan_ms: 0,
      }),
      last_heal_at: info.book?.last_heal_at ?? null,
      last_heal: last ?? null,
    },
  };
}

// ---- heal

interface HealOptions {
  dryRun: boolean;
  maxBytes: number | null;
  root?: string;
}

async function runHeal(env: Env, opts: HealOptions): Promise<Outcome> {
  const placement = await resolveCacheDir(env, { create: !opts.dryRun });
  const root = placement.path;
  const started = env.now();
  if (opts.dryRun) {
    const scan = await scanCache(env, root, { sizes: opts.maxBytes !== null });
    const prune = opts.maxBytes !== null ? planPrune(env, root, scan, opts.maxBytes) : null;
    return healOutcome(
      env,
      root,
      "dry-run",
      scan,
      [],
      pruneResult(prune, prune?.paths ?? []),
      [],
      [],
      started,
    );
  }
  let lock: LockHandle | null = null;
  try {
    return await withLock(env, cacheLockSpec(env, root, "cache heal"), { noWait: true }, async (l) => {
      lock = l;
      await emptyTrash(env, root);
      const scan = await scanCache(env, root, { sizes: true });
      const removed: string[] = [];
      for (const c of scan.corrupt) removed.push(...(await removeEntry(env, root, c)));
      const pruned: string[] = [];
      const prune = opts.maxBytes !== null ? planPrune(env, root, scan, opts.maxBytes) : null;
      for (const u of prune?.units ?? []) {
        pruned.push(...(await removeEntry(env, root, { path: u.paths[0], also: u.paths.slice(1) })));
      }
      const locks = await clearStaleLocks(env, opts.root);
      const venvs = await failDeadInstalls(env, opts.root);
      return await healOutcome(
        env,
        root,
        "healed",
        scan,
        removed,
        pruneResult(prune, pruned),
        locks,
        venvs,
        started,
      );
    });
  } catch (e) {
    if (e instanceof MlagentError && e.code === "lock-busy" && lock === null) {
      const msg = `cache ${root} is busy (${e.message}); nothing done, the next run will heal it`;
      await appendHealLog(env, { at: isoTime(env.now()), trigger: "heal", cache: root, result: "busy" });
      return { exitCode: EXIT.ok, text: msg, json: { ok: true, result: "busy", path: root, message: msg } };
    }
    throw e;
  }
}

/** What --max-size pruned (or would prune): the paths, and the bytes of the units they belong to. */
interface Pruned {
  paths: string[];
  bytes: number;
}

function pruneResult(plan: PrunePlan | null, paths: string[]): Pruned {
  if (!plan) return { paths: [], bytes: 0 };
  const gone = new Set(paths);
  const bytes = plan.units.filter((u) => u.paths.some((p) => gone.has(p))).reduce((n, u) => n + u.bytes, 0);
  return { paths, bytes };
}

async function healOutcome(
  env: Env,
  root: string,
  result: "dry-run" | "healed",
  scan: ScanReport,
  removed: string[],
  prunedResult: Pruned,
  locks: string[],
  venvs: string[],
  started: number,
): Promise<Outcome> {
  const dry = result === "dry-run";
  const pruned = prunedResult.paths;
  const nothing = scan.corrupt.length === 0 && pruned.length === 0 && locks.length === 0 &&
    venvs.length === 0;
  const message = nothing
    ? `cache ${root}: nothing to heal (${scan.entries.total} entries, ${scan.unknown} unknown left alone)`
    : dry
    ? `cache ${root}: would remove ${scan.corrupt.length} corrupt entr${
      scan.corrupt.length === 1 ? "y" : "ies"
    }` +
      (pruned.length
        ? ` and prune ${pruned.length} least recently used (${formatBytes(prunedResult.bytes)})`
        : "")
    : `cache ${root}: removed ${removed.length} corrupt entr${removed.length === 1 ? "y" : "ies"}` +
      (pruned.length
        ? `, pruned ${pruned.length} least recently used (${formatBytes(prunedResult.bytes)})`
        : "") +
      (locks.length ? `, cleared ${locks.length} stale lock${locks.length === 1 ? "" : "s"}` : "") +
      (venvs.length ? `, marked ${venvs.length} dead install${venvs.length === 1 ? "" : "s"} failed` : "");
  if (!dry) {
    const at = isoTime(env.now());
    await writeBook(env, root, {
      bytes: scan.bytes,
      entries: scan.entries.total - scan.corrupt.length,
      corrupt_entries: 0,
      unknown_entries: scan.unknown,
      scanned_at: at,
      last_heal_at: at,
      last_heal: {
        at,
        action: nothing ? "none" : "scan",
        removed: removed.length + pruned.length,
        corrupt_found: scan.corrupt.length,
        package: null,
        message,
      },
    });
  }
  const log = dry ? null : await appendHealLog(env, {
    at: isoTime(env.now()),
    trigger: "heal",
    cache: root,
    result: nothing ? "nothing" : "healed",
    corrupt: scan.corrupt.map(corruptJson),
    removed,
    pruned,
    pruned_bytes: prunedResult.bytes,
    stale_locks: locks,
    failed_venvs: venvs,
    duration_ms: env.now() - started,
  });
  const text = [
    message,
    ...scan.corrupt.map((c) => `  ${dry ? "would remove" : "removed"} ${c.path}: ${c.reason}`),
    ...pruned.map((p) => `  ${dry ? "would prune" : "pruned"} ${p}`),
    ...locks.map((l) => `  cleared stale lock ${l}`),
    ...venvs.map((v) => `  marked failed: ${v}`),
  ].join("\n");
  return {
    exitCode: EXIT.ok,
    text,
    json: {
      ok: true,
      result: !dry && nothing ? "nothing" : result,
      path: root,
      message,
      ...scanJson(scan),
      removed,
      pruned,
      pruned_bytes: prunedResult.bytes,
      stale_locks_cleared: locks,
      venvs_marked_failed: venvs,
      log_path: log,
      duration_ms: env.now() - started,
    },
  };
}

/** Removes stale mlagent locks (dead owners) from the node-local lock dir and beside venvs. */
async function clearStaleLocks(env: Env, rootFlag?: string): Promise<string[]> {
  const out: string[] = [];
  const infos = await listLocks(env, [
    { dir: localLockDir(env), prefix: "" },
    { dir: venvRoot(env, rootFlag), prefix: "venv:" },
  ]).catch(() => []);
  for (const info of infos) {
    if (
      !info.status.startsWith("stale") || info.status === "stale-no-owner" && info.reason.includes("refused")
    ) continue;
    try {
      if (await clearLock(env, info)) out.push(info.name);
    } catch (e) {
      env.log.warn(`cannot clear stale lock ${info.path}: ${(e as Error).message}`);
    }
  }
  return out;
}

/** Venvs left "installing" by an owner that is gone: marked failed (under their lock) so nothing trusts them. */
async function failDeadInstalls(env: Env, rootFlag?: string): Promise<string[]> {
  const out: string[] = [];
  let dirs: string[] = [];
  try {
    dirs = await listVenvDirs(env, venvRoot(env, rootFlag));
  } catch {
    return out;
  }
  for (const dir of dirs) {
    const report = await inspectVenvState(env, dir, null).catch(() => null);
    if (report?.condition !== "installing-dead-owner") continue;
    try {
      await withLock(env, venvLockSpec(dir, "cache heal"), { noWait: true }, async () => {
        const st = await readVenvState(env, dir);
        if (st.kind !== "ok" || st.value.status !== "installing") return;
        await writeVenvState(env, dir, {
          ...st.value,
          status: "failed",
          updated_at: isoTime(env.now()),
          error: {
            stage: null,
            kind: "interrupted",
            message: `install by pid ${st.value.owner?.pid} on ${st.value.owner?.host} died before finishing`,
          },
        });
        out.push(dir);
      });
    } catch (e) {
      if (!(e instanceof MlagentError && e.code === "lock-busy")) {
        env.log.warn(`cannot mark ${dir} failed: ${(e as Error).message}`);
      }
    }
  }
  return out;
}

// ---- clean

async function runClean(env: Env, yes: boolean): Promise<Outcome> {
  const placement = await resolveCacheDir(env, { create: false });
  const root = placement.path;
  const scan = await scanCache(env, root, { sizes: true });
  if (!yes) {
    const msg = `would remove the whole cache ${root}: ${formatBytes(scan.bytes)} in ${scan.files} files ` +
      `(${scan.entries.total} entries); run with --yes`;
    return {
      exitCode: EXIT.ok,
      text: msg,
      json: { ok: true, result: "dry-run", path: root, message: msg, bytes: scan.bytes, files: scan.files },
    };
  }
  const removed: string[] = [];
  let removable = 0;
  await withLock(env, cacheLockSpec(env, root, "cache clean"), { noWait: true }, async () => {
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...env.fs.readDirSync(root)];
    } catch { /* nothing there */ }
    for (const e of entries) {
      // The lock dir stays: we hold the lock in it, and waiters would otherwise lock a file no one holds.
      if (e.name === TRASH_DIR || e.name === BOOK_FILE || e.name === CACHE_LOCK_DIR) continue;
      removable++;
      removed.push(...(await removeEntry(env, root, { path: `${root}/${e.name}`, also: [] })));
    }
    await emptyTrash(env, root);
    if (entries.length) {
      await writeBook(env, root, {
        bytes: 0,
        entries: 0,
        corrupt_entries: 0,
        unknown_entries: 0,
        scanned_at: isoTime(env.now()),
        last_heal_at: isoTime(env.now()),
        last_heal: {
          at: isoTime(env.now()),
          action: "clean",
          removed: removed.length,
          corrupt_found: scan.corrupt.length,
          package: null,
          message: `cleaned the whole cache (${formatBytes(scan.bytes)})`,
        },
      });
    }
  }).catch((e) => {
    if (e instanceof MlagentError && e.code === "lock-busy") {
      throw new MlagentError(
        "lock-busy",
        `cache ${root} is in use (${e.message})`,
        "run it again when the install ends",
      );
    }
    throw e;
  });
  const msg = `removed the whole cache ${root}: ${formatBytes(scan.bytes)} freed`;
  await appendHealLog(env, {
    at: isoTime(env.now()),
    trigger: "clean",
    cache: root,
    removed,
    bytes: scan.bytes,
  });
  // Only the cache's own record and lock left: already clean, not a failure.
  if (removed.length === 0 && removable > 0) throw failed(`cache ${root}: nothing could be removed`);
  return {
    exitCode: EXIT.ok,
    text: msg,
    json: {
      ok: true,
      result: "cleaned",
      path: root,
      message: msg,
      bytes: scan.bytes,
      files: scan.files,
      removed,
    },
  };
}
