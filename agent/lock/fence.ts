/**
 * Fencing numbers: every exclusive acquisition of a lock gets a number larger than any before it.
 *
 * In flock mode the number lives in the lock file's header while the file exists. A released lock file is
 * removed (so per-job lock names leave nothing behind), and before that its number is folded into the
 * directory's floor, `.mlagent-fencing`: the highest number ever handed out there by a lock whose file is
 * gone. A new lock file starts above the floor, so a name's numbers keep growing across removals (numbers
 * of different names in one directory then share one sequence, which fencing allows). The floor is raised
 * under flock(2) of the floor file itself: flock mode only runs where the kernel lock can be trusted.
 *
 * In lease mode the number lives in `X.lock.fence` beside the claim, rewritten after each claim.
 */
import type { Env } from "../core/env.ts";
import { readText } from "./files.ts";

export const FENCE_FLOOR_FILE = ".mlagent-fencing";

function parseCount(text: string | null | undefined): number {
  const n = Number(text?.trim());
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** The fencing number kept beside a lock (lease mode, or a lock file we could only open read-only). */
export async function readFence(env: Env, path: string): Promise<number> {
  return parseCount(await readText(env, `${path}.fence`).catch(() => null));
}

/** The directory's floor: every lock file created there starts above it. */
export async function readFenceFloor(env: Env, dir: string): Promise<number> {
  return parseCount(await readText(env, `${dir}/${FENCE_FLOOR_FILE}`).catch(() => null));
}

/** Raises the directory's floor to at least `n`. Throws when the floor cannot be written (keep the lock file then). */
export async function raiseFenceFloor(env: Env, dir: string, n: number): Promise<void> {
  if (n <= 0) return;
  const file = await env.fs.open(`${dir}/${FENCE_FLOOR_FILE}`, {
    read: true,
    write: true,
    create: true,
    mode: 0o644,
  });
  try {
    // Two releasers of different locks must not lower each other's value: read-raise-write under the lock.
    await file.lock(true);
    const buf = new Uint8Array(64);
    let len = 0;
    for (;;) {
      const got = await file.read(buf.subarray(len));
      if (!got) break;
      len += got;
      if (len >= buf.length) break;
    }
    if (parseCount(new TextDecoder().decode(buf.subarray(0, len))) >= n) return;
    const bytes = new TextEncoder().encode(`${n}\n`);
    await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
  } finally {
    file.close();
  }
}
