/** Owner records: making, parsing and judging them (same host by /proc, other hosts by heartbeat). */
import { userName } from "../core/users.ts";
import type { Env } from "../core/env.ts";
import { formatDuration, isoTime } from "../core/output.ts";
import { bootId, isAlive, type ProcIdentity, readProc, schedulerJob } from "../core/proc.ts";
import {
  type ClaimMethod,
  DEFAULT_TTL_MS,
  type LockMode,
  type LockSpec,
  type LockVerdict,
  type OwnerRecord,
  type Settings,
  TOKEN_VAR,
} from "./types.ts";

export function newToken(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

export function makeRecord(
  env: Env,
  spec: LockSpec,
  mode: LockMode,
  token: string,
  fencing: number,
  s: Settings,
  command: string[] | undefined,
  extra: { shared?: boolean; claim?: ClaimMethod } = {},
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
    ...(extra.shared ? { shared: true } : {}),
    ...(extra.claim ? { claim: extra.claim } : {}),
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
    ...(r.shared === true ? { shared: true } : {}),
    ...(r.claim === "link" || r.claim === "exclusive" ? { claim: r.claim } : {}),
  };
}

/**
 * This host's processes as of one moment: which pids live, and which carry MLAGENT_LOCK_TOKEN (commands run
 * under a lock, and their children). Judging 20,000 records must not read /proc 20,000 times, nor every
 * process's environ once per record. Taken whole at first use, so a record whose owner was dead in the
 * snapshot had started any command of its before it: that command is in the snapshot if it still ran.
 * `freshPids()` gives a view that checks pids live (for removals) and keeps the carriers.
 */
export class ProcScan {
  private pids: Set<number> | null = null;
  private carriers: Map<string, number> | null = null;
  private stats = new Map<number, ProcIdentity | null>();
  constructor(private env: Env, private live = false) {}

  private take() {
    if (this.pids) return;
    this.pids = new Set();
    this.carriers = new Map();
    let entries: Iterable<Deno.DirEntry> = [];
    try {
      entries = this.env.fs.readDirSync(this.env.procRoot);
    } catch { /* no procfs: nothing carries a token */ }
    const key = `${TOKEN_VAR}=`;
    for (const e of entries) {
      if (!/^\d+$/.test(e.name)) continue;
      const pid = Number(e.name);
      this.pids.add(pid);
      if (pid === this.env.pid) continue;
      let environ: string;
      try {
        environ = this.env.fs.readTextFileSync(`${this.env.procRoot}/${pid}/environ`);
      } catch {
        continue;
      }
      const i = environ.startsWith(key) ? 0 : environ.indexOf(`\0${key}`) + 1;
      if (i === 0 && !environ.startsWith(key)) continue;
      const end = environ.indexOf("\0", i);
      const token = environ.slice(i + key.length, end < 0 ? undefined : end);
      if (token && !this.carriers.has(token) && this.alive(pid)) this.carriers.set(token, pid);
    }
  }

  /** /proc/PID/stat as of the snapshot (or now, for a fresh view). */
  proc(pid: number): ProcIdentity | null {
    if (this.live) return readProc(this.env, pid);
    this.take();
    if (!this.pids!.has(pid)) return null;
    if (!this.stats.has(pid)) this.stats.set(pid, readProc(this.env, pid));
    return this.stats.get(pid)!;
  }

  /** Like isAlive(): running, not a zombie, and (given a start time) the same process. */
  alive(pid: number, startTime?: number | null): boolean {
    const p = this.proc(pid);
    if (!p || p.state === "Z" || p.state === "X") return false;
    return startTime === undefined || startTime === null || p.startTime === startTime;
  }

  /** A live process carrying `token`, if any. */
  carrier(token: string): number | null {
    this.take();
    const pid = this.carriers!.get(token);
    return pid !== undefined && isAlive(this.env, pid) ? pid : null;
  }

  freshPids(): ProcScan {
    const view = new ProcScan(this.env, true);
    this.take();
    view.pids = this.pids;
    view.carriers = this.carriers;
    return view;
  }
}

const hosts = new WeakMap<Env, string>();
/** This host's name, asked once per Env (gethostname(2) is a system call, and listings ask per record). */
export function myHost(env: Env): string {
  let h = hosts.get(env);
  if (h === undefined) hosts.set(env, h = env.hostname());
  return h;
}

const boots = new WeakMap<Env, string | null>();
function myBootId(env: Env): string | null {
  if (!boots.has(env)) boots.set(env, bootId(env));
  return boots.get(env)!;
}

/**
 * Whether a record must be judged as another host's: another host name, or our name with another boot id
 * (this host rebooted, or a twin carries the same name, as containers do). Only observation can judge those.
 */
export function isRemoteRecord(env: Env, rec: OwnerRecord): boolean {
  const myBoot = myBootId(env);
  return rec.host !== myHost(env) || (!!rec.boot_id && !!myBoot && rec.boot_id !== myBoot);
}

export interface JudgeOptions {
  /** The kernel lock is free (flock): a live owner that no longer holds it has let go. */
  kernelLockFree?: boolean;
  /**
   * For a record from another host: how long this host has seen it (and its heartbeat) unchanged, in ms of
   * this host's clock (observe.ts). Missing means never seen before: 0.
   */
  quietMs?: number;
  /** One snapshot of this host's processes shared by many judgements (listing many records). */
  procs?: ProcScan;
}

/**
 * Judges an owner record. Same host: held while the owner process (same start time, same boot) or the
 * command it ran lives. Other host: held until this host has seen the record unchanged for longer than the
 * TTL (the times written inside it come from that host's clock and are never trusted). Pure apart from /proc.
 */
export function judgeRecord(
  env: Env,
  rec: OwnerRecord | null,
  ttlMs?: number,
  opts: JudgeOptions = {},
): LockVerdict {
  if (!rec) return { status: "stale-no-owner", reason: "no readable owner record", owner: null };
  const now = env.now();
  if (isRemoteRecord(env, rec)) {
    const ttl = Math.max(rec.ttl_ms, ttlMs ?? 0) || DEFAULT_TTL_MS;
    const quiet = Math.max(0, opts.quietMs ?? 0);
    const otherBoot = rec.host === myHost(env);
    const from = otherBoot ? `${rec.host} (another boot)` : rec.host;
    const ahead = Date.parse(rec.heartbeat_at) - now;
    const skew = ahead > 1000
      ? `; its heartbeat is stamped ${formatDuration(ahead)} ahead of this host's clock`
      : "";
    if (quiet > ttl) {
      return {
        status: "stale-expired",
        reason: `no change from ${from} seen here for ${formatDuration(quiet)} (ttl ${
          formatDuration(ttl)
        })${skew}`,
        owner: rec,
        quietMs: quiet,
      };
    }
    return {
      status: "held-remote",
      reason: `record from ${from} unchanged for ${formatDuration(quiet)} as seen here (stale after ${
        formatDuration(ttl)
      } unchanged)${skew}`,
      owner: rec,
      quietMs: quiet,
    };
  }
  const procs = opts.procs ?? new ProcScan(env, true);
  const ownerAlive = procs.alive(rec.pid, rec.pid_start_time);
  // A live flock owner holds the kernel lock; if the kernel says it is free, the owner let go.
  if (ownerAlive && !(opts.kernelLockFree && rec.mode === "flock")) {
    return { status: "held", reason: `owner pid ${rec.pid} is alive`, owner: rec };
  }
  if (rec.command) {
    if (rec.command_pid && procs.alive(rec.command_pid, rec.command_start_time)) {
      return {
        status: "held",
        reason: `owner pid ${rec.pid} is gone but its command pid ${rec.command_pid} still runs`,
        owner: rec,
      };
    }
    const carrier = procs.carrier(rec.token);
    if (carrier !== null) {
      return {
        status: "held",
        reason: `owner pid ${rec.pid} is gone but pid ${carrier} from its command still runs`,
        owner: { ...rec, command_pid: rec.command_pid ?? carrier },
      };
    }
  }
  const proc = procs.proc(rec.pid);
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
  const who = rec.host !== myHost(env) || !rec.command_pid || isAlive(env, rec.pid, rec.pid_start_time)
    ? `${rec.host} pid ${rec.pid}`
    : `${rec.host} pid ${rec.command_pid} (command of exited mlagent pid ${rec.pid})`;
  const extra = [rec.purpose, rec.job_id ? `job ${rec.job_id}` : ""].filter(Boolean).join(", ");
  return `${who} for ${formatDuration(Math.max(0, env.now() - Date.parse(rec.acquired_at)))}${
    extra ? ` (${extra})` : ""
  }`;
}
