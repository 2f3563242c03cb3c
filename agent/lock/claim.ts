/**
 * Claiming a lease atomically: by link(2) where the filesystem allows it, by exclusive create where it does
 * not. Decided once per directory: the first lease there probes link(2) on a scratch file and records the
 * answer in `.mlagent-claim-method` beside the locks, so every process and host on that filesystem (and
 * `lock list`) knows which claims may be briefly unreadable.
 *
 * - link: a complete record is written under a temp name and hard-linked into place; link(2) fails with
 *   EEXIST when a claim exists, and a claim is whole from the moment it exists. NFS may report failure for a
 *   link that happened (a lost reply): reading the claim back tells.
 * - exclusive: SFTP servers without OpenSSH's hardlink extension (sshfs), some SMB/CIFS servers and several
 *   FUSE filesystems refuse link(2) with EPERM, but O_CREAT|O_EXCL is atomic on them. The claim is created
 *   exclusively and the complete record written in one write; a reader may meet it empty or short for a
 *   moment, so in such a directory an unreadable claim counts as held until this host has seen it unchanged
 *   for a TTL (see state.ts). A claimant stalled that long may have its claim broken under it, so it reads
 *   the claim back after writing and only a claim that reads back as its own is held.
 *
 * The two methods interoperate (both fail when the claim exists), so a directory one host reaches through a
 * mount with hard links and another through one without stays safe: the first refusal switches the record
 * to "exclusive", and "exclusive" is never switched back.
 */
import type { Env } from "../core/env.ts";
import { dirOf, readText, replaceText, writeNew } from "./files.ts";
import { newToken } from "./record.ts";
import type { ClaimMethod } from "./types.ts";

export const CLAIM_METHOD_FILE = ".mlagent-claim-method";
const known = new Map<string, ClaimMethod>();
/** Directories seen without a record (for display only; deciding always looks again). */
const undecided = new Set<string>();

/** link(2) errors that mean "this filesystem does not do hard links": EPERM, ENOSYS, EOPNOTSUPP. */
export function linkRefused(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /os error (1|38|95)\b/.test(msg) || e instanceof Deno.errors.NotSupported;
}

function parseMethod(text: string | null): ClaimMethod | null {
  const t = text?.trim();
  return t === "link" || t === "exclusive" ? t : null;
}

/** A temp name beside `path` that says who made it, e.g. `x.lock.claim-gpu-1-4411-0badc0de`. */
export function sideName(env: Env, path: string, what: string): string {
  return `${path}.${what}-${env.hostname().replace(/[^A-Za-z0-9.-]/g, "_")}-${env.pid}-${
    newToken().slice(0, 8)
  }`;
}

/**
 * The claim method recorded for `dir`, or null where no lease was ever claimed there. `fresh` re-reads the
 * record (another host may have switched it to "exclusive" since this process last looked).
 */
export function recordedClaimMethod(env: Env, dir: string, { fresh = false } = {}): ClaimMethod | null {
  const cached = known.get(dir);
  if (cached === "exclusive" || (cached && !fresh)) return cached;
  if (!fresh && undecided.has(dir)) return null;
  let method: ClaimMethod | null = null;
  try {
    method = parseMethod(env.fs.readTextFileSync(`${dir}/${CLAIM_METHOD_FILE}`));
  } catch { /* never decided here */ }
  if (method) known.set(dir, method);
  else undecided.add(dir);
  return method ?? cached ?? null;
}

/** The claim method for `dir`: recorded, or probed once and recorded. */
export async function claimMethod(env: Env, dir: string): Promise<ClaimMethod> {
  const recorded = recordedClaimMethod(env, dir, { fresh: !known.has(dir) });
  if (recorded) return recorded;
  return await settleClaimMethod(env, dir, await probeLink(env, dir));
}

/** Tries link(2) on a scratch file; any failure means exclusive create, which works wherever create does. */
async function probeLink(env: Env, dir: string): Promise<ClaimMethod> {
  const scratch = sideName(env, `${dir}/.mlagent`, "claim-probe");
  await writeNew(env, scratch, "probe\n");
  try {
    await env.fs.link(scratch, `${scratch}-link`);
    return "link";
  } catch (e) {
    env.log.debug(
      `link(2) refused in ${dir} (${e instanceof Error ? e.message : e}); leases there use O_EXCL`,
    );
    return "exclusive";
  } finally {
    await env.fs.remove(`${scratch}-link`).catch(() => {});
    await env.fs.remove(scratch).catch(() => {});
  }
}

/** Records `method` for `dir`: the first record stands, except that "exclusive" always replaces "link". */
async function settleClaimMethod(env: Env, dir: string, method: ClaimMethod): Promise<ClaimMethod> {
  const file = `${dir}/${CLAIM_METHOD_FILE}`;
  if (method === "exclusive") {
    await replaceText(env, file, "exclusive\n").catch((e) =>
      env.log.debug(`cannot record the claim method in ${file}: ${e instanceof Error ? e.message : e}`)
    );
    known.set(dir, "exclusive");
    return "exclusive";
  }
  try {
    await writeNew(env, file, "link\n");
    known.set(dir, "link");
    return "link";
  } catch {
    const there = parseMethod(await readText(env, file).catch(() => null));
    known.set(dir, there ?? "link");
    return there ?? "link";
  }
}

/** Creates the claim at `path` holding exactly `text`. False when a claim exists (or ours was broken meanwhile). */
export async function tryClaim(env: Env, path: string, text: string): Promise<boolean> {
  const dir = dirOf(path);
  if ((await claimMethod(env, dir)) === "exclusive") return await claimExclusive(env, path, text);
  const tmp = sideName(env, path, "claim");
  await writeNew(env, tmp, text);
  try {
    for (let attempt = 1;; attempt++) {
      try {
        await env.fs.link(tmp, path);
        return true;
      } catch (e) {
        if (!linkRefused(e)) throw e;
        // SFTP has one generic failure code: sshfs reports a link onto a claim another mount just made as
        // EPERM, not EEXIST. Only a refusal with nothing in the way, twice, means no hard links here.
        if (await existsNow(env, path)) return false;
        if (attempt === 2) throw e;
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    if (linkRefused(e)) {
      // Another mount of this directory (or a server that changed) refuses links: switch, for everyone.
      env.log.debug(`link(2) refused for ${path}; switching ${dir} to exclusive-create claims`);
      await settleClaimMethod(env, dir, "exclusive");
      return await claimExclusive(env, path, text);
    }
    // A lost reply over NFS: the link may have happened. Our claim reads back whole; SFTP has no link count.
    if ((await readText(env, path).catch(() => null)) === text) return true;
    if ((await env.fs.stat(tmp).catch(() => null))?.nlink === 2) return true;
    throw e;
  } finally {
    await env.fs.remove(tmp).catch(() => {});
  }
}

const existsNow = (env: Env, path: string) => env.fs.lstat(path).then(() => true, () => false);

async function claimExclusive(env: Env, path: string, text: string): Promise<boolean> {
  try {
    await writeNew(env, path, text);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    // As with link: a create that lost the race on another mount comes back from sshfs as EPERM.
    if (linkRefused(e) && await existsNow(env, path)) return false;
    throw e;
  }
  // Stalled for a TTL between create and write, the claim may have been judged abandoned and moved aside.
  return (await readText(env, path).catch(() => null)) === text;
}

/**
 * Puts a claim moved aside back at `path`, unless another claim took its place meanwhile (then the moved one
 * loses, and its holder finds out at its next heartbeat).
 */
export async function putBack(env: Env, aside: string, path: string, text: string): Promise<void> {
  const method = await claimMethod(env, dirOf(path)).catch(() => "exclusive" as const);
  if (method === "link") {
    try {
      await env.fs.link(aside, path);
      return;
    } catch (e) {
      if (!linkRefused(e)) return;
    }
  }
  await writeNew(env, path, text).catch(() => {});
}
