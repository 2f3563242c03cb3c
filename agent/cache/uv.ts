/** uv's cache layout (versioned buckets, archives, unzipped wheels and their RECORDs). */
import type { Env } from "../core/env.ts";
import {
  addCorrupt,
  type CorruptEntry,
  countFiles,
  listDir,
  MATCH_REASON,
  noteCorruptInode,
  noteMatch,
  type ScanState,
  sizeOf,
  unknownEntry,
} from "./entries.ts";
import { canonicalName } from "../core/pep503.ts";
import { judgeWheelFile } from "./zip.ts";

export const UV_BUCKET =
  /^(archive|wheels|built-wheels|sdists|simple|flat-index|git|interpreter|builds|environments|python|binaries|files|osv|wheel-metadata)-v\d+$/;
export const UV_ROOT_FILES = new Set(["CACHEDIR.TAG", ".gitignore", ".lock", ".git"]);

export function scanUv(env: Env, root: string, st: ScanState) {
  const buckets = listDir(env, root);
  const archiveBucket = buckets.find((b) => /^archive-v\d+$/.test(b.name));
  const archiveIds = new Set<string>();
  for (const b of buckets) {
    const p = `${root}/${b.name}`;
    if (UV_ROOT_FILES.has(b.name)) {
      countFiles(env, p, b, st);
    } else if (!UV_BUCKET.test(b.name) || !b.isDirectory) {
      unknownEntry(env, p, b, st);
    } else if (/^archive-v\d+$/.test(b.name)) {
      for (const a of listDir(env, p)) {
        const ap = `${p}/${a.name}`;
        if (a.name === ".lock" || a.name.startsWith(".tmp")) {
          countFiles(env, ap, a, st);
          continue;
        }
        if (!a.isDirectory) {
          unknownEntry(env, ap, a, st);
          continue;
        }
        archiveIds.add(a.name);
        st.report.entries.uv++;
        checkUnzippedWheel(env, ap, st);
      }
    } else if (/^wheels-v\d+$/.test(b.name)) {
      // Judged after the archive bucket: a pointer is corrupt when its archive is gone.
    } else {
      countFiles(env, p, b, st);
      st.report.entries.uv += listDir(env, p).length;
    }
  }
  for (const b of buckets) {
    if (/^wheels-v\d+$/.test(b.name) && b.isDirectory) {
      scanUvWheels(
        env,
        `${root}/${b.name}`,
        archiveBucket ? `${root}/${archiveBucket.name}` : null,
        archiveIds,
        st,
      );
    }
  }
}

/**
 * An unzipped wheel (a uv archive entry): must hold exactly one `*.dist-info` with METADATA and RECORD, and
 * every file RECORD lists must exist. A concurrent or interrupted unzip leaves exactly these holes.
 */
function checkUnzippedWheel(env: Env, dir: string, st: ScanState) {
  const files = new Set<string>();
  let distInfo: string | null = null;
  const walk = (abs: string, rel: string) => {
    for (const c of listDir(env, abs)) {
      const r = rel ? `${rel}/${c.name}` : c.name;
      if (c.isDirectory) {
        if (!rel && c.name.endsWith(".dist-info")) distInfo = c.name;
        walk(`${abs}/${c.name}`, r);
      } else {
        files.add(r);
        st.report.files++;
        if (st.sizes) st.report.bytes += sizeOf(env, `${abs}/${c.name}`);
      }
    }
  };
  walk(dir, "");
  const entry = (pkg: string | null, reason: string): CorruptEntry => ({
    path: dir,
    also: [],
    installer: "uv",
    package: pkg,
    reason,
  });
  if (distInfo === null) {
    addCorrupt(st, entry(null, "unzipped wheel without a .dist-info directory"));
    noteCorruptInode(env, st, dir);
    return;
  }
  const di: string = distInfo;
  const pkg = canonicalName(di.replace(/-[^-]*\.dist-info$/, ""));
  const missing = ["METADATA", "RECORD"].filter((f) => !files.has(`${di}/${f}`));
  let bad: CorruptEntry | null = null;
  if (missing.length) {
    bad = entry(pkg, `${di} lacks ${missing.join(" and ")}`);
  } else {
    let record = "";
    try {
      record = env.fs.readTextFileSync(`${dir}/${di}/RECORD`);
    } catch (e) {
      bad = entry(pkg, `${di}/RECORD cannot be read (${(e as Error).message})`);
    }
    const lost: string[] = [];
    for (const line of record.split("\n")) {
      const file = recordPath(line);
      if (file === null || file.startsWith("../") || file.startsWith("/")) continue;
      if (!files.has(file)) lost.push(file);
    }
    if (!bad && lost.length) {
      bad = entry(
        pkg,
        `RECORD lists ${lost.length} missing file${lost.length === 1 ? "" : "s"} (${
          lost.slice(0, 3).join(", ")
        })`,
      );
    }
  }
  if (bad) {
    addCorrupt(st, bad);
    noteCorruptInode(env, st, dir);
  } else noteMatch(st, entry(pkg, MATCH_REASON));
}

/** The path column of a RECORD line (CSV: quoted when it holds a comma). */
function recordPath(line: string): string | null {
  const l = line.trim();
  if (!l) return null;
  if (l.startsWith('"')) {
    const end = l.indexOf('",');
    return end > 0 ? l.slice(1, end).replaceAll('""', '"') : null;
  }
  const comma = l.indexOf(",");
  return comma === -1 ? l : l.slice(0, comma);
}

/**
 * uv's wheels bucket: `<kind>/[<digest>/]<package>/...` (kind: pypi, index, url, path). A wheel entry is a
 * symlink into the archive bucket (or, in newer uv, a `.http` pointer naming an archive id); either is
 * corrupt when its archive is gone. Old layouts keep unzipped wheels in place (checked like archives) and
 * `.whl` files (checked as zips).
 */
function scanUvWheels(env: Env, bucket: string, archiveDir: string | null, ids: Set<string>, st: ScanState) {
  const visitPackageDir = (dir: string, pkgName: string) => {
    const pkg = canonicalName(pkgName);
    for (const e of listDir(env, dir)) {
      const p = `${dir}/${e.name}`;
      if (e.name === ".lock") {
        countFiles(env, p, e, st);
        continue;
      }
      st.report.entries.uv++;
      const entry = (reason: string): CorruptEntry => ({
        path: p,
        also: [],
        installer: "uv",
        package: pkg,
        reason,
      });
      if (e.isSymlink) {
        st.report.files++;
        // One stat through the link: realpath would cost a syscall per path component, 8,000 times over.
        let target: Deno.FileInfo;
        try {
          target = env.fs.statSync(p);
        } catch {
          addCorrupt(st, entry("wheel entry points at a missing archive"));
          continue;
        }
        if (target.ino !== null && st.corruptInodes.has(`${target.dev}:${target.ino}`)) {
          // Removing the archive leaves this link dangling: it goes in the same heal.
          addCorrupt(st, entry("wheel entry points at a corrupt archive"));
          continue;
        }
        noteMatch(st, entry(MATCH_REASON));
      } else if (e.isDirectory) {
        checkUnzippedWheel(env, p, st);
      } else if (e.name.endsWith(".whl")) {
        countFiles(env, p, e, st);
        judgeWheelFile(env, p, "uv", pkg, st);
      } else {
        countFiles(env, p, e, st);
        if (e.name.endsWith(".http") && archiveDir) {
          const id = archivePointer(env, p);
          if (id !== null && !ids.has(id)) {
            addCorrupt(st, entry(`wheel entry points at missing archive ${id}`));
            continue;
          }
        }
        noteMatch(st, entry(MATCH_REASON));
      }
    }
  };
  for (const kind of listDir(env, bucket)) {
    const kp = `${bucket}/${kind.name}`;
    if (!kind.isDirectory) {
      if (kind.name === ".lock") countFiles(env, kp, kind, st);
      else unknownEntry(env, kp, kind, st);
      continue;
    }
    if (kind.name === "pypi") {
      for (const p of listDir(env, kp)) if (p.isDirectory) visitPackageDir(`${kp}/${p.name}`, p.name);
    } else if (["index", "url", "path", "editable", "git"].includes(kind.name)) {
      for (const d of listDir(env, kp)) {
        if (!d.isDirectory) continue;
        for (const p of listDir(env, `${kp}/${d.name}`)) {
          if (p.isDirectory) visitPackageDir(`${kp}/${d.name}/${p.name}`, p.name);
        }
      }
    } else {
      unknownEntry(env, kp, kind, st);
    }
  }
}

/** The archive id a uv `.http` pointer names (a msgpack str of 21 nanoid characters), or null. */
function archivePointer(env: Env, path: string): string | null {
  let data: Uint8Array;
  try {
    data = env.fs.readFileSync(path);
  } catch {
    return null;
  }
  for (let i = 0; i + 22 <= data.length; i++) {
    if (data[i] !== 0xb5) continue;
    let ok = true;
    for (let j = 1; j <= 21 && ok; j++) {
      const c = data[i + j];
      ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95;
    }
    if (ok) return new TextDecoder().decode(data.subarray(i + 1, i + 22));
  }
  return null;
}
