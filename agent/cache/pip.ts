/** pip's cache layout: http and http-v2 response bodies, and built wheels. */
import type { Env } from "../core/env.ts";
import { decodeCachedResponse } from "./cachecontrol.ts";
import {
  addCorrupt,
  countFiles,
  listDir,
  MATCH_REASON,
  noteMatch,
  noteUnknown,
  type ScanState,
  sizeOf,
  unknownEntry,
} from "./entries.ts";
import { canonicalName } from "../core/pep503.ts";
import { judgeWheelFile } from "./zip.ts";
import { bodyPackage, isZipStart, packageFromBytes, zipProblem, zipProblemFile } from "./zip.ts";

export const PIP_KNOWN = new Set(["http", "http-v2", "wheels", "selfcheck", "selfcheck.json"]);

export async function scanPip(env: Env, root: string, st: ScanState) {
  for (const e of listDir(env, root)) {
    const p = `${root}/${e.name}`;
    if (!PIP_KNOWN.has(e.name)) unknownEntry(env, p, e, st);
    else if (e.name === "http" || e.name === "http-v2") await scanPipHttp(env, p, e.name === "http-v2", st);
    else if (e.name === "wheels") scanPipWheels(env, p, st);
    else countFiles(env, p, e, st);
  }
}

/**
 * pip's HTTP cache (cachecontrol, keyed by sha224 of the URL, five levels of one-character dirs). `http`
 * (pip < 23.3) holds `cc=4,` + msgpack with the body inline; `http-v2` keeps the body in `<key>.body` beside a
 * header file with an empty body. Corrupt: a header that does not decode, a body shorter or longer than its
 * Content-Length, a body missing or unreadable, a zip body (a wheel) that is not a whole zip.
 */
async function scanPipHttp(env: Env, root: string, v2: boolean, st: ScanState) {
  const visit = async (dir: string) => {
    const entries = listDir(env, dir);
    const names = new Set(entries.map((e) => e.name));
    for (const e of entries) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) {
        await visit(p);
        continue;
      }
      st.report.files++;
      const size = st.sizes || e.name.endsWith(".body") ? sizeOf(env, p) : 0;
      if (st.sizes) st.report.bytes += size;
      if (e.name.endsWith(".body")) {
        if (!names.has(e.name.slice(0, -5))) {
          st.report.entries.pip++;
          addCorrupt(st, {
            path: p,
            also: [],
            installer: "pip",
            package: null,
            reason: "cached body without its header",
          });
        }
        continue;
      }
      if (!/^[0-9a-f]{56}$/.test(e.name)) {
        if (!e.name.startsWith(".") && !e.name.endsWith(".lock")) noteUnknown(st, p);
        continue;
      }
      st.report.entries.pip++;
      await judgePipHttpEntry(env, p, v2 && names.has(`${e.name}.body`) ? `${p}.body` : null, v2, st);
    }
  };
  await visit(root);
}

async function judgePipHttpEntry(
  env: Env,
  header: string,
  bodyPath: string | null,
  v2: boolean,
  st: ScanState,
) {
  const also = bodyPath ? [bodyPath] : [];
  const bad = (reason: string, pkg: string | null) =>
    addCorrupt(st, { path: header, also, installer: "pip", package: pkg, reason });
  let raw: Uint8Array;
  try {
    raw = env.fs.readFileSync(header);
  } catch (e) {
    return bad(`cached response cannot be read (${(e as Error).message})`, null);
  }
  const decoded = await decodeCachedResponse(raw);
  if (typeof decoded === "string") {
    // pip itself treats an undecodable entry as a miss, but it stays on disk, and a torn write of a v2
    // header next to a whole body is what a killed pip leaves.
    return bad(
      `cached response${v2 ? " header" : ""} is unreadable (${decoded})`,
      bodyPath ? await bodyPackage(env, bodyPath) : null,
    );
  }
  const expected = decoded.contentLength;
  let body: Uint8Array | null = null;
  let bodySize: number;
  if (v2) {
    if (!bodyPath) {
      // Redirects and 304s are stored without a body.
      if (expected && expected > 0 && decoded.status === 200) return bad("cached body is missing", null);
      return;
    }
    try {
      bodySize = env.fs.lstatSync(bodyPath).size;
    } catch (e) {
      return bad(`cached body cannot be read (${(e as Error).message})`, null);
    }
  } else {
    body = decoded.body;
    bodySize = body.length;
  }
  const pkgOf = async () => body ? await packageFromBytes(body) : await bodyPackage(env, bodyPath!);
  if (expected !== null && bodySize !== expected && !decoded.compressed) {
    return bad(
      `cached body is ${bodySize} bytes, its Content-Length says ${expected} (${
        bodySize < expected ? "truncated" : "too long"
      })`,
      await pkgOf(),
    );
  }
  // With a Content-Length the size check above already caught a cut body; only unsized bodies are opened.
  const zipWhy = expected !== null && !decoded.compressed
    ? null
    : body
    ? (isZipStart(body) ? zipProblem(body) : null)
    : await zipProblemFile(env, bodyPath!);
  if (zipWhy) return bad(`cached wheel download ${zipWhy}`, await pkgOf());
  if (st.pkg !== null) {
    const pkg = await pkgOf();
    noteMatch(st, {
      path: header,
      also,
      installer: "pip",
      package: pkg,
      reason: MATCH_REASON,
    });
  }
}

/** pip's `wheels/` (wheels built locally from sdists): each `.whl` must be a whole zip. */
function scanPipWheels(env: Env, root: string, st: ScanState) {
  const visit = (dir: string) => {
    for (const e of listDir(env, dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) {
        visit(p);
        continue;
      }
      st.report.files++;
      if (st.sizes) st.report.bytes += sizeOf(env, p);
      if (!e.name.endsWith(".whl")) continue; // origin.json and friends
      st.report.entries.pip++;
      judgeWheelFile(env, p, "pip", canonicalName(e.name.split("-")[0]), st);
    }
  };
  visit(root);
}
