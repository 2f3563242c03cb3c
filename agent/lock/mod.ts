/**
 * Locks safe across processes and hosts.
 *
 * Two mechanisms behind one contract:
 * - flock mode (node-local filesystems): a kernel lock on `X.lock`, so a holder that dies releases it at once
 *   and a waiter blocked in flock(2) wakes the moment it does. The lock file is persistent and never truncated
 *   before it is held; it carries only the fencing counter. The owner record is a sidecar `X.lock.owner`
 *   written atomically (temp file, then rename): readers that do not hold the lock (`lock list`, waiters printing who holds
 *   it) must never see half a record, and rewriting the locked file in place cannot promise that.
 * - lease mode (network filesystems, where flock is emulated, node-local or missing, or where flock fails):
 *   `X.lock` itself is the claim, made atomically by hard-linking a complete record into place (link(2) is
 *   atomic on NFS, where O_EXCL historically was not). The claim is never rewritten: heartbeats go to
 *   `X.lock.heartbeat` (tagged with the holder's token), so a holder that resumes after being broken cannot
 *   clobber its successor's claim. Breaking is rename-aside-then-claim, and the breaker checks that what it
 *   moved aside is the record it judged stale, putting anything else back.
 *
 * In both modes a lock taken for a command (`lock run`) stays held while that command lives, even when
 * mlagent itself is SIGKILLed: the command carries MLAGENT_LOCK_TOKEN, and a judge on the same host that
 * finds the owner dead looks for a live process carrying the token before calling the lock stale.
 */
import type { Env } from "../core/env.ts";
import { badInput, failed, MlagentError } from "../core/errors.ts";
import { mountForPath } from "../core/mounts.ts";
import { formatDuration, isoTime } from "../core/output.ts";
import { localLockDir } from "../core/paths.ts";
import { bootId, isAlive, readProc, schedulerJob } from "../core/proc.ts";
import type { SpawnedChild } from "../core/run.ts";

export interface LockSpec {
  /** Human name shown in messages, e.g. "venv:hunyuan-video-i2v". */
  name: string;
  /** The lock file. */
  path: string;
  /** What the holder is doing ("install", "cache heal", ...). */
  purpose: string;
}

export type LockMode = "flock" | "lease";

export interface LockOptions {
  /** Give up after this long (default 30 min). */
  timeoutMs?: number;
  /** Fail at once (exit 3) if held. */
  noWait?: boolean;
  mode?: "auto" | "flock" | "lease";
  /** Lease TTL: a remote holder whose heartbeat is older than this is stale (default 60 s, MLAGENT_LOCK_TTL). */
  ttlMs?: number;
  /** How often the holder refreshes its heartbeat (default 10 s, MLAGENT_LOCK_HEARTBEAT). */
  heartbeatMs?: number;
  /** How often a lease-mode waiter looks again (default 100 ms, MLAGENT_LOCK_POLL_MS). */
  pollMs?: number;
  /** How often a waiter says who holds the lock (default 5 s, MLAGENT_LOCK_NOTICE). */
  noticeMs?: number;
  /** Stops waiting (the caller was interrupted); acquire then throws. */
  signal?: AbortSignal;
  /** The command that will run under the lock (recorded; its liveness keeps the lock held). */
  command?: string[];
  /** Release on SIGINT/SIGTERM and exit (default true). `lock run` handles signals itself. */
  handleSignals?: boolean;
}

export interface LockHandle {
  spec: LockSpec;
  fencing: number;
  /** Aborted if the lock is lost (lease broken by someone else). */
  lost: AbortSignal;
  release(): Promise<void>;
  mode?: LockMode;
  /** Identifies this acquisition; children of `lock run` carry it as MLAGENT_LOCK_TOKEN. */
  token?: string;
  /** Records the pid of the command running under the lock, so others can see who really holds it. */
  recordCommand?(pid: number): Promise<void>;
  /**
   * Aborted on SIGINT/SIGTERM just before the lock is released and the process exits (handleSignals).
   * Pass it as `signal` to env.run so the holder's children die before the lock is let go.
   */
  interrupted?: AbortSignal;
}

/** The owner record: what makes a lock judgeable from another process or host. */
export interface OwnerRecord {
  mlagent_lock: 1;
  mode: LockMode;
  name: string;
  token: string;
  host: string;
  pid: number;
  pid_start_time: number | null;
  boot_id: string | null;
  user: string;
  uid: number;
  purpose: string;
  scheduler: string | null;
  job_id: string | null;
  acquired_at: string;
  heartbeat_at: string;
  ttl_ms: number;
  fencing: number;
  command: string[] | null;
  command_pid: number | null;
  command_start_time: number | null;
}

export type LockStatus = "free" | "held" | "held-remote" | "stale-dead" | "stale-expired" | "stale-no-owner";

export interface LockVerdict {
  status: LockStatus;
  /** Why, in words ("owner pid 4411 is gone"). */
  reason: string;
  owner: OwnerRecord | null;
}

export interface LockInfo extends LockVerdict {
  name: string;
  path: string;
  mode: LockMode;
}

const FLOCK_MAGIC = "mlagent-flock";
const FLOCK_HEADER_BYTES = 48;
const TOKEN_VAR = "MLAGENT_LOCK_TOKEN";
const DEFAULT_TTL_MS = 60_000;
const DEFAULT_HEARTBEAT_MS = 10_000;
const DEFAULT_POLL_MS = 100;
const DEFAULT_NOTICE_MS = 5_000;
/** setTimeout's largest delay; longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

// ---------------------------------------------------------------------------------------------------------
// Specs and names

export function venvLockSpec(venvDir: string, purpose: string): LockSpec {
  const name = venvDir.slice(venvDir.lastIndexOf("/") + 1);
  return { name: `venv:${name}`, path: `${venvDir}.lock`, purpose };
}

/**
 * A cache dir's lock is keyed by its canonical path, so two spellings of one cache meet on one lock and
 * unrelated caches never wait for each other. It sits beside the cache (so users sharing a cache share the
 * lock; not inside it, since a heal may remove the whole dir), except where the parent is writable by
 * everyone (the default cache under /tmp): there others could plant files, so it goes in our private dir.
 */
export function cacheLockSpec(env: Env, cacheDir: string, purpose: string): LockSpec {
  let canonical = cacheDir.replace(/\/+$/, "") || "/";
  try {
    canonical = env.fs.realPathSync(canonical);
  } catch { /* not created yet: the path as given */ }
  const name = `cache:${canonical}`;
  let parentShared = true;
  try {
    parentShared = ((env.fs.statSync(dirOf(canonical)).mode ?? 0o777) & 0o002) !== 0;
  } catch { /* parent missing: treat as shared, the private dir is always safe */ }
  if (!parentShared) return { name, path: `${canonical}.lock`, purpose };
  const key = canonical.replace(/[^A-Za-z0-9._-]/g, "_").slice(-180);
  return { name, path: `${localLockDir(env)}/cache-${key}.lock`, purpose };
}

export function downloadLockSpec(targetDir: string, purpose: string): LockSpec {
  return { name: `download:${targetDir}`, path: `${targetDir}/.cache/huggingface/.mlagent.lock`, purpose };
}

export function namedLockSpec(env: Env, name: string, purpose: string): LockSpec {
  validateLockName(name);
  return { name, path: `${localLockDir(env)}/${name}.lock`, purpose };
}

/** A user-given lock name must be one safe path component. Throws bad input (exit 2). */
export function validateLockName(name: string): void {
  const why = name === ""
    ? "is empty"
    : name.includes("/")
    ? "contains '/'"
    : name.includes("..")
    ? "contains '..'"
    // deno-lint-ignore no-control-regex
    : /[\x00-\x1f\x7f]/.test(name)
    ? "contains control characters"
    : name === "."
    ? "is '.'"
    : name.length > 200
    ? "is longer than 200 characters"
    : null;
  if (why) {
    throw badInput(
      `bad lock name ${JSON.stringify(name)}: ${why}`,
      "use letters, digits, '.', '_', '-' or ':' (e.g. train-data or venv:my-model)",
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Settings

interface Settings {
  ttlMs: number;
  heartbeatMs: number;
  pollMs: number;
  noticeMs: number;
}

function secondsVar(env: Env, name: string): number | undefined {
  const v = env.vars[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw badInput(`${name} must be a number of seconds > 0, got "${v}"`);
  return n * 1000;
}

function settings(env: Env, opts: LockOptions): Settings {
  const pollVar = env.vars.MLAGENT_LOCK_POLL_MS;
  const poll = pollVar ? Number(pollVar) : undefined;
  if (poll !== undefined && (!Number.isFinite(poll) || poll <= 0)) {
    throw badInput(`MLAGENT_LOCK_POLL_MS must be a number > 0, got "${pollVar}"`);
  }
  return {
    ttlMs: opts.ttlMs ?? secondsVar(env, "MLAGENT_LOCK_TTL") ?? DEFAULT_TTL_MS,
    heartbeatMs: opts.heartbeatMs ?? secondsVar(env, "MLAGENT_LOCK_HEARTBEAT") ?? DEFAULT_HEARTBEAT_MS,
    pollMs: opts.pollMs ?? poll ?? DEFAULT_POLL_MS,
    noticeMs: opts.noticeMs ?? secondsVar(env, "MLAGENT_LOCK_NOTICE") ?? DEFAULT_NOTICE_MS,
  };
}

/** flock where the kernel can be trusted with it, a lease where the lock file sits on a network filesystem. */
export function lockModeFor(env: Env, path: string, requested?: LockOptions["mode"]): LockMode {
  const want = requested ?? env.vars.MLAGENT_LOCK_MODE ?? "auto";
  if (want === "flock" || want === "lease") return want;
  if (want !== "auto") throw badInput(`MLAGENT_LOCK_MODE must be auto, flock or lease, got "${want}"`);
  return mountForPath(env, path)?.network ? "lease" : "flock";
}

// ---------------------------------------------------------------------------------------------------------
// Paths and directories

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/**
 * Creates the lock's directory. The node-local lock dir is private (0700, ours); any lock dir writable by
 * everyone without the sticky bit is refused, since anyone could swap our lock files there.
 */
async function ensureLockDir(env: Env, dir: string): Promise<void> {
  const isPrivate = dir === localLockDir(env);
  await env.fs.mkdir(dir, { recursive: true, mode: isPrivate ? 0o700 : 0o755 });
  const st = await env.fs.lstat(dir);
  if (st.isSymlink && isPrivate) {
    throw badInput(`lock directory is a symlink: ${dir}`, "remove it; mlagent creates it (mode 0700)");
  }
  const real = st.isSymlink ? await env.fs.stat(dir) : st;
  if (!real.isDirectory) throw badInput(`lock directory is not a directory: ${dir}`);
  const mode = real.mode ?? 0o700;
  const sticky = (mode & 0o1000) !== 0;
  if (isPrivate) {
    if (real.uid !== null && real.uid !== env.uid) {
      throw badInput(
        `lock directory ${dir} is owned by uid ${real.uid}, not by you (uid ${env.uid})`,
        "set MLAGENT_LOCK_DIR to a directory of your own, or remove this one",
      );
    }
    if ((mode & 0o022) !== 0 && !sticky) {
      throw badInput(
        `lock directory ${dir} is writable by others (mode ${(mode & 0o7777).toString(8)})`,
        `chmod 700 ${dir}`,
      );
    }
    if ((mode & 0o077) !== 0) await env.fs.chmod(dir, 0o700);
  } else if ((mode & 0o002) !== 0 && !sticky) {
    throw badInput(
      `lock directory ${dir} is writable by everyone without the sticky bit (mode ${
        (mode & 0o7777).toString(8)
      })`,
      `chmod o-w ${dir} (or chmod +t ${dir})`,
    );
  }
}

/** Refuses a lock path that is a symlink or a directory (exit 2 naming it). Returns its inode, if present. */
async function checkLockPath(env: Env, path: string): Promise<{ dev: number; ino: number } | null> {
  let st: Deno.FileInfo;
  try {
    st = await env.fs.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  if (st.isSymlink) {
    throw badInput(
      `lock path is a symlink: ${path}`,
      "remove it; lock files are never followed through links",
    );
  }
  if (st.isDirectory) throw badInput(`lock path is a directory: ${path}`, "remove or rename it");
  return { dev: st.dev, ino: st.ino ?? 0 };
}

// ---------------------------------------------------------------------------------------------------------
// Owner records and judging

function userName(env: Env): string {
  if (env.vars.USER || env.vars.LOGNAME) return env.vars.USER || env.vars.LOGNAME;
  try {
    // Batch jobs often run without USER; the passwd entry still names the uid.
    const line = env.fs.readTextFileSync("/etc/passwd").split("\n").find((l) =>
      l.split(":")[2] === String(env.uid)
    );
    if (line) return line.split(":")[0];
  } catch { /* no passwd file */ }
  return `uid ${env.uid}`;
}

function newToken(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

function makeRecord(
  env: Env,
  spec: LockSpec,
  mode: LockMode,
  token: string,
  fencing: number,
  s: Settings,
  command: string[] | undefined,
): OwnerRecord {
  const now = isoTime(env.now());
  const job = schedulerJob(env);
  return {
    mlagent_lock: 1,
    mode,
    name: spec.name,
    token,
    host: env.hostname(),
    pid: env.pid,
    pid_start_time: readProc(env, env.pid)?.startTime ?? null,
    boot_id: bootId(env),
    user: userName(env),
    uid: env.uid,
    purpose: spec.purpose,
    scheduler: job?.scheduler ?? null,
    job_id: job?.job_id ?? null,
    acquired_at: now,
    heartbeat_at: now,
    ttl_ms: s.ttlMs,
    fencing,
    command: command ?? null,
    command_pid: null,
    command_start_time: null,
  };
}

/** Parses an owner record; anything malformed (garbage, half a file, wrong types) is null, never a throw. */
export function parseOwnerRecord(text: string): OwnerRecord | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v !== "object") return null;
  const r = v as Record<string, unknown>;
  const int = (x: unknown) => typeof x === "number" && Number.isInteger(x) && x > 0;
  if (
    r.mlagent_lock !== 1 || typeof r.token !== "string" || typeof r.host !== "string" || !r.host ||
    !int(r.pid) || typeof r.acquired_at !== "string" || Number.isNaN(Date.parse(r.acquired_at)) ||
    typeof r.heartbeat_at !== "string" || Number.isNaN(Date.parse(r.heartbeat_at))
  ) {
    return null;
  }
  const numOrNull = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : null);
  return {
    mlagent_lock: 1,
    mode: r.mode === "flock" ? "flock" : "lease",
    name: typeof r.name === "string" ? r.name : "",
    token: r.token,
    host: r.host,
    pid: r.pid as number,
    pid_start_time: numOrNull(r.pid_start_time),
    boot_id: typeof r.boot_id === "string" ? r.boot_id : null,
    user: typeof r.user === "string" ? r.user : "",
    uid: typeof r.uid === "number" ? r.uid : -1,
    purpose: typeof r.purpose === "string" ? r.purpose : "",
    scheduler: typeof r.scheduler === "string" ? r.scheduler : null,
    job_id: typeof r.job_id === "string" ? r.job_id : null,
    acquired_at: r.acquired_at,
    heartbeat_at: r.heartbeat_at,
    ttl_ms: int(r.ttl_ms) ? r.ttl_ms as number : DEFAULT_TTL_MS,
    fencing: int(r.fencing) ? r.fencing as number : 0,
    command: Array.isArray(r.command) && r.command.every((c) => typeof c === "string")
      ? r.command as string[]
      : null,
    command_pid: int(r.command_pid) ? r.command_pid as number : null,
    command_start_time: numOrNull(r.command_start_time),
  };
}

/** A live process on this host carrying the token: a command (or its child) still running under the lock. */
function findTokenHolder(env: Env, token: string): number | null {
  const needle = `${TOKEN_VAR}=${token}\0`;
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = env.fs.readDirSync(env.procRoot);
  } catch {
    return null;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    if (pid === env.pid) continue;
    let environ: string;
    try {
      environ = env.fs.readTextFileSync(`${env.procRoot}/${pid}/environ`);
    } catch {
      continue;
    }
    if ((environ + "\0").includes(needle) && isAlive(env, pid)) return pid;
  }
  return null;
}

/**
 * Judges an owner record. Same host: held while the owner process (same start time, same boot) or the
 * command it ran lives. Other host: held while the heartbeat is younger than the TTL. Pure apart from /proc.
 */
export function judgeRecord(
  env: Env,
  rec: OwnerRecord | null,
  ttlMs?: number,
  { kernelLockFree = false }: { kernelLockFree?: boolean } = {},
): LockVerdict {
  if (!rec) return { status: "stale-no-owner", reason: "no readable owner record", owner: null };
  const now = env.now();
  const myBoot = bootId(env);
  // Same name, other boot: this host rebooted, or another machine carries the same name (containers).
  // Only the heartbeat can tell those apart, so such a record is judged like a remote one.
  const otherBoot = !!rec.boot_id && !!myBoot && rec.boot_id !== myBoot;
  if (rec.host !== env.hostname() || otherBoot) {
    const ttl = Math.max(rec.ttl_ms, ttlMs ?? 0) || DEFAULT_TTL_MS;
    const age = now - Date.parse(rec.heartbeat_at);
    const from = otherBoot && rec.host === env.hostname() ? `${rec.host} (another boot)` : rec.host;
    if (age > ttl) {
      return {
        status: "stale-expired",
        reason: `heartbeat from ${from} is ${formatDuration(age)} old (ttl ${formatDuration(ttl)})`,
        owner: rec,
      };
    }
    return {
      status: "held-remote",
      reason: `heartbeat from ${from} ${formatDuration(age)} ago`,
      owner: rec,
    };
  }
  const ownerAlive = isAlive(env, rec.pid, rec.pid_start_time);
  // A live flock owner holds the kernel lock; if the kernel says it is free, the owner let go.
  if (ownerAlive && !(kernelLockFree && rec.mode === "flock")) {
    return { status: "held", reason: `owner pid ${rec.pid} is alive`, owner: rec };
  }
  if (rec.command) {
    if (rec.command_pid && isAlive(env, rec.command_pid, rec.command_start_time)) {
      return {
        status: "held",
        reason: `owner pid ${rec.pid} is gone but its command pid ${rec.command_pid} still runs`,
        owner: rec,
      };
    }
    const carrier = findTokenHolder(env, rec.token);
    if (carrier !== null) {
      return {
        status: "held",
        reason: `owner pid ${rec.pid} is gone but pid ${carrier} from its command still runs`,
        owner: { ...rec, command_pid: rec.command_pid ?? carrier },
      };
    }
  }
  const proc = readProc(env, rec.pid);
  const why = ownerAlive
    ? `owner pid ${rec.pid} no longer holds the kernel lock`
    : proc && proc.state !== "Z" && proc.state !== "X"
    ? `pid ${rec.pid} now belongs to another process (start time ${proc.startTime}, recorded ${rec.pid_start_time})`
    : `owner pid ${rec.pid} is gone`;
  return { status: "stale-dead", reason: why, owner: rec };
}

/** "gpu-17 pid 4411 for 6m12s (install, job 123)" */
export function describeOwner(env: Env, rec: OwnerRecord | null): string {
  if (!rec) return "an owner without a readable record (just acquiring, or it crashed)";
  const who = isAlive(env, rec.pid, rec.pid_start_time) || rec.host !== env.hostname() || !rec.command_pid
    ? `${rec.host} pid ${rec.pid}`
    : `${rec.host} pid ${rec.command_pid} (command of exited mlagent pid ${rec.pid})`;
  const extra = [rec.purpose, rec.job_id ? `job ${rec.job_id}` : ""].filter(Boolean).join(", ");
  return `${who} for ${formatDuration(env.now() - Date.parse(rec.acquired_at))}${extra ? ` (${extra})` : ""}`;
}

/** Creates `path` with `text`; fails if it exists. */
async function writeNew(env: Env, path: string, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  const file = await env.fs.open(path, { write: true, createNew: true, mode: 0o644 });
  try {
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
  } finally {
    file.close();
  }
}

/**
 * Replaces a small record atomically (temp name, then rename) so readers see the old or the new one, never
 * half. Deliberately no fsync: it cost milliseconds per hand-off, and after a crash the records are judged
 * stale by boot id and pid anyway.
 */
async function writeRecord(env: Env, path: string, value: unknown): Promise<void> {
  const tmp = `${dirOf(path)}/.${path.slice(dirOf(path).length + 1)}.tmp-${env.pid}-${
    newToken().slice(0, 8)
  }`;
  await writeNew(env, tmp, JSON.stringify(value, null, 2) + "\n");
  try {
    await env.fs.rename(tmp, path);
  } catch (e) {
    await env.fs.remove(tmp).catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Reading what is on disk

async function readText(env: Env, path: string): Promise<string | null> {
  try {
    return await env.fs.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    if (e instanceof Deno.errors.IsADirectory) throw badInput(`lock path is a directory: ${path}`);
    return "";
  }
}

interface Heartbeat {
  token: string;
  heartbeat_at: string;
  command_pid: number | null;
  command_start_time: number | null;
}

/** Merges a lease claim with its heartbeat file, when the heartbeat belongs to the same holder. */
async function withHeartbeat(env: Env, path: string, rec: OwnerRecord): Promise<OwnerRecord> {
  const text = await readText(env, `${path}.heartbeat`).catch(() => null);
  if (!text) return rec;
  try {
    const hb = JSON.parse(text) as Heartbeat;
    if (hb.token !== rec.token) return rec;
    // The file's mtime counts too: the watchdog of an orphaned command touches it (see LeaseLock).
    const mtime = (await env.fs.stat(`${path}.heartbeat`).catch(() => null))?.mtime?.getTime() ?? NaN;
    const parsed = Date.parse(hb.heartbeat_at);
    const beat = Number.isNaN(mtime) ? parsed : Number.isNaN(parsed) ? mtime : Math.max(parsed, mtime);
    return {
      ...rec,
      heartbeat_at: !Number.isNaN(beat) && beat > Date.parse(rec.heartbeat_at)
        ? isoTime(beat)
        : rec.heartbeat_at,
      command_pid: typeof hb.command_pid === "number" ? hb.command_pid : rec.command_pid,
      command_start_time: typeof hb.command_start_time === "number"
        ? hb.command_start_time
        : rec.command_start_time,
    };
  } catch {
    return rec;
  }
}

function parseFencingHeader(text: string | null): number {
  const m = text?.match(/^mlagent-flock fencing=(\d+)/);
  return m ? Number(m[1]) : 0;
}

/** What a lock file holds: a flock header (record in the sidecar) or a lease claim. */
async function readLockState(
  env: Env,
  path: string,
): Promise<
  { kind: "missing" } | { kind: "flock"; owner: OwnerRecord | null; ownerText: string | null } | {
    kind: "lease";
    owner: OwnerRecord | null;
    text: string;
  }
> {
  const text = await readText(env, path);
  if (text === null) return { kind: "missing" };
  if (text.startsWith(FLOCK_MAGIC) || text === "") {
    const ownerText = await readText(env, `${path}.owner`);
    return { kind: "flock", owner: ownerText ? parseOwnerRecord(ownerText) : null, ownerText };
  }
  const rec = parseOwnerRecord(text);
  return { kind: "lease", owner: rec ? await withHeartbeat(env, path, rec) : null, text };
}

// ---------------------------------------------------------------------------------------------------------
// Held locks in this process, and signals

const heldPaths = new Set<string>();
let signalHolders = 0;

function abortError(spec: LockSpec): MlagentError {
  return failed(`Stopped waiting for lock "${spec.name}": interrupted`);
}

function busyError(env: Env, spec: LockSpec, owner: OwnerRecord | null, extra = ""): MlagentError {
  return new MlagentError(
    "lock-busy",
    `Cannot acquire lock "${spec.name}": held by ${describeOwner(env, owner)}${extra}`,
    "wait for it (drop --no-wait, or raise --timeout); see every lock and its owner: mlagent lock list",
    { lock: spec.name, path: spec.path, owner },
  );
}

function timeoutError(env: Env, spec: LockSpec, waitedMs: number, owner: OwnerRecord | null): MlagentError {
  return new MlagentError(
    "lock-timeout",
    `Timed out after ${formatDuration(waitedMs)} waiting for lock "${spec.name}": held by ${
      describeOwner(env, owner)
    }`,
    "raise --timeout, or check whether the holder is stuck: mlagent lock list",
    { lock: spec.name, path: spec.path, owner },
  );
}

/** Waits up to `ms`, or until `signal` aborts; cancels its timer either way so nothing is left running. */
function pause(env: Env, ms: number, ...signals: (AbortSignal | undefined)[]): Promise<void> {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort();
  for (const s of signals) s?.addEventListener("abort", onAbort, { once: true });
  return env.sleep(Math.max(0, Math.min(ms, MAX_TIMER_MS)), ctl.signal).finally(() => {
    for (const s of signals) s?.removeEventListener("abort", onAbort);
  });
}

class Waiter {
  readonly started: number;
  private lastNotice = -Infinity;
  constructor(private env: Env, private spec: LockSpec, private s: Settings, private opts: LockOptions) {
    this.started = env.now();
  }
  get deadline(): number {
    return this.started + (this.opts.timeoutMs ?? 30 * 60_000);
  }
  /** Says who holds the lock every few seconds; throws on the deadline or an abort. */
  tick(owner: OwnerRecord | null): void {
    if (this.opts.signal?.aborted) throw abortError(this.spec);
    const now = this.env.now();
    if (now >= this.deadline) throw timeoutError(this.env, this.spec, now - this.started, owner);
    if (now - this.lastNotice >= this.s.noticeMs) {
      this.lastNotice = now;
      this.env.log.info(`waiting for lock "${this.spec.name}": held by ${describeOwner(this.env, owner)}`);
    }
  }
  untilNextTick(): number {
    return Math.max(1, Math.min(this.s.noticeMs, this.deadline - this.env.now()));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Acquire

export async function acquire(env: Env, spec: LockSpec, opts: LockOptions = {}): Promise<LockHandle> {
  try {
    return await acquireOnce(env, spec, opts);
  } catch (e) {
    if (
      e instanceof Deno.errors.PermissionDenied || (e instanceof Error && /os error 30\b/.test(e.message))
    ) {
      throw failed(
        `Cannot acquire lock "${spec.name}": ${e.message} (${spec.path})`,
        "check the owner and mode of the lock's directory, or point MLAGENT_LOCK_DIR / --root elsewhere",
      );
    }
    throw e;
  }
}

async function acquireOnce(env: Env, spec: LockSpec, opts: LockOptions): Promise<LockHandle> {
  const s = settings(env, opts);
  await ensureLockDir(env, dirOf(spec.path));
  await checkLockPath(env, spec.path);
  if (heldPaths.has(spec.path)) {
    throw failed(
      `lock "${spec.name}" is already held by this process`,
      "this is a bug in mlagent: a lock was taken twice",
    );
  }
  const mode = lockModeFor(env, spec.path, opts.mode);
  const waiter = new Waiter(env, spec, s, opts);
  let handle: HeldLock;
  if (mode === "flock") {
    const got = await acquireFlock(env, spec, s, opts, waiter);
    handle = got ?? await acquireLease(env, spec, s, opts, waiter);
  } else {
    handle = await acquireLease(env, spec, s, opts, waiter);
  }
  if (opts.handleSignals ?? true) handle.watchSignals();
  return handle;
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

abstract class HeldLock implements LockHandle {
  readonly lost: AbortSignal;
  protected lostCtl = new AbortController();
  private interruptCtl = new AbortController();
  readonly interrupted: AbortSignal = this.interruptCtl.signal;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private released = false;
  private unwatch: (() => void)[] = [];
  protected commandPid: number | null = null;
  protected commandStart: number | null = null;

  constructor(
    protected env: Env,
    readonly spec: LockSpec,
    readonly mode: LockMode,
    readonly token: string,
    readonly fencing: number,
    protected record: OwnerRecord,
    protected s: Settings,
  ) {
    this.lost = this.lostCtl.signal;
    heldPaths.add(spec.path);
    this.schedule();
  }

  private schedule() {
    this.timer = setTimeout(async () => {
      if (this.released) return;
      try {
        await this.beat();
      } catch (e) {
        this.env.log.warn(
          `lock "${this.spec.name}": heartbeat failed: ${e instanceof Error ? e.message : e}`,
        );
      }
      if (!this.released && !this.lost.aborted) this.schedule();
    }, this.s.heartbeatMs);
  }

  protected abstract beat(): Promise<void>;
  protected abstract drop(): Promise<void>;

  async recordCommand(pid: number): Promise<void> {
    this.commandPid = pid;
    this.commandStart = readProc(this.env, pid)?.startTime ?? null;
    await this.beat();
  }

  watchSignals() {
    signalHolders++;
    for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
      this.unwatch.push(this.env.onSignal(sig, async () => {
        // Children wired to `interrupted` are killed synchronously here, before the lock goes.
        this.interruptCtl.abort(new MlagentError("failed", `interrupted by ${sig}`));
        await this.release();
        if (signalHolders === 0) this.env.exit?.(code);
      }));
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.timer);
    if (this.unwatch.length) signalHolders--;
    for (const u of this.unwatch.splice(0)) u();
    heldPaths.delete(this.spec.path);
    await this.drop();
  }

  protected loseLock(message: string) {
    if (this.lost.aborted) return;
    this.env.log.error(message);
    this.lostCtl.abort(new MlagentError("lock-lost", message));
  }
}

// ---- flock mode

class FlockLock extends HeldLock {
  constructor(
    env: Env,
    spec: LockSpec,
    token: string,
    fencing: number,
    record: OwnerRecord,
    s: Settings,
    private file: Deno.FsFile,
  ) {
    super(env, spec, "flock", token, fencing, record, s);
  }

  protected async beat() {
    this.record = {
      ...this.record,
      heartbeat_at: isoTime(this.env.now()),
      command_pid: this.commandPid,
      command_start_time: this.commandStart,
    };
    await writeRecord(this.env, `${this.spec.path}.owner`, this.record);
  }

  protected async drop() {
    // The record goes first, while the kernel lock still keeps everyone else out.
    const text = await readText(this.env, `${this.spec.path}.owner`).catch(() => null);
    if (text && parseOwnerRecord(text)?.token === this.token) {
      await this.env.fs.remove(`${this.spec.path}.owner`).catch(() => {});
    }
    try {
      await this.file.unlock();
    } catch { /* closing releases it too */ }
    this.file.close();
  }
}

async function sameInode(env: Env, path: string, file: Deno.FsFile): Promise<boolean> {
  try {
    const [a, b] = await Promise.all([env.fs.lstat(path), file.stat()]);
    return !a.isSymlink && a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** Errors that say flock does not work on this filesystem (ENOLCK, ENOSYS, ENOTSUP/524, EBADF on NFS). */
function flockUnsupported(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /os error (37|38|95|524|9)\b/.test(msg) || e instanceof Deno.errors.NotSupported;
}

/** The kernel lock. Returns null when flock fails on this filesystem, so the caller falls back to a lease. */
async function acquireFlock(
  env: Env,
  spec: LockSpec,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<HeldLock | null> {
  for (;;) {
    await checkLockPath(env, spec.path);
    // Opened for writing without truncation: the holder's header stays intact until we hold the lock.
    const file = await openLockFile(env, spec.path);
    if (!(await sameInode(env, spec.path, file))) {
      file.close();
      await checkLockPath(env, spec.path);
      continue;
    }
    let locked: boolean;
    try {
      locked = await file.tryLock(true);
    } catch (e) {
      file.close();
      if (flockUnsupported(e)) {
        env.log.debug(`flock failed on ${spec.path} (${e instanceof Error ? e.message : e}); using a lease`);
        return null;
      }
      throw e;
    }
    if (!locked) {
      if (opts.noWait) {
        const st = await readLockState(env, spec.path);
        file.close();
        throw busyError(env, spec, st.kind === "missing" ? null : st.owner);
      }
      locked = await blockOnFlock(env, spec, file, opts, waiter);
    }
    // Whoever held it may have removed the file (lock clear) while we waited on the old inode.
    if (!(await sameInode(env, spec.path, file))) {
      file.close();
      continue;
    }
    // Kernel lock held. The previous owner may still be alive in one sense: a command it ran outlived it.
    let state = await readLockState(env, spec.path);
    let verdict = judgeState(env, state, s, true);
    while (verdict.status === "held" || verdict.status === "held-remote") {
      if (opts.noWait) {
        file.close();
        throw busyError(env, spec, verdict.owner);
      }
      try {
        waiter.tick(verdict.owner);
      } catch (e) {
        file.close();
        throw e;
      }
      await pause(env, Math.min(s.pollMs, waiter.untilNextTick()), opts.signal);
      state = await readLockState(env, spec.path);
      verdict = judgeState(env, state, s, true);
    }
    const header = await readText(env, spec.path);
    const fencing =
      Math.max(parseFencingHeader(header), await readFence(env, spec.path), verdict.owner?.fencing ?? 0) +
      1;
    const token = newToken();
    const record = makeRecord(env, spec, "flock", token, fencing, s, opts.command);
    try {
      // Another user's lock file (a shared venv) opens read-only: flock works, the counter goes beside it.
      if (!(await writeHeader(file, fencing, header))) await writeRecord(env, `${spec.path}.fence`, fencing);
      await writeRecord(env, `${spec.path}.owner`, record);
    } catch (e) {
      file.close();
      throw e;
    }
    if (verdict.status !== "free" && verdict.owner) {
      env.log.debug(`lock "${spec.name}": previous owner ${verdict.reason}`);
    }
    return new FlockLock(env, spec, token, fencing, record, s, file);
  }
}

function judgeState(
  env: Env,
  state: Awaited<ReturnType<typeof readLockState>>,
  s: Settings,
  kernelLockFree = false,
): LockVerdict {
  if (state.kind === "missing") return { status: "free", reason: "no lock file", owner: null };
  if (state.kind === "flock" && !state.owner) {
    return state.ownerText
      ? { status: "stale-no-owner", reason: "owner record is unreadable", owner: null }
      : { status: "free", reason: "no owner record", owner: null };
  }
  return judgeRecord(env, state.owner, s.ttlMs, { kernelLockFree: kernelLockFree && state.kind === "flock" });
}

/**
 * Opens (creating) the lock file for locking, never truncating it. A lock file another user created in a
 * shared directory may only be readable to us; flock(2) does not care, so read-only will do.
 */
async function openLockFile(env: Env, path: string): Promise<Deno.FsFile> {
  try {
    return await env.fs.open(path, { read: true, write: true, create: true, mode: 0o644 });
  } catch (e) {
    if (!(e instanceof Deno.errors.PermissionDenied)) throw e;
    return await env.fs.open(path, { read: true });
  }
}

/** Writes the fencing header in place; false when the file is open read-only. */
async function writeHeader(file: Deno.FsFile, fencing: number, previous: string | null): Promise<boolean> {
  const line = `${FLOCK_MAGIC} fencing=${fencing}`;
  const bytes = new TextEncoder().encode(line.padEnd(FLOCK_HEADER_BYTES - 1, " ") + "\n");
  // Shrinking is safe now: we hold the lock. Only a leftover lease claim is longer than the header.
  try {
    if (previous !== null && previous.length > FLOCK_HEADER_BYTES) await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.BadResource) return false;
    throw e;
  }
}

/**
 * Blocks in flock(2) on a pool thread, so the main thread stays free to print who holds the lock and to
 * honour the deadline. On giving up we close our handle: the pending flock then ends with the last reference
 * to the file and releases at once if it had just succeeded.
 */
async function blockOnFlock(
  env: Env,
  spec: LockSpec,
  file: Deno.FsFile,
  opts: LockOptions,
  waiter: Waiter,
): Promise<true> {
  let done = false;
  let failure: unknown = null;
  const wake = new AbortController();
  const pending = file.lock(true).then(
    () => {
      done = true;
      wake.abort();
    },
    (e) => {
      done = true;
      failure = e;
      wake.abort();
    },
  );
  try {
    while (!done) {
      const st = await readLockState(env, spec.path).catch(() => ({ kind: "missing" as const }));
      waiter.tick(st.kind === "missing" ? null : st.owner);
      await pause(env, waiter.untilNextTick(), wake.signal, opts.signal);
    }
  } catch (e) {
    file.close();
    pending.catch(() => {});
    throw e;
  }
  if (failure) {
    file.close();
    throw failure;
  }
  return true;
}

// ---- lease mode

class LeaseLock extends HeldLock {
  constructor(
    env: Env,
    spec: LockSpec,
    token: string,
    fencing: number,
    record: OwnerRecord,
    s: Settings,
  ) {
    super(env, spec, "lease", token, fencing, record, s);
  }

  private watchdog: SpawnedChild | null = null;

  /**
   * Other hosts see only the heartbeat. So that a command outliving a SIGKILLed mlagent keeps its lease,
   * a small watchdog in its own session touches the heartbeat file while the command (same pid, same start
   * time, not a zombie) lives, and ends with it.
   */
  override async recordCommand(pid: number): Promise<void> {
    await super.recordCommand(pid);
    const script = [
      "p=$1 st=$2 hb=$3 iv=$4 proc=$5",
      "while :; do",
      '  sleep "$iv" </dev/null >/dev/null 2>&1',
      '  s=$(cat "$proc/$p/stat" 2>/dev/null) || exit 0',
      "  set -- ${s##*') '}",
      '  [ "$1" = Z ] && exit 0',
      '  [ -z "$st" ] || [ "${20}" = "$st" ] || exit 0',
      '  touch -c "$hb" 2>/dev/null',
      "done",
    ].join("\n");
    void this.env.run(
      [
        "sh",
        "-c",
        script,
        "mlagent-lock-watchdog",
        String(pid),
        String(this.commandStart ?? ""),
        `${this.spec.path}.heartbeat`,
        String(this.s.heartbeatMs / 1000),
        this.env.procRoot,
      ],
      { timeoutMs: MAX_TIMER_MS, newProcessGroup: true, onSpawn: (c) => (this.watchdog = c) },
    ).catch(() => {});
  }

  protected async beat() {
    const claim = await readText(this.env, this.spec.path);
    const current = claim ? parseOwnerRecord(claim) : null;
    if (!current || current.token !== this.token) {
      this.loseLock(
        `lock "${this.spec.name}" was lost: ${
          current
            ? `broken and now held by ${current.host} pid ${current.pid} (fencing ${current.fencing}, ours ${this.fencing})`
            : "its claim was removed"
        }; stopping`,
      );
      return;
    }
    const hb: Heartbeat = {
      token: this.token,
      heartbeat_at: isoTime(this.env.now()),
      command_pid: this.commandPid,
      command_start_time: this.commandStart,
    };
    await writeRecord(this.env, `${this.spec.path}.heartbeat`, hb);
  }

  protected async drop() {
    this.watchdog?.kill("SIGKILL");
    await removeClaimIf(this.env, this.spec.path, (text) => parseOwnerRecord(text)?.token === this.token);
    const hb = await readText(this.env, `${this.spec.path}.heartbeat`).catch(() => null);
    if (hb?.includes(this.token)) await this.env.fs.remove(`${this.spec.path}.heartbeat`).catch(() => {});
  }
}

function sideName(env: Env, path: string, what: string): string {
  return `${path}.${what}-${env.hostname().replace(/[^A-Za-z0-9.-]/g, "_")}-${env.pid}-${
    newToken().slice(0, 8)
  }`;
}

/**
 * Removes the claim at `path` only if it is the one `expected` accepts: renames it aside (only one process
 * can), looks at what it moved, and puts back anything else. Returns whether it removed the expected claim.
 */
async function removeClaimIf(env: Env, path: string, expected: (text: string) => boolean): Promise<boolean> {
  const aside = sideName(env, path, "broken");
  try {
    await env.fs.rename(path, aside);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  const text = (await readText(env, aside)) ?? "";
  if (expected(text)) {
    await env.fs.remove(aside).catch(() => {});
    return true;
  }
  // Someone else's fresh claim: put it back. If yet another claim appeared meanwhile, the one we moved
  // loses, and its holder finds out at its next heartbeat.
  await env.fs.link(aside, path).catch(() => {});
  await env.fs.remove(aside).catch(() => {});
  return false;
}

/**
 * Breaks a stale claim. Breakers take a short-lived guard claim first, so two processes that judged the same
 * claim stale cannot both break it (the second finds the first one's fresh claim and backs off).
 * Returns whether the stale claim was removed; false means look again.
 */
async function breakClaim(
  env: Env,
  path: string,
  s: Settings,
  expected: (text: string) => boolean,
): Promise<boolean> {
  const guard = `${path}.break`;
  const guardRecord = makeRecord(
    env,
    { name: "break", path: guard, purpose: "break" },
    "lease",
    newToken(),
    0,
    s,
    undefined,
  );
  if (!(await tryClaim(env, guard, guardRecord))) {
    const text = await readText(env, guard);
    if (text === null) return false;
    const verdict = judgeRecord(env, parseOwnerRecord(text), s.ttlMs);
    // A breaker that died mid-break leaves its guard behind; judge it like any claim.
    if (verdict.status.startsWith("stale")) await removeClaimIf(env, guard, (t) => t === text);
    else await pause(env, 5 + Math.floor(env.random() * 10));
    return false;
  }
  try {
    const current = await readText(env, path);
    if (current === null || !expected(current)) return false;
    return await removeClaimIf(env, path, expected);
  } finally {
    await env.fs.remove(guard).catch(() => {});
  }
}

/** Atomic claim: a complete record hard-linked into place; link(2) fails if the claim exists. */
async function tryClaim(env: Env, path: string, record: OwnerRecord): Promise<boolean> {
  const tmp = sideName(env, path, "claim");
  await writeNew(env, tmp, JSON.stringify(record, null, 2) + "\n");
  try {
    await env.fs.link(tmp, path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    // NFS may report failure for a link that happened (a lost reply): the link count tells.
    const st = await env.fs.stat(tmp).catch(() => null);
    if (st?.nlink === 2) return true;
    throw e;
  } finally {
    await env.fs.remove(tmp).catch(() => {});
  }
}

async function readFence(env: Env, path: string): Promise<number> {
  const text = await readText(env, `${path}.fence`).catch(() => null);
  const n = Number(text?.trim());
  return Number.isInteger(n) && n > 0 ? n : 0;
}

async function acquireLease(
  env: Env,
  spec: LockSpec,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<HeldLock> {
  const token = newToken();
  let brokenFencing = 0;
  for (;;) {
    await checkLockPath(env, spec.path);
    const fencing = Math.max(await readFence(env, spec.path), brokenFencing) + 1;
    const record = makeRecord(env, spec, "lease", token, fencing, s, opts.command);
    if (await tryClaim(env, spec.path, record)) {
      await writeRecord(env, `${spec.path}.fence`, fencing).catch(() => {});
      return new LeaseLock(env, spec, token, fencing, record, s);
    }
    const state = await readLockState(env, spec.path);
    if (state.kind === "missing") continue;
    const verdict = judgeState(env, state, s);
    if (verdict.status === "free" || verdict.status.startsWith("stale")) {
      const seen = state.kind === "lease" ? state.text : null;
      const removed = await breakClaim(
        env,
        spec.path,
        s,
        (text) => seen !== null ? text === seen : text.startsWith(FLOCK_MAGIC) || text === "",
      );
      if (removed) {
        brokenFencing = Math.max(brokenFencing, verdict.owner?.fencing ?? 0);
        if (verdict.status !== "free") {
          env.log.warn(
            `broke stale lock "${spec.name}" (${verdict.status}: ${verdict.reason})${
              verdict.owner ? `, left by ${verdict.owner.host} pid ${verdict.owner.pid}` : ""
            }`,
          );
        }
      }
      continue;
    }
    if (opts.noWait) throw busyError(env, spec, verdict.owner);
    waiter.tick(verdict.owner);
    const jitter = Math.floor(env.random() * s.pollMs * 0.25);
    await pause(env, Math.min(s.pollMs + jitter, waiter.untilNextTick()), opts.signal);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Inspecting and clearing (lock list / check / clear)

/** Probes the kernel lock without waiting: true when someone holds it. */
async function flockHeld(env: Env, path: string): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await env.fs.open(path, { read: true });
  } catch {
    return false;
  }
  try {
    const got = await file.tryLock(true);
    if (got) await file.unlock();
    return !got;
  } catch {
    return false;
  } finally {
    file.close();
  }
}

/** The state of one lock file, judged as an acquirer would. */
export async function inspectLock(env: Env, spec: LockSpec, opts: LockOptions = {}): Promise<LockInfo> {
  const s = settings(env, opts);
  await checkLockPath(env, spec.path);
  const state = await readLockState(env, spec.path);
  const mode: LockMode = state.kind === "lease" ? "lease" : state.kind === "flock" ? "flock" : lockModeFor(
    env,
    spec.path,
    opts.mode,
  );
  let verdict: LockVerdict;
  if (state.kind === "flock") {
    // The kernel has the last word on flock locks; the record says who and whether a command outlived it.
    const kernelHeld = await flockHeld(env, spec.path);
    verdict = judgeState(env, state, s, !kernelHeld);
    if (kernelHeld && verdict.status !== "held" && verdict.status !== "held-remote") {
      verdict = {
        status: "held",
        reason: "the kernel lock is held (owner record not written yet)",
        owner: null,
      };
    }
  } else {
    verdict = judgeState(env, state, s);
  }
  // Named by where it lies, not by what the record claims: the name then works with `lock check`.
  return { name: spec.name, path: spec.path, mode, ...verdict };
}

/** Every lock file mlagent knows: the node-local lock dir and `*.lock` beside venvs under the venv root. */
export async function listLocks(env: Env, dirs: { dir: string; prefix: string }[]): Promise<LockInfo[]> {
  const out: LockInfo[] = [];
  for (const { dir, prefix } of dirs) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...env.fs.readDirSync(dir)];
    } catch {
      continue;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      if (!e.name.endsWith(".lock") || e.name.startsWith(".")) continue;
      const path = `${dir}/${e.name}`;
      if (e.isSymlink || e.isDirectory) {
        out.push({
          name: prefix + e.name.slice(0, -5),
          path,
          mode: "flock",
          status: "stale-no-owner",
          reason: `lock path is a ${e.isSymlink ? "symlink" : "directory"}; refused`,
          owner: null,
        });
        continue;
      }
      const info = await inspectLock(env, { name: prefix + e.name.slice(0, -5), path, purpose: "" });
      if (info.status !== "free") out.push(info);
    }
  }
  return out;
}

/**
 * Removes one stale lock (or, with force, a live remote one), judging it again at the moment of removal.
 * Returns false when it turned out to be held after all.
 */
export async function clearLock(env: Env, info: LockInfo, { force = false } = {}): Promise<boolean> {
  const removable = (v: LockVerdict) => v.status.startsWith("stale") || (force && v.status === "held-remote");
  if (info.mode === "flock") {
    let file: Deno.FsFile;
    try {
      file = await env.fs.open(info.path, { read: true, write: true });
    } catch {
      return false;
    }
    try {
      if (!(await file.tryLock(true))) return false;
      const state = await readLockState(env, info.path);
      const verdict = judgeState(env, state, settings(env, {}), true);
      if (!removable(verdict) && verdict.status !== "free") return false;
      // The counter outlives the lock file, so fencing numbers keep growing after a clear.
      const last = Math.max(
        parseFencingHeader(await readText(env, info.path)),
        await readFence(env, info.path),
        verdict.owner?.fencing ?? 0,
      );
      if (last > 0) await writeRecord(env, `${info.path}.fence`, last);
      await env.fs.remove(`${info.path}.owner`).catch(() => {});
      // Unlinked while locked: waiters on the old inode notice and reopen.
      if (await sameInode(env, info.path, file)) await env.fs.remove(info.path).catch(() => {});
      return true;
    } finally {
      file.close();
    }
  }
  const state = await readLockState(env, info.path);
  if (state.kind !== "lease") return state.kind === "missing";
  const verdict = judgeState(env, state, settings(env, {}));
  if (!removable(verdict)) return false;
  const removed = await breakClaim(env, info.path, settings(env, {}), (text) => text === state.text);
  if (removed && state.owner) {
    const hb = await readText(env, `${info.path}.heartbeat`).catch(() => null);
    if (hb?.includes(state.owner.token)) await env.fs.remove(`${info.path}.heartbeat`).catch(() => {});
  }
  return removed;
}

/** Temp files a lock operation holds for milliseconds: claims, moved-aside claims, record temp files. */
const LEFTOVER =
  /\.lock\.(claim|broken)-.+-\d+-[0-9a-f]{8}$|^\..+\.lock\.(owner|heartbeat|fence)\.tmp-\d+-[0-9a-f]{8}$/;

/**
 * Leftovers of lock operations killed mid-way (SIGKILL between creating a temp file and renaming or
 * removing it). Nothing legitimate keeps one for more than moments, so anything older than `minAgeMs` goes.
 */
export async function findLeftovers(env: Env, dirs: string[], minAgeMs = 10 * 60_000): Promise<string[]> {
  const out: string[] = [];
  for (const dir of dirs) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...env.fs.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.isFile || !LEFTOVER.test(e.name)) continue;
      const st = await env.fs.lstat(`${dir}/${e.name}`).catch(() => null);
      const age = env.now() - (st?.mtime?.getTime() ?? env.now());
      if (age >= minAgeMs) out.push(`${dir}/${e.name}`);
    }
  }
  return out.sort();
}
