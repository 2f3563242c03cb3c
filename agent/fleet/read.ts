/** Reading the node files: a shared directory of HOST.json / HOST.health.json, or documents on stdin. */
import type { Env } from "../core/env.ts";
import type { RawNodeFile } from "./types.ts";

/** A node file is a few KiB; one far larger is not a node file and is not read. */
export const MAX_NODE_FILE_BYTES = 16 * 1024 * 1024;

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Every `*.json` in `dir` (hidden files are the writers' temp files and are skipped). Read one after another
 * with synchronous calls: thousands of small files read faster that way than through thousands of promises
 * (5,000 files is the budget), and a directory that hangs would hang either way. A file that cannot be read
 * is returned with its problem, never thrown.
 */
export function readNodeDir(env: Env, dir: string): RawNodeFile[] {
  const names: string[] = [];
  for (const e of env.fs.readDirSync(dir)) {
    if (!e.name.startsWith(".") && e.name.endsWith(".json") && (e.isFile || e.isSymlink)) names.push(e.name);
  }
  names.sort();
  return names.map((name) => readOne(env, `${dir}/${name}`, name));
}

function readOne(env: Env, path: string, name: string): RawNodeFile {
  try {
    const st = env.fs.statSync(path);
    const mtime = st.mtime?.getTime() ?? null;
    if (st.size > MAX_NODE_FILE_BYTES) {
      return {
        name,
        text: null,
        mtime_ms: mtime,
        problem: { kind: "too-large", file: name, detail: `${st.size} bytes; a node file is a few KiB` },
      };
    }
    return { name, text: env.fs.readTextFileSync(path), mtime_ms: mtime, problem: null };
  } catch (e) {
    return {
      name,
      text: null,
      mtime_ms: null,
      problem: { kind: "unreadable", file: name, detail: errorText(e) },
    };
  }
}

/**
 * Documents one after another, as `cat DIR/*.json` or `srun ... status --json` prints them: each starts
 * with a "{" at the start of a line (pretty-printed documents indent everything inside; one-line documents
 * are one per line). Splitting there keeps one document cut short from swallowing the next.
 */
export function splitDocuments(text: string): string[] {
  const docs: string[] = [];
  let current: string[] = [];
  const flush = () => {
    const doc = current.join("\n");
    if (doc.trim()) docs.push(doc);
    current = [];
  };
  for (const line of text.split("\n")) {
    if (line.startsWith("{")) flush();
    current.push(line);
  }
  flush();
  return docs;
}

/** Documents from stdin as node files named `stdin#1`, `stdin#2`, ... (no mtime: no clock to compare). */
export function stdinNodeFiles(text: string): RawNodeFile[] {
  return splitDocuments(text).map((t, i) => ({
    name: `stdin#${i + 1}`,
    text: t,
    mtime_ms: null,
    problem: null,
  }));
}
