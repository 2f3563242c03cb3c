/** lease mode: an atomic claim with a heartbeat, for network filesystems where flock cannot be trusted. */
import type { Env } from "../core/env.ts";
import { isoTime } from "../core/output.ts";
import type { SpawnedChild } from "../core/run.ts";
import { claimMethod, putBack, sideName, tryClaim } from "./claim.ts";
import { readFence } from "./fence.ts";
import { checkLockPath, dirOf, readText, writeRecord } from "./files.ts";
import { HeldLock } from "./held.ts";
import { makeRecord, newToken, parseOwnerRecord } from "./record.ts";
import { type Heartbeat, judgeState, readLockState } from "./state.ts";
import { FLOCK_MAGIC, type LockOptions, type LockSpec, type OwnerRecord, type Settings } from "./types.ts";
import { busyError, pause, Waiter } from "./wait.ts";

/**
 * Other hosts see only the records. So that a command outliving a SIGKILLed mlagent keeps its lease, a
 * small watchdog in its own session rewrites the heartbeat file (atomically, by rename) while the command
 * (same pid, same start time, not a zombie) lives and the record at `claimPath` still carries our token, and
 * ends with either. It rewrites content rather than touching the mtime: SFTP clients cache attributes, so
 * other hosts may not see a new mtime for many seconds, but they read new content at once.
 *
 * This is mlagent's one use of a shell (everything else runs argv through agent/core/run.ts): the watchdog
 * must outlive a SIGKILLed mlagent for as long as the command runs, so it cannot be a task of ours, and a
 * small POSIX sh loop over /proc costs about 1 MiB where a second mlagent runtime would cost 40. The script
 * is constant; every value reaches it as a positional argument, never as text spliced into it.
 */
export function startWatchdog(
  env: Env,
  w: {
    pid: number;
    start: number | null;
    heartbeatPath: string;
    claimPath: string;
    token: string;
    everyMs: number;
  },
  onSpawn: (c: SpawnedChild) => void,
): void {
  const script = [
    'p=$1 st=$2 hb=$3 iv=$4 proc=$5 claim=$6 tok=$7 n=0 tmp="${3%/*}/.${3##*/}.tmp-$$-0000feed"',
    "while :; do",
    '  sleep "$iv" </dev/null >/dev/null 2>&1',
    '  s=$(cat "$proc/$p/stat" 2>/dev/null) || exit 0',
    "  set -- ${s##*') '}",
    '  [ "$1" = Z ] && exit 0',
    '  [ -z "$st" ] || [ "${20}" = "$st" ] || exit 0',
    '  grep -qF "$tok" "$claim" 2>/dev/null || exit 0',
    "  n=$((n + 1))",
    `  printf '{"token":"%s","heartbeat_at":"%s","command_pid":%s,"command_start_time":%s,"watchdog_beats":%s}\\n' \\`,
    '    "$tok" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$p" "${st:-null}" "$n" >"$tmp" 2>/dev/null &&',
    '    mv -f "$tmp" "$hb" 2>/dev/null',
    "done",
  ].join("\n");
  void env.run(
    [
      "sh",
      "-c",
      script,
      "mlagent-lock-watchdog",
      String(w.pid),
      String(w.start ?? ""),
      w.heartbeatPath,
      String(w.everyMs / 1000),
      env.procRoot,
      w.claimPath,
      w.token,
    ],
    { timeoutMs: Infinity, newProcessGroup: true, onSpawn },
  ).catch(() => {});
}

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

  override async recordCommand(pid: number): Promise<void> {
    await super.recordCommand(pid);
    startWatchdog(this.env, {
      pid,
      start: this.commandStart,
      heartbeatPath: `${this.spec.path}.heartbeat`,
      claimPath: this.spec.path,
      token: this.token,
      everyMs: this.s.heartbeatMs,
    }, (c) => (this.watchdog = c));
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

/**
 * Removes the claim at `path` only if it is the one `expected` accepts: renames it aside (only one process
 * can), looks at what it moved, and puts back anything else. Returns whether it removed the expected claim.
 */
export async function removeClaimIf(
  env: Env,
  path: string,
  expected: (text: string) => boolean,
): Promise<boolean> {
  const aside = sideName(env, path, "broken");
  try {
    await env.fs.rename(path, aside);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  const text = (await readText(env, aside)) ?? "";
  if (!expected(text)) await putBack(env, aside, path, text);
  await env.fs.remove(aside).catch(() => {});
  return expected(text);
}

/**
 * Breaks a stale claim. Breakers take a short-lived guard claim first, so two processes that judged the same
 * claim stale cannot both break it (the second finds the first one's fresh claim and backs off).
 * Returns whether the stale claim was removed; false means look again.
 */
export async function breakClaim(
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
  if (!(await tryClaim(env, guard, JSON.stringify(guardRecord, null, 2) + "\n"))) {
    const state = await readLockState(env, guard);
    if (state.kind !== "lease") return false;
    // A breaker that died mid-break leaves its guard behind; judge it like any claim.
    if (judgeState(env, state, s).status.startsWith("stale")) {
      await removeClaimIf(env, guard, (t) => t === state.text);
    } else await pause(env, 5 + Math.floor(env.random() * 10));
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

/** Takes the exclusive lease claim on `spec.path` (no shared holders considered: see shared.ts). */
export async function acquireLease(
  env: Env,
  spec: LockSpec,
  s: Settings,
  opts: LockOptions,
  waiter: Waiter,
): Promise<HeldLock> {
  const token = newToken();
  // The highest number seen on a claim while waiting: a network filesystem's client may serve an old
  // `.fence` for a moment (sshfs with auto_cache does, for same-sized rewrites), and the claim we waited
  // behind carries its own number.
  let seenFencing = 0;
  for (;;) {
    await checkLockPath(env, spec.path);
    const fencing = Math.max(await readFence(env, spec.path), seenFencing) + 1;
    const claim = await claimMethod(env, dirOf(spec.path));
    const record = makeRecord(env, spec, "lease", token, fencing, s, opts.command, { claim });
    const claimed = await tryClaim(env, spec.path, JSON.stringify(record, null, 2) + "\n");
    const state = claimed ? null : await readLockState(env, spec.path);
    // Our own claim, back in place: a breaker that found it complete after all put it back.
    const held = claimed
      ? record
      : state?.kind === "lease" && state.owner?.token === token
      ? state.owner
      : null;
    if (held) {
      await writeRecord(env, `${spec.path}.fence`, held.fencing).catch(() => {});
      return new LeaseLock(env, spec, token, held.fencing, held, s);
    }
    if (!state || state.kind === "missing") continue;
    seenFencing = Math.max(seenFencing, state.owner?.fencing ?? 0);
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
