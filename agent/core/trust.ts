/**
 * Directories mlagent reads programs and records from must be the user's own. On a shared node another
 * local user can create `/tmp/mlagent-1000` before you do, or own a parent of your venv root (and so rename
 * anything below it), and then plant a venv whose python mlagent would run, or state that lies. So a venv
 * root, models dir, state dir or lock dir, and each of its existing parents up to /, must be owned by the
 * user or root and not writable by others unless the sticky bit protects their entries (as on /tmp).
 */
import type { Env } from "./env.ts";
import { badInput } from "./errors.ts";
import { selfAndParents } from "./paths.ts";
import { describeUid, groupHasOthers } from "./users.ts";

/** Why `dir` cannot be trusted, or null. Looks only; nothing is created. */
export function untrustedDirProblem(env: Env, dir: string): string | null {
  for (const p of selfAndParents(dir)) {
    let st: Deno.FileInfo | null = null;
    try {
      st = env.fs.statSync(p);
    } catch { /* not there yet: judge the parent that will hold it */ }
    if (st) {
      const uid = st.uid ?? env.uid;
      const mode = st.mode ?? 0o755;
      const sticky = (mode & 0o1000) !== 0;
      if (uid !== env.uid && uid !== 0) {
        return `${p} is owned by ${describeUid(env, uid)}, not by you (${describeUid(env, env.uid)})`;
      }
      if (!sticky && (mode & 0o002) !== 0) {
        return `${p} is writable by every user (mode ${(mode & 0o7777).toString(8)}) without the sticky bit`;
      }
      if (!sticky && (mode & 0o020) !== 0 && groupHasOthers(env, st.gid ?? -1, uid)) {
        return `${p} is writable by its group (mode ${(mode & 0o7777).toString(8)}), which has other members`;
      }
    }
  }
  return null;
}

/**
 * Throws bad input (exit 2) naming the dir's role and path when it is not a directory (a file given as
 * --root), or when it cannot be trusted (naming the owner).
 */
export function requireTrustedDir(env: Env, dir: string, role: string): void {
  try {
    if (!env.fs.statSync(dir).isDirectory) {
      throw badInput(
        `the ${role} ${dir} is not a directory`,
        `point it at a directory (or remove the file there)`,
        {
          path: dir,
          role,
        },
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) && !(e instanceof Deno.errors.NotADirectory)) throw e;
  }
  const why = untrustedDirProblem(env, dir);
  if (why) {
    throw badInput(
      `refusing the ${role} ${dir}: ${why}`,
      "another user could plant files there; use a directory of your own (or fix its owner and mode)",
      { path: dir, role },
    );
  }
}
