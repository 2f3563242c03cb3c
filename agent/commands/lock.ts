/** `mlagent lock`: list, check and clear locks, and run a command under one (like flock(1), judgeable). */
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import { closestMatch } from "../core/did_you_mean.ts";
import type { Env } from "../core/env.ts";
import { badInput, EXIT, exitForSignal, failed, MlagentError, usageError } from "../core/errors.ts";
import {
  acquire,
  acquireShared,
  cacheLockSpec,
  checkPrivateLockDir,
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
import { absolute, localLockDir, venvDir } from "../core/paths.ts";
import { findOnPath, type SpawnedChild } from "../core/run.ts";

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
  --timeout S   (run) wait at most S seconds (default 1800)
  --no-wait     (run) fail at once with exit code 3 when the lock is held
  --ttl S       (run) lease TTL in seconds (default 60): a record from another host that this host has seen
                unchanged for longer is stale (the times inside it are never compared with this clock)
  --mode M      (run) auto (default: lease on network filesystems, flock elsewhere), flock or lease
  --yes         (clear) really remove; without it clear is a dry run
  --force       (clear) also remove locks held by live holders on other hosts
  --root DIR    venv root to scan and to resolve venv:PROFILE (default MLAGENT_ROOT)
  --json        one JSON document on stdout (run: the command's stdout then goes to stderr)
  -v, --verbose, -q, --quiet, --no-progress, -h, --help   as for every command

Run \`mlagent lock SUBCOMMAND --help\` for one subcommand.

Environment: MLAGENT_LOCK_DIR (node-local lock dir), MLAGENT_LOCK_MODE, MLAGENT_LOCK_TTL,
MLAGENT_LOCK_HEARTBEAT (seconds), MLAGENT_LOCK_NOTICE (seconds between "waiting" lines), MLAGENT_LOCK_POLL_MS.
The command sees MLAGENT_LOCK_NAME, MLAGENT_LOCK_FENCING and MLAGENT_LOCK_TOKEN.

Exit codes: 0 ok (run: the command's code; 126 not executable, 127 not found, 128+N killed by signal N),
1 failed or timed out, 2 bad input, 3 held (check, --no-wait).`;

const COMMON_HELP = `Options for every command: --json, -v/--verbose, -q/--quiet, --no-progress, -h/--help.`;

/** Each subcommand's own flags: its parser takes these (and the common ones) and refuses the rest. */
const SUB_OPTIONS = {
  list: { root: { type: "string" } },
  check: { root: { type: "string" } },
  clear: { yes: { type: "boolean" }, force: { type: "boolean" }, root: { type: "string" } },
  run: {
    shared: { type: "boolean" },
    timeout: { type: "string" },
    "no-wait": { type: "boolean" },
    ttl: { type: "string" },
    mode: { type: "string" },
    root: { type: "string" },
  },
} as const;

type Sub = keyof typeof SUB_OPTIONS;
const ALL_OPTIONS = Object.assign({}, ...Object.values(SUB_OPTIONS)) as
  & typeof SUB_OPTIONS["run"]
  & typeof SUB_OPTIONS["clear"];
export const LOCK_SUBCOMMANDS = Object.keys(SUB_OPTIONS) as Sub[];

/** Flags of each subcommand, for tests that hold the help to the parser. */
export function lockSubcommandFlags(sub: Sub): string[] {
  return Object.keys(SUB_OPTIONS[sub]).map((f) => `--${f}`);
}

const SUBCOMMANDS: Record<Sub, string> = {
  list: `Usage: mlagent lock list [--root DIR] [--json]

Every lock mlagent knows (the node-local lock dir, *.lock beside venvs under the venv root, and the
configured cache's lock) with its status: held, held-remote, stale-dead, stale-expired, stale-no-owner, its
owner record, its shared holders, and (lease mode) how leases are claimed there: link or exclusive.

Options:
  --root DIR    venv root to scan (default MLAGENT_ROOT)
  --json        one JSON document on stdout
${COMMON_HELP}

Environment: MLAGENT_LOCK_DIR, MLAGENT_ROOT, MLAGENT_CACHE_DIR. Exit codes: 0 ok, 2 bad lock dir or flag.`,
  check: `Usage: mlagent lock check NAME [--root DIR] [--json]

Exit 0 when NAME is free (or only stale), 3 when it is held. For scripts and job prologues. NAME is a plain
name, or venv:PROFILE, cache:DIR, download:DIR.

Options:
  --root DIR    venv root that resolves venv:PROFILE (default MLAGENT_ROOT)
  --json        one JSON document on stdout
${COMMON_HELP}

Environment: MLAGENT_LOCK_DIR, MLAGENT_ROOT. Exit codes: 0 free, 2 bad name or flag, 3 held.`,
  clear: `Usage: mlagent lock clear [--yes] [--force] [--root DIR] [--json]

Removes stale locks (and temp files of lock operations killed mid-way). A dry run unless --yes.

Options:
  --yes         really remove them
  --force       also remove locks held by live holders on other hosts (only when you know they are gone:
                two holders may otherwise run at once)
  --root DIR    venv root to scan (default MLAGENT_ROOT)
  --json        one JSON document on stdout
${COMMON_HELP}

Environment: MLAGENT_LOCK_DIR, MLAGENT_ROOT, MLAGENT_CACHE_DIR. Exit codes: 0 ok, 2 bad lock dir or flag.`,
  run: `Usage: mlagent lock run NAME [--shared] [--timeout S] [--no-wait] [--ttl S] [--mode M] [--root DIR]
                        [--json] -- COMMAND...

Runs COMMAND holding the lock and passes its exit code through. The command keeps the lock while it runs,
even if mlagent is killed. SIGINT/SIGTERM are forwarded to it; the lock is released after it ends. With
--json the command's stdout goes to stderr, so stdout carries only mlagent's one JSON document.

Options:
  --shared      a shared hold (like flock -s): many at once, none while someone holds it exclusively
  --timeout S   wait at most S seconds (default 1800)
  --no-wait     fail at once with exit code 3 when the lock is held
  --ttl S       lease TTL in seconds (default 60)
  --mode M      auto (default: lease on network filesystems, flock elsewhere), flock or lease
  --root DIR    venv root that resolves venv:PROFILE (default MLAGENT_ROOT)
  --json        one JSON document on stdout; the command's stdout goes to stderr
${COMMON_HELP}

The command sees MLAGENT_LOCK_NAME, MLAGENT_LOCK_FENCING and MLAGENT_LOCK_TOKEN.
Environment: MLAGENT_LOCK_DIR, MLAGENT_LOCK_MODE, MLAGENT_LOCK_TTL, MLAGENT_LOCK_HEARTBEAT,
MLAGENT_LOCK_NOTICE, MLAGENT_LOCK_POLL_MS.
Exit codes: the command's own; 126 not executable, 127 not found, 128+N killed by signal N (as a shell);
1 timed out or lock lost, 2 bad input, 3 held (--no-wait).`,
};

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

/** Why `program` cannot run, as a shell would say it and exit: 127 when there is none, 126 when it is not executable. */
function notRunnable(env: Env, program: string): { exitCode: 126 | 127; why: string } | null {
  const kind = (path: string): "missing" | "dir" | "file" | "exec" => {
    try {
      const st = env.fs.statSync(path);
      if (st.isDirectory) return "dir";
      return ((st.mode ?? 0o755) & 0o111) !== 0 ? "exec" : "file";
    } catch {
      return "missing";
    }
  };
  if (program.includes("/")) {
    const path = program.startsWith("/") ? program : `${env.cwd}/${program}`;
    const k = kind(path);
    if (k === "missing") return { exitCode: 127, why: `${program}: no such file` };
    if (k === "dir") return { exitCode: 126, why: `${program}: is a directory` };
    if (k === "file") return { exitCode: 126, why: `${program}: permission denied (not executable)` };
    return null;
  }
  if (findOnPath(program, env.vars.PATH)) return null;
  const dirs = (env.vars.PATH ?? "").split(":").filter(Boolean);
  const found = dirs.map((d) => `${d}/${program}`).find((p) => kind(p) === "file");
  if (found) return { exitCode: 126, why: `${program}: permission denied (${found} is not executable)` };
  return { exitCode: 127, why: `command not found: ${program}` };
}

/** A command that could not be started: one line (and a hint) on stderr, the shell's exit code. */
function cannotRun(env: Env, name: string, problem: { exitCode: 126 | 127; why: string }): Outcome {
  const message = `lock run: ${problem.why}`;
  const hint = problem.exitCode === 127
    ? "give the command's full path or fix PATH"
    : "make it executable (chmod +x) or run it through its interpreter";
  env.log.error(message);
  env.log.hint(hint);
  return {
    exitCode: problem.exitCode,
    json: { ok: false, error: { code: "failed", message, hint, lock: name, exit_code: problem.exitCode } },
    text: "",
  };
}

/**
 * With --json the command's stdout is sent to stderr, so stdout holds mlagent's one document. A constant
 * script with the command as its arguments, exec'd so the command keeps the pid we record and signal:
 * Deno cannot point a child's stdout at our stderr, and a pipe we copy from would make the command's output
 * block-buffered and keep us waiting on any background process that inherited it.
 */
const STDOUT_TO_STDERR = ["/bin/sh", "-c", 'exec "$@" 1>&2', "mlagent-lock-run"];

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
    json: boolean;
  },
): Promise<Outcome> {
  const spec = resolveLockName(env, name, `lock run ${command[0]}`, opts.root);
  // Before taking the lock: no one should wait half an hour to learn that the command does not exist.
  const problem = notRunnable(env, command[0]);
  if (problem) return cannotRun(env, spec.name, problem);
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
    if (caught) return interrupted(caught, name);
    const held = lock;
    let lostMessage: string | null = null;
    held.lost.addEventListener("abort", () => {
      lostMessage = held.lost.reason instanceof Error ? held.lost.reason.message : "lock lost";
      child?.kill("SIGTERM");
    });
    let recording: Promise<void> = Promise.resolve();
    const r = await env.run(opts.json ? [...STDOUT_TO_STDERR, ...command] : command, {
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
    // Gone between our look and the start (or refused by a noexec mount): as a shell would say it.
    if (r.kind === "not-found") {
      return cannotRun(
        env,
        spec.name,
        notRunnable(env, command[0]) ?? { exitCode: 126, why: `${command[0]}: cannot be executed` },
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
    const waitedMs = held.waitedMs ?? 0;
    return {
      // A command killed by signal N ends us with 128+N (the runner reports it so), as a shell does.
      exitCode: r.code,
      json: {
        ok: r.code === 0,
        name: spec.name,
        path: spec.path,
        mode: held.mode ?? null,
        shared: opts.shared,
        fencing: held.fencing,
        waited_ms: waitedMs,
        waited_for_other: waitedMs > 0,
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
  subcommands: SUBCOMMANDS,
  async run(env, argv) {
    const dd = argv.indexOf("--");
    const own = dd === -1 ? argv : argv.slice(0, dd);
    const command = dd === -1 ? [] : argv.slice(dd + 1);
    // Flags may come before the subcommand (`lock --root DIR list`): find it with every subcommand's flags.
    const first = parseCommandArgs("lock", own, ALL_OPTIONS).positionals[0];
    if (first === undefined) {
      throw usageError("lock: missing subcommand (list, check, clear or run)", "see: mlagent lock --help");
    }
    if (!(first in SUB_OPTIONS)) {
      const near = closestMatch(first, LOCK_SUBCOMMANDS);
      throw usageError(
        `lock: unknown subcommand "${first}"${near ? `; did you mean "${near}"?` : ""}`,
        `subcommands: ${LOCK_SUBCOMMANDS.join(", ")}; see: mlagent lock --help`,
      );
    }
    const sub = first as Sub;
    const { values, positionals } = parseCommandArgs(`lock ${sub}`, own, SUB_OPTIONS[sub]);
    const v = values as Record<string, string | boolean | undefined>;
    const args = positionals.slice(1);
    const root = v.root as string | undefined;
    const need = (n: number, usage: string) => {
      if (args.length !== n) {
        throw usageError(`lock ${sub}: expected ${usage}`, `see: mlagent lock ${sub} --help`);
      }
    };
    if (sub !== "run" && command.length) {
      throw usageError(`lock ${sub}: unexpected "--"`, `see: mlagent lock ${sub} --help`);
    }
    // A node-local lock dir that is a file or someone else's is named now, not taken for "no locks".
    checkPrivateLockDir(env, localLockDir(env));
    switch (sub) {
      case "list":
        need(0, "no arguments");
        return await listCommand(env, root);
      case "check":
        need(1, "one lock NAME");
        return await checkCommand(env, args[0], root);
      case "clear":
        need(0, "no arguments");
        return await clearCommand(env, v.yes === true, v.force === true, root);
      case "run": {
        need(1, "one lock NAME before --");
        if (!command.length) {
          throw usageError("lock run: no command after --", "mlagent lock run NAME -- COMMAND");
        }
        const mode = v.mode as string | undefined;
        if (mode !== undefined && mode !== "auto" && mode !== "flock" && mode !== "lease") {
          throw usageError(`lock run: --mode must be auto, flock or lease, got "${mode}"`);
        }
        const timeout = parseNumberFlag("lock run", "timeout", v.timeout as string | undefined);
        const ttl = parseNumberFlag("lock run", "ttl", v.ttl as string | undefined, { min: 0.001 });
        return await runUnderLock(env, args[0], command, {
          timeoutMs: timeout === undefined ? undefined : timeout * 1000,
          noWait: v["no-wait"] === true,
          ttlMs: ttl === undefined ? undefined : ttl * 1000,
          mode,
          root,
          shared: v.shared === true,
          json: v.json === true,
        });
      }
    }
  },
};
