/** `mlagent lock`: list, check and clear locks, and run a command under one (like flock(1), judgeable). */
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import type { Env } from "../core/env.ts";
import { badInput, EXIT, exitForSignal, failed, MlagentError, usageError } from "../core/errors.ts";
import {
  acquire,
  acquireShared,
  cacheLockSpec,
  clearLock,
  clearStaleLocks,
  describeOwner,
  downloadLockSpec,
  findLeftovers,
  inspectLock,
  knownLockDirs,
  listLocks,
  type LockDir,
  type LockHandle,
  type LockInfo,
  type LockSpec,
  type LockVerdict,
  namedLockSpec,
  validateLockName,
  venvLockSpec,
} from "../lock/mod.ts";
import type { Outcome } from "../core/output.ts";
import { absolute, venvDir } from "../core/paths.ts";
import type { SpawnedChild } from "../core/run.ts";

const HELP = `Usage: mlagent lock <list|check|clear|run> [options]

  mlagent lock list [--json]
      Every lock mlagent knows (the node-local lock dir, and *.lock beside venvs under the venv root) with
      its status: held, held-remote, stale-dead, stale-expired, stale-no-owner, its owner record, its
      shared holders, and (lease mode) how leases are claimed there: link or exclusive.
  mlagent lock check NAME
      Exit 0 when NAME is free (or only stale), 3 when it is held. For scripts and job prologues.
  mlagent lock clear [--yes] [--force]
      Removes stale locks (and temp files of lock operations killed mid-way). A dry run unless --yes.
      --force also removes locks held by live holders on other hosts (only when you know they are gone:
      two holders may otherwise run at once).
  mlagent lock run NAME [--shared] [--timeout S] [--no-wait] [--ttl S] [--mode auto|flock|lease] -- COMMAND...
      Runs COMMAND holding the lock and passes its exit code through. The command keeps the lock while it
      runs, even if mlagent is killed. SIGINT/SIGTERM are forwarded to it; the lock is released after it ends.
      --shared holds it shared (like flock -s): many at once, none while someone holds it exclusively.

NAME is a plain name (letters, digits, . _ - :), or venv:PROFILE, cache:DIR, download:DIR for the locks
install, cache heal and download take.

Options:
  --shared      (run) a shared hold instead of an exclusive one
  --timeout S   wait at most S seconds (default 1800)
  --no-wait     fail at once with exit code 3 when the lock is held
  --ttl S       lease TTL in seconds (default 60): a record from another host that this host has seen
                unchanged for longer is stale (the times inside it are never compared with this clock)
  --mode M      auto (default: lease on network filesystems, flock elsewhere), flock or lease
  --root DIR    venv root to scan and to resolve venv:PROFILE (default MLAGENT_ROOT)

Environment: MLAGENT_LOCK_DIR (node-local lock dir), MLAGENT_LOCK_MODE, MLAGENT_LOCK_TTL,
MLAGENT_LOCK_HEARTBEAT (seconds), MLAGENT_LOCK_NOTICE (seconds between "waiting" lines), MLAGENT_LOCK_POLL_MS.
The command sees MLAGENT_LOCK_NAME, MLAGENT_LOCK_FENCING and MLAGENT_LOCK_TOKEN.

Exit codes: 0 ok (run: the command's code), 1 failed or timed out, 2 bad input, 3 held (check, --no-wait).`;

const SIGNAL_CODES = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;

/** NAME -> the lock it names: venv:, cache: and download: reach the locks the other commands take. */
export function resolveLockName(env: Env, name: string, purpose: string, root?: string): LockSpec {
  const colon = name.indexOf(":");
  const kind = colon > 0 ? name.slice(0, colon) : "";
  const rest = name.slice(colon + 1);
  if (kind === "venv") {
    validateLockName(rest);
    return venvLockSpec(venvDir(env, rest, root), purpose);
  }
  if (kind === "cache" || kind === "download") {
    // deno-lint-ignore no-control-regex
    if (!rest.startsWith("/") || /[\x00-\x1f\x7f]/.test(rest) || rest.split("/").includes("..")) {
      throw badInput(`bad lock name ${JSON.stringify(name)}: ${kind}: needs an absolute path without '..'`);
    }
    return kind === "cache" ? cacheLockSpec(env, rest, purpose) : downloadLockSpec(rest, purpose);
  }
  return namedLockSpec(env, name, purpose);
}

/** The configured cache's lock, when it sits beside the cache rather than in one of `dirs`. */
async function cacheLock(env: Env, dirs: LockDir[]): Promise<LockInfo[]> {
  if (!env.vars.MLAGENT_CACHE_DIR) return [];
  const spec = cacheLockSpec(env, absolute(env, env.vars.MLAGENT_CACHE_DIR), "");
  if (dirs.some((d) => spec.path.slice(0, spec.path.lastIndexOf("/")) === d.dir)) return [];
  const info = await inspectLock(env, spec).catch(() => null);
  return info && info.status !== "free" ? [info] : [];
}

/** The locks in the node-local dir and beside venvs, plus the configured cache's lock where it sits beside it. */
async function knownLocks(env: Env, root?: string): Promise<LockInfo[]> {
  const dirs = knownLockDirs(env, root);
  return [...await listLocks(env, dirs), ...await cacheLock(env, dirs)];
}

function verdictJson(env: Env, v: LockVerdict) {
  const now = env.now();
  return {
    status: v.status,
    reason: v.reason,
    held_for_ms: v.owner ? Math.max(0, now - Date.parse(v.owner.acquired_at)) : null,
    // Another host's record: how long this host has seen it unchanged (its clock is never trusted).
    heartbeat_age_ms: v.quietMs ?? (v.owner ? Math.max(0, now - Date.parse(v.owner.heartbeat_at)) : null),
    owner: v.owner,
  };
}

function infoJson(env: Env, l: LockInfo) {
  const { status, reason, held_for_ms, heartbeat_age_ms, owner } = verdictJson(env, l);
  return {
    name: l.name,
    path: l.path,
    mode: l.mode,
    claim: l.claim,
    status,
    reason,
    held_for_ms,
    heartbeat_age_ms,
    owner,
    holders: l.holders.map((h) => verdictJson(env, h)),
  };
}

function infoLine(env: Env, l: LockInfo): string {
  const who = l.owner ? describeOwner(env, l.owner) : l.holders.length ? "shared" : "no owner record";
  const claim = l.claim ? ` claim=${l.claim}` : "";
  const line = `${l.status.padEnd(14)} ${l.name}  ${who}  [${l.reason}]  ${l.path}${claim}`;
  const holders = l.holders.map((h) =>
    `  ${h.status.padEnd(14)} shared by ${
      h.owner ? describeOwner(env, h.owner) : "an unreadable record"
    }  [${h.reason}]`
  );
  return [line, ...holders].join("\n");
}

async function listCommand(env: Env, root?: string): Promise<Outcome> {
  const locks = await knownLocks(env, root);
  return {
    exitCode: EXIT.ok,
    json: { ok: true, locks: locks.map((l) => infoJson(env, l)) },
    // Rendered only when asked for: with 20,000 locks the text costs as much as the listing.
    get text() {
      return locks.length ? locks.map((l) => infoLine(env, l)).join("\n") : "no locks held or left behind";
    },
  };
}

async function checkCommand(env: Env, name: string, root?: string): Promise<Outcome> {
  const info = await inspectLock(env, resolveLockName(env, name, "check", root));
  const held = info.status === "held" || info.status === "held-remote";
  return {
    exitCode: held ? EXIT.lockBusy : EXIT.ok,
    json: { ok: !held, held, ...infoJson(env, { ...info, name }) },
    text: held
      ? `lock "${name}" is held by ${describeOwner(env, info.owner)}`
      : info.status === "free"
      ? `lock "${name}" is free`
      : `lock "${name}" is free (${info.status}: ${info.reason})`,
  };
}

const clearable = (l: LockInfo, force: boolean) =>
  !l.reason.endsWith("; refused") && (l.status.startsWith("stale") || (force && l.status === "held-remote"));

async function clearCommand(env: Env, yes: boolean, force: boolean, root?: string): Promise<Outcome> {
  const dirs = knownLockDirs(env, root);
  const listed = await clearStaleLocks(env, dirs, { force, dryRun: true });
  const extra = await cacheLock(env, dirs);
  for (const l of [...listed.candidates, ...extra]) {
    if (!(force && l.status === "held-remote")) continue;
    env.log.warn(
      `${yes ? "FORCIBLY REMOVING" : "would FORCIBLY remove"} lock "${l.name}" held by ${
        describeOwner(env, l.owner)
      } with a fresh heartbeat: if that holder is alive, two holders may run at once`,
    );
  }
  const result = yes ? await clearStaleLocks(env, dirs, { force }) : listed;
  const extraTargets = extra.filter((l) => clearable(l, force));
  const candidates = [...result.candidates, ...extraTargets];
  const removed = [...result.removed];
  const kept = [...result.kept];
  if (yes) {
    for (const l of extraTargets) (await clearLock(env, l, { force }) ? removed : kept).push(l);
  }
  const leftovers = await findLeftovers(env, dirs.map((d) => d.dir));
  if (yes) { for (const f of leftovers) await env.fs.remove(f).catch(() => {}); }
  const lines = !yes
    ? [
      ...candidates.map((l) => `would remove ${l.status} lock "${l.name}" (${l.reason})  ${l.path}`),
      ...leftovers.map((f) => `would remove leftover temp file ${f}`),
    ]
    : [
      ...removed.map((l) => `removed ${l.status} lock "${l.name}"  ${l.path}`),
      ...kept.map((l) => `kept lock "${l.name}": held again when rechecked  ${l.path}`),
      ...leftovers.map((f) => `removed leftover temp file ${f}`),
    ];
  if (!yes && (candidates.length || leftovers.length)) lines.push("dry run: pass --yes to remove them");
  const held = [...result.held, ...extra.filter((l) => !extraTargets.includes(l))];
  return {
    exitCode: EXIT.ok,
    json: {
      ok: true,
      dry_run: !yes,
      force,
      candidates: candidates.map((l) => infoJson(env, l)),
      removed: removed.map((l) => l.path),
      kept: kept.map((l) => l.path),
      leftovers,
      held: held.map((l) => infoJson(env, l)),
    },
    text: lines.length ? lines.join("\n") : "no stale locks",
  };
}

async function runUnderLock(
  env: Env,
  name: string,
  command: string[],
  opts: {
    timeoutMs?: number;
    noWait: boolean;
    ttlMs?: number;
    mode?: "auto" | "flock" | "lease";
    root?: string;
    shared: boolean;
  },
): Promise<Outcome> {
  const spec = resolveLockName(env, name, `lock run ${command[0]}`, opts.root);
  const interrupt = new AbortController();
  let caught: keyof typeof SIGNAL_CODES | null = null;
  let child: SpawnedChild | null = null;
  const unwatch = (Object.keys(SIGNAL_CODES) as (keyof typeof SIGNAL_CODES)[]).map((sig) =>
    env.onSignal(sig, () => {
      caught ??= sig;
      // Ctrl-C on a terminal already reached the command (same process group); a second SIGINT would
      // interrupt its cleanup. Anything else (kill, the scheduler's SIGTERM) is passed on.
      if (child && !(sig === "SIGINT" && env.stderrIsTerminal)) child.kill(sig);
      else if (!child) interrupt.abort();
    })
  );
  let lock: LockHandle | null = null;
  try {
    const waitStart = env.now();
    try {
      lock = await (opts.shared ? acquireShared : acquire)(env, spec, {
        timeoutMs: opts.timeoutMs,
        noWait: opts.noWait,
        ttlMs: opts.ttlMs,
        mode: opts.mode,
        signal: interrupt.signal,
        command,
        handleSignals: false,
      });
    } catch (e) {
      if (caught && e instanceof MlagentError && e.code === "failed") return interrupted(caught, name);
      throw e;
    }
    const waitedMs = env.now() - waitStart;
    if (caught) return interrupted(caught, name);
    const held = lock;
    let lostMessage: string | null = null;
    held.lost.addEventListener("abort", () => {
      lostMessage = held.lost.reason instanceof Error ? held.lost.reason.message : "lock lost";
      child?.kill("SIGTERM");
    });
    let recording: Promise<void> = Promise.resolve();
    const r = await env.run(command, {
      inheritStdio: true,
      inheritStdin: true,
      // Same process group, as with flock(1): killing the group kills both, Ctrl-C reaches both.
      newProcessGroup: false,
      timeoutMs: 2 ** 31 - 1,
      env: {
        MLAGENT_LOCK_NAME: spec.name,
        MLAGENT_LOCK_FENCING: String(held.fencing),
        MLAGENT_LOCK_TOKEN: held.token,
      },
      onSpawn: (c) => {
        child = c;
        if (caught) c.kill(caught);
        recording = held.recordCommand?.(c.pid).catch(() => {}) ?? recording;
      },
    });
    await recording;
    if (r.kind === "not-found") {
      throw badInput(
        `lock run: command not found: ${command[0]}`,
        "give the command's full path or fix PATH",
      );
    }
    if (r.kind === "timed-out") throw failed(`lock run: ${command[0]} did not finish`);
    if (lostMessage) {
      throw new MlagentError(
        "lock-lost",
        lostMessage,
        "the lease was broken by another host (heartbeat older than the TTL?); raise --ttl",
      );
    }
    return {
      exitCode: r.code,
      json: {
        ok: r.code === 0,
        name: spec.name,
        path: spec.path,
        mode: held.mode ?? null,
        shared: opts.shared,
        fencing: held.fencing,
        waited_ms: waitedMs,
        exit_code: r.code,
        signal: r.signal,
        duration_ms: r.durationMs,
      },
      text: "",
    };
  } finally {
    await lock?.release();
    for (const u of unwatch) u();
  }
}

function interrupted(sig: keyof typeof SIGNAL_CODES, name: string): Outcome {
  return {
    exitCode: exitForSignal(SIGNAL_CODES[sig]),
    json: { ok: false, name, interrupted: sig.toLowerCase() },
    text: "",
  };
}

export const lockCommand: Command = {
  name: "lock",
  help: HELP,
  async run(env, argv) {
    const dd = argv.indexOf("--");
    const own = dd === -1 ? argv : argv.slice(0, dd);
    const command = dd === -1 ? [] : argv.slice(dd + 1);
    const { values, positionals } = parseCommandArgs("lock", own, {
      yes: { type: "boolean" },
      force: { type: "boolean" },
      timeout: { type: "string" },
      "no-wait": { type: "boolean" },
      shared: { type: "boolean" },
      ttl: { type: "string" },
      mode: { type: "string" },
      root: { type: "string" },
    });
    const [sub, ...args] = positionals;
    const root = values.root;
    const need = (n: number, usage: string) => {
      if (args.length !== n) throw usageError(`lock ${sub}: expected ${usage}`, "see: mlagent lock --help");
    };
    switch (sub) {
      case "list":
        need(0, "no arguments");
        return await listCommand(env, root);
      case "check":
        need(1, "one lock NAME");
        return await checkCommand(env, args[0], root);
      case "clear":
        need(0, "no arguments");
        return await clearCommand(env, values.yes ?? false, values.force ?? false, root);
      case "run": {
        need(1, "one lock NAME before --");
        if (!command.length) {
          throw usageError("lock run: no command after --", "mlagent lock run NAME -- COMMAND");
        }
        const mode = values.mode;
        if (mode !== undefined && mode !== "auto" && mode !== "flock" && mode !== "lease") {
          throw usageError(`lock run: --mode must be auto, flock or lease, got "${mode}"`);
        }
        const timeout = parseNumberFlag("lock", "timeout", values.timeout);
        const ttl = parseNumberFlag("lock", "ttl", values.ttl, { min: 0.001 });
        return await runUnderLock(env, args[0], command, {
          timeoutMs: timeout === undefined ? undefined : timeout * 1000,
          noWait: values["no-wait"] ?? false,
          ttlMs: ttl === undefined ? undefined : ttl * 1000,
          mode,
          root,
          shared: values.shared ?? false,
        });
      }
      case undefined:
        throw usageError("lock: missing subcommand (list, check, clear or run)", "see: mlagent lock --help");
      default:
        throw usageError(`lock: unknown subcommand "${sub}"`, "subcommands: list, check, clear, run");
    }
  },
};
