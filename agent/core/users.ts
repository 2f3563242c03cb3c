/**
 * Local users and groups from /etc/passwd and /etc/group (through the Env's filesystem). Batch systems run
 * hooks without HOME or USER (LSF pre-exec, Slurm prologs): the password database still knows both.
 */
import type { Env } from "./env.ts";

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Parses passwd(5) lines; malformed ones are skipped. Pure. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || !/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) continue;
    out.push({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] });
  }
  return out;
}

/** Parses group(5) lines; malformed ones are skipped. Pure. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !/^\d+$/.test(f[2])) continue;
    out.push({
      name: f[0],
      gid: Number(f[2]),
      members: f[3].split(",").map((m) => m.trim()).filter(Boolean),
    });
  }
  return out;
}

function readSync(env: Env, path: string): string {
  try {
    return env.fs.readTextFileSync(path);
  } catch {
    return "";
  }
}

export function passwd(env: Env): PasswdEntry[] {
  return parsePasswd(readSync(env, `${env.etcRoot}/passwd`));
}

export function groups(env: Env): GroupEntry[] {
  return parseGroup(readSync(env, `${env.etcRoot}/group`));
}

/** The password database's entry for uid, or null (a uid from LDAP that nss knows but /etc/passwd does not). */
export function userById(env: Env, uid: number): PasswdEntry | null {
  return passwd(env).find((p) => p.uid === uid) ?? null;
}

/** A user's name for records and messages: USER/LOGNAME, else the passwd entry, else "uid N". */
export function userName(env: Env): string {
  const v = env.vars.USER || env.vars.LOGNAME;
  if (v) return v;
  return userById(env, env.uid)?.name ?? `uid ${env.uid}`;
}

/** "alice (uid 1001)" or "uid 1001". */
export function describeUid(env: Env, uid: number): string {
  const u = userById(env, uid);
  return u ? `${u.name} (uid ${uid})` : `uid ${uid}`;
}

/**
 * Whether group `gid` holds anyone but `uid`: a user private group (Red Hat's umask 002 makes dirs g+w
 * with the owner alone in the group) is harmless, a shared project group is not.
 */
export function groupHasOthers(env: Env, gid: number, uid: number): boolean {
  const users = passwd(env);
  const owner = users.find((u) => u.uid === uid);
  if (users.some((u) => u.gid === gid && u.uid !== uid)) return true;
  const group = groups(env).find((g) => g.gid === gid);
  if (!group) return true; // unknown group: assume the worst
  return group.members.some((m) => m !== owner?.name);
}
