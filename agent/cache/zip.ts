/** Zip archives (wheels): truncation and damage found from the end-of-central-directory record, and which package a body is. */
import type { Env } from "../core/env.ts";
import { canonicalName } from "../core/pep503.ts";
import {
  addCorrupt,
  type CorruptEntry,
  type Installer,
  MATCH_REASON,
  noteMatch,
  type ScanState,
} from "./entries.ts";

export const isZipStart = (b: Uint8Array) =>
  b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04;

/**
 * Why bytes are not a whole zip, or null: the end-of-central-directory record must be present and the
 * central directory it points at must lie inside the file and start with its signature. A wheel cut in half
 * fails here, exactly as Python's zipfile does ("File is not a zip file").
 */
export function zipProblem(buf: Uint8Array, fileSize = buf.length, tailOffset = 0): string | null {
  if (fileSize < 22) return "is not a zip file (too short)";
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = buf.length - 22; i >= 0; i--) {
    if (view.getUint32(i, true) !== 0x06054b50) continue;
    const cdSize = view.getUint32(i + 12, true);
    const cdOffset = view.getUint32(i + 16, true);
    const eocdAt = tailOffset + i;
    if (cdOffset === 0xffffffff) return null; // zip64: trust it
    if (cdOffset + cdSize > eocdAt) return "is not a whole zip file (central directory out of range)";
    const rel = cdOffset - tailOffset;
    if (rel >= 0 && rel + 4 <= buf.length && view.getUint32(rel, true) !== 0x02014b50 && cdSize > 0) {
      return "is not a whole zip file (bad central directory)";
    }
    return null;
  }
  return "is not a zip file (no end of central directory: cut short)";
}

const TAIL = 65_557; // EOCD (22) + the longest comment (65535)

export function zipProblemSync(env: Env, path: string): string | null {
  // Deno has no sync positioned read in the Fs seam; wheels in uv/pip caches are read whole only when small.
  try {
    const size = env.fs.lstatSync(path).size;
    if (size > 64 * 1024 * 1024) return null; // judged lazily by the async path when healing
    const data = env.fs.readFileSync(path);
    return zipProblem(data);
  } catch (e) {
    return `cannot be read (${(e as Error).message})`;
  }
}

/** zipProblem for a file body on disk, reading only its head and tail. null when it is not a zip at all. */
export async function zipProblemFile(env: Env, path: string): Promise<string | null> {
  let f: Deno.FsFile;
  try {
    f = await env.fs.open(path, { read: true });
  } catch (e) {
    return `cannot be read (${(e as Error).message})`;
  }
  try {
    const size = (await f.stat()).size;
    const head = new Uint8Array(4);
    const n = await f.read(head);
    if (n !== 4 || !isZipStart(head)) return null;
    const start = Math.max(0, size - TAIL);
    await f.seek(start, Deno.SeekMode.Start);
    const tail = new Uint8Array(size - start);
    let off = 0;
    while (off < tail.length) {
      const r = await f.read(tail.subarray(off));
      if (r === null) break;
      off += r;
    }
    return zipProblem(tail.subarray(0, off), size, start);
  } catch (e) {
    return `cannot be read (${(e as Error).message})`;
  } finally {
    f.close();
  }
}

/** The project a downloaded file belongs to: a wheel's dist-info or top-level package, an sdist's root dir. */
export async function packageFromBytes(b: Uint8Array): Promise<string | null> {
  if (isZipStart(b)) {
    // Walk local file headers (they survive a truncation the central directory does not).
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let pos = 0;
    let first: string | null = null;
    while (pos + 30 <= b.length && view.getUint32(pos, true) === 0x04034b50) {
      const csize = view.getUint32(pos + 18, true);
      const nlen = view.getUint16(pos + 26, true);
      const xlen = view.getUint16(pos + 28, true);
      if (pos + 30 + nlen > b.length) break;
      const name = new TextDecoder().decode(b.subarray(pos + 30, pos + 30 + nlen));
      const m = /^([^/]+)-[^-/]+\.dist-info\//.exec(name);
      if (m) return canonicalName(m[1]);
      first ??= name.split("/")[0].replace(/\.py$/, "");
      if ((view.getUint16(pos + 6, true) & 0x08) !== 0) break; // sizes in a data descriptor: stop here
      pos += 30 + nlen + xlen + csize;
    }
    return first ? canonicalName(first) : null;
  }
  if (b.length > 2 && b[0] === 0x1f && b[1] === 0x8b) {
    try {
      // Loaded here, for the rare sdist: node:zlib costs every command that reaches this module ~20 ms to load.
      const { constants, gunzipSync } = await import("node:zlib");
      const tar = gunzipSync(b.subarray(0, Math.min(b.length, 65536)), {
        finishFlush: constants.Z_SYNC_FLUSH,
      });
      const name = new TextDecoder().decode(tar.subarray(0, 100)).replace(/\0.*$/s, "");
      const root = name.split("/")[0];
      const m = /^(.+)-[^-]+$/.exec(root);
      return m ? canonicalName(m[1]) : null;
    } catch {
      return null;
    }
  }
  return null;
}

export async function bodyPackage(env: Env, path: string): Promise<string | null> {
  try {
    const f = await env.fs.open(path, { read: true });
    try {
      const buf = new Uint8Array(256 * 1024);
      let off = 0;
      while (off < buf.length) {
        const r = await f.read(buf.subarray(off));
        if (r === null) break;
        off += r;
      }
      return await packageFromBytes(buf.subarray(0, off));
    } finally {
      f.close();
    }
  } catch {
    return null;
  }
}

/** A cached `.whl` file, uv's or pip's: corrupt unless it is a whole zip, else a match for the named package. */
export function judgeWheelFile(env: Env, p: string, installer: Installer, pkg: string, st: ScanState) {
  const why = zipProblemSync(env, p);
  const c: CorruptEntry = {
    path: p,
    also: [],
    installer,
    package: pkg,
    reason: why ? `cached wheel ${why}` : MATCH_REASON,
  };
  if (why) addCorrupt(st, c);
  else noteMatch(st, c);
}
