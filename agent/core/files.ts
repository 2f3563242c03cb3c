/**
 * Reading the small files mlagent is handed (profiles, state files, records, token files) so that a hostile
 * or careless one cannot hang or exhaust it: a FIFO blocks open() until a writer comes, /dev/zero never
 * ends, a 100,000-deep document overflows any recursive walker. Each is refused with the reason in words.
 */
import type { Env } from "./env.ts";

export type BoundedRead =
  | { kind: "ok"; text: string }
  | { kind: "missing" }
  /** Present but refused: "is a FIFO, not a regular file", "is larger than 1.0 MiB", "permission denied"... */
  | { kind: "refused"; why: string };
// `why` reads after "it": "is a FIFO, not a regular file", "cannot be read (permission denied)".

const UTF8_BOM = "\uFEFF";

/**
 * Reads a regular file of at most `maxBytes` as UTF-8 (a leading byte-order mark, as Windows editors
 * save, is dropped). Never opens anything but a regular file, never reads past the limit.
 */
export async function readBoundedText(env: Env, path: string, maxBytes: number): Promise<BoundedRead> {
  let st: Deno.FileInfo;
  try {
    st = await env.fs.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { kind: "missing" };
    return { kind: "refused", why: `cannot be read (${describeFsError(e)})` };
  }
  if (!st.isFile) return { kind: "refused", why: `is ${kindOf(st)}, not a regular file` };
  if (st.size > maxBytes) {
    return { kind: "refused", why: `is ${st.size} bytes, more than the ${maxBytes} allowed` };
  }
  let file: Deno.FsFile;
  try {
    file = await env.fs.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { kind: "missing" };
    return { kind: "refused", why: `cannot be read (${describeFsError(e)})` };
  }
  try {
    // Sized by the stat, one byte over so the end is seen in the same buffer: status reads a few files per
    // venv, hundreds at once, and a fixed 64 KiB margin each was most of what it allocated. A file that grows
    // meanwhile (another writer) gets a buffer twice as big, up to one byte past the limit.
    let buf = new Uint8Array(Math.min(maxBytes, st.size) + 1);
    let off = 0;
    for (;;) {
      if (off === buf.length) {
        if (buf.length > maxBytes) return { kind: "refused", why: `grew past the ${maxBytes} bytes allowed` };
        const bigger = new Uint8Array(Math.min(maxBytes + 1, buf.length * 2));
        bigger.set(buf);
        buf = bigger;
      }
      const n = await file.read(buf.subarray(off));
      if (n === null) break;
      off += n;
    }
    const text = new TextDecoder().decode(buf.subarray(0, off));
    return { kind: "ok", text: text.startsWith(UTF8_BOM) ? text.slice(1) : text };
  } catch (e) {
    return { kind: "refused", why: `cannot be read (${describeFsError(e)})` };
  } finally {
    file.close();
  }
}

function kindOf(st: Deno.FileInfo): string {
  if (st.isDirectory) return "a directory";
  if (st.isFifo) return "a FIFO";
  if (st.isSocket) return "a socket";
  if (st.isCharDevice) return "a character device";
  if (st.isBlockDevice) return "a block device";
  return "not a regular file";
}

/** A filesystem error in words, for "cannot read X: ..." messages. */
export function describeFsError(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.NotFound) return "no such file or directory";
  if (e instanceof Deno.errors.IsADirectory) return "is a directory";
  if (e instanceof Deno.errors.NotADirectory) return "a part of the path is a file, not a directory";
  if (e instanceof Error && /os error 30\b/.test(e.message)) return "read-only filesystem";
  if (e instanceof Error && /os error 28\b/.test(e.message)) return "no space left on the device";
  return e instanceof Error ? e.message : String(e);
}

/**
 * How deeply arrays and objects nest in a JSON text, counted without parsing (strings skipped), so a
 * document too deep for the recursive validators is refused before any of them runs.
 */
export function jsonNestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** A directory's entries; none when it cannot be read (gone, not a directory, no permission). */
export async function entriesOr(env: Env, dir: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const e of env.fs.readDir(dir)) entries.push(e);
  } catch {
    return [];
  }
  return entries;
}

/**
 * Bytes a directory tree takes on disk (allocated blocks, as `du` counts them; each hard-linked inode once),
 * without following symlinks. Unreadable parts count as nothing: this is for "how much will this free".
 */
export async function treeBytes(env: Env, root: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (dir: string) => {
    for (const e of await entriesOr(env, dir)) {
      const path = `${dir}/${e.name}`;
      let st: Deno.FileInfo;
      try {
        st = await env.fs.lstat(path);
      } catch {
        continue;
      }
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      total += st.blocks !== null ? st.blocks * 512 : st.size;
      if (st.isDirectory) await walk(path);
    }
  };
  try {
    const st = await env.fs.lstat(root);
    if (!st.isDirectory) return st.blocks !== null ? st.blocks * 512 : st.size;
    total += st.blocks !== null ? st.blocks * 512 : st.size;
  } catch {
    return 0;
  }
  await walk(root);
  return total;
}

/** The hidden sibling a directory is renamed to before it is deleted: `.NAME.removing-PID-RANDOM`. */
export function asideName(env: Env, dir: string): string {
  const parent = dir.slice(0, dir.lastIndexOf("/")) || "/";
  return `${parent}/.${dir.slice(dir.lastIndexOf("/") + 1)}.removing-${env.pid}-${
    Math.floor(env.random() * 1e9)
  }`;
}

/** Earlier removals of `dir` that were killed between the rename and the end of the delete. */
export async function asideLeftovers(env: Env, dir: string): Promise<string[]> {
  const parent = dir.slice(0, dir.lastIndexOf("/")) || "/";
  const prefix = `.${dir.slice(dir.lastIndexOf("/") + 1)}.removing-`;
  return (await entriesOr(env, parent))
    .filter((e) => e.name.startsWith(prefix) && /^\d+-\d+$/.test(e.name.slice(prefix.length)))
    .map((e) => `${parent}/${e.name}`)
    .sort();
}

/**
 * Deletes a directory so that no reader ever sees half of it under its own name: one atomic rename to a
 * hidden sibling (ready-looking state and all leave together), then the delete. A kill in between leaves
 * only the hidden sibling, which asideLeftovers finds and the next removal deletes.
 */
export async function removeDirAside(env: Env, dir: string): Promise<void> {
  const aside = asideName(env, dir);
  await env.fs.rename(dir, aside);
  await env.fs.remove(aside, { recursive: true });
}
