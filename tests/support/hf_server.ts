/**
 * A Hugging Face Hub look-alike on 127.0.0.1 for download tests and the bench. It speaks the parts of the
 * protocol mlagent uses (see tests/fixtures/hf_hub/resolve_protocol_facts.md):
 *   GET  /api/models/{repo}/revision/{rev}                 -> {id, sha, siblings}, X-Repo-Commit
 *   GET  /api/models/{repo}/tree/{rev}?recursive=true       -> [{type, oid, size, path, lfs?}], paged by Link
 *   HEAD/GET /{repo}/resolve/{rev}/{path}                   -> regular file: 200 + ETag (git sha1);
 *        LFS file: 302 to the "CDN" (same port, host name `localhost`) + X-Linked-Etag / X-Linked-Size
 *   GET  /cdn/{sha256}                                      -> the LFS bytes, with Range
 * A GET on /resolve/ answers with the HEAD's headers too (the body, or the redirect to the CDN).
 * Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, GatedRepo, EntryNotFound) as the Hub does.
 * Faults are queued per path and consumed by the requests they match; every body byte sent is counted.
 * Large files are generated on the fly from a seed (never held whole in memory).
 */
import { createHash } from "node:crypto";

export type Content = Uint8Array | { size: number; seed: number };

export interface ServedFile {
  path: string;
  content: Content;
  lfs: boolean;
}

export type Fault =
  /** Close the connection after `afterBytes` body bytes of this response. */
  | { kind: "cut"; afterBytes: number }
  /** Answer this status (503, 429, 500...) with an optional Retry-After (seconds). */
  | { kind: "status"; status: number; retryAfterS?: number }
  /** Answer 416 to a ranged request. */
  | { kind: "416" }
  /** Answer 200 with the whole body even when a Range was asked for. */
  | { kind: "ignore-range" }
  /** After `afterBytes`, send nothing for `ms` (or until the client gives up). */
  | { kind: "stall"; afterBytes: number; ms: number }
  /** Flip one byte at `offset` of the file. */
  | { kind: "wrong-bytes"; offset: number }
  /**
   * A hostile Hub: answer with a redirect to `location` (any scheme). On "head" it looks like an LFS file's
   * answer (X-Linked-Etag and X-Linked-Size of the real file); on "body" a plain 302.
   */
  | { kind: "redirect"; location: string }
  /** A hostile Hub: an API answer ("revision" or "tree") that never ends. */
  | { kind: "endless" }
  /**
   * A hostile Hub: the file body followed by `bytes` more; `announce` says so in Content-Length, else the
   * body is sent chunked with no length.
   */
  | { kind: "extra-bytes"; bytes: number; announce: boolean };

export interface QueuedFault {
  /** File path, or "*" for any. */
  path: string;
  /**
   * Which request: the body GET (hub or CDN), the HEAD, the API calls, or "resolve": the Hub's answer on
   * /resolve/ whatever the method (the HEAD, or a GET read for the same headers), before any body.
   */
  on: "body" | "head" | "resolve" | "tree" | "revision";
  fault: Fault;
  /** How many requests it applies to (default 1). */
  times?: number;
}

export interface RequestLog {
  method: string;
  host: string;
  path: string;
  range: string | null;
  authorization: string | null;
  status: number;
}

export interface HubServerOptions {
  repo?: string;
  files?: ServedFile[];
  /** Entries per tree page (default: all in one). */
  pageSize?: number;
  /** Require `Authorization: Bearer <token>` on Hub (not CDN) requests. */
  requireToken?: string;
  /** With requireToken: answer as a gated repo (GatedRepo) instead of a private one (RepoNotFound). */
  gated?: boolean;
  /**
   * Answer /resolve/ for regular files with a relative redirect to /api/resolve-cache/... as the Hub does
   * for some repos (resolve_head_samples.txt [B]).
   */
  resolveCache?: boolean;
  /** Serve https with this certificate (PEM; it must name 127.0.0.1 and localhost). */
  tls?: { cert: string; key: string };
}

const PERIOD = 1_048_573; // prime, so a misplaced range never lines up with the pattern
const blocks = new Map<number, Uint8Array>();
function block(seed: number): Uint8Array {
  let b = blocks.get(seed);
  if (!b) {
    b = new Uint8Array(PERIOD);
    let x = (seed * 2654435761) >>> 0 || 1;
    for (let i = 0; i < PERIOD; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      b[i] = x & 255;
    }
    blocks.set(seed, b);
  }
  return b;
}

export function contentSize(c: Content): number {
  return c instanceof Uint8Array ? c.length : c.size;
}

/** Bytes [offset, offset+len) of a content, as zero-copy views where possible (at most 256 KiB each). */
function* slices(c: Content, offset: number, len: number): Generator<Uint8Array> {
  const end = offset + len;
  let o = offset;
  while (o < end) {
    const n = Math.min(end - o, 256 * 1024);
    if (c instanceof Uint8Array) {
      yield c.subarray(o, o + n);
      o += n;
    } else {
      const b = block(c.seed);
      const s = o % PERIOD;
      const m = Math.min(n, PERIOD - s);
      yield b.subarray(s, s + m);
      o += m;
    }
  }
}

/** The whole content as bytes (small files and tests only). */
export function contentBytes(c: Content): Uint8Array {
  if (c instanceof Uint8Array) return c;
  const out = new Uint8Array(c.size);
  let o = 0;
  for (const s of slices(c, 0, c.size)) {
    out.set(s, o);
    o += s.length;
  }
  return out;
}

function digest(c: Content, algo: "sha256" | "git-sha1"): string {
  const h = createHash(algo === "sha256" ? "sha256" : "sha1");
  if (algo === "git-sha1") h.update(`blob ${contentSize(c)}\0`);
  for (const s of slices(c, 0, contentSize(c))) h.update(s);
  return h.digest("hex");
}

interface Entry {
  file: ServedFile;
  size: number;
  oid: string;
  sha256?: string;
}

export class HubServer implements AsyncDisposable {
  readonly repo: string;
  readonly port: number;
  readonly url: string;
  readonly cdnUrl: string;
  readonly requests: RequestLog[] = [];
  /** Body bytes sent per file path (hub and CDN together). */
  readonly bytesSent = new Map<string, number>();
  /** Bytes of endless API answers sent so far. */
  endlessBytesSent = 0;
  readonly faults: QueuedFault[] = [];
  /** Extra raw entries in the tree listing (hostile paths). */
  readonly extraEntries: Record<string, unknown>[] = [];
  pageSize: number;
  requireToken?: string;
  gated: boolean;
  resolveCache: boolean;
  commit = "";
  private entries = new Map<string, Entry>();
  private server: Deno.HttpServer;

  constructor(opts: HubServerOptions = {}) {
    this.repo = opts.repo ?? "acme/tiny-model";
    this.pageSize = opts.pageSize ?? 1000;
    this.requireToken = opts.requireToken;
    this.gated = opts.gated ?? false;
    this.resolveCache = opts.resolveCache ?? false;
    for (const f of opts.files ?? []) this.setFile(f);
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {}, ...(opts.tls ?? {}) },
      (req) => this.handle(req),
    );
    this.port = (this.server.addr as Deno.NetAddr).port;
    const scheme = opts.tls ? "https" : "http";
    this.url = `${scheme}://127.0.0.1:${this.port}`;
    this.cdnUrl = `${scheme}://localhost:${this.port}`;
  }

  /** Adds or replaces a file; the repo gets a new commit (as a push would). */
  setFile(file: ServedFile): Entry {
    const e: Entry = {
      file,
      size: contentSize(file.content),
      oid: digest(file.content, "git-sha1"),
      ...(file.lfs ? { sha256: digest(file.content, "sha256") } : {}),
    };
    this.entries.set(file.path, e);
    this.recomputeCommit();
    return e;
  }

  entry(path: string): Entry | undefined {
    return this.entries.get(path);
  }

  /**
   * The listing as huggingface_hub caches it in a local dir, `.cache/huggingface/trees/<commit>.json`
   * (format 1: _tree_cache.py @ ee0a4510), for tests of dirs `hf download` filled.
   */
  hfTreeJson(): string {
    const files: Record<string, unknown> = {};
    for (const [path, e] of [...this.entries].sort(([a], [b]) => a.localeCompare(b))) {
      files[path] = {
        size: e.size,
        blob_id: e.oid,
        ...(e.sha256 ? { lfs_sha256: e.sha256, lfs_size: e.size } : {}),
      };
    }
    return JSON.stringify({ format_version: 1, files }, null, 1);
  }

  addFault(f: QueuedFault) {
    this.faults.push({ times: 1, ...f });
  }

  sent(path: string): number {
    return this.bytesSent.get(path) ?? 0;
  }

  private recomputeCommit() {
    const h = createHash("sha1");
    for (const [p, e] of [...this.entries].sort(([a], [b]) => a.localeCompare(b))) {
      h.update(`${p}\0${e.oid}\n`);
    }
    this.commit = h.digest("hex");
  }

  private takeFault(path: string, on: QueuedFault["on"], pred: (f: Fault) => boolean = () => true) {
    const i = this.faults.findIndex((q) =>
      (q.path === path || q.path === "*") && q.on === on && (q.times ?? 1) > 0 && pred(q.fault)
    );
    if (i === -1) return undefined;
    const q = this.faults[i];
    q.times = (q.times ?? 1) - 1;
    if (q.times <= 0) this.faults.splice(i, 1);
    return q.fault;
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }

  async close() {
    await this.server.shutdown().catch(() => {});
  }

  private async handle(req: Request): Promise<Response> {
    const u = new URL(req.url);
    const host = req.headers.get("host") ?? "";
    const log: RequestLog = {
      method: req.method,
      host,
      path: decodeURIComponent(u.pathname) + u.search,
      range: req.headers.get("range"),
      authorization: req.headers.get("authorization"),
      status: 0,
    };
    this.requests.push(log);
    const res = await this.route(req, u, host);
    log.status = res.status;
    return res;
  }

  private hubError(status: number, code: string, message: string, extra: Record<string, string> = {}) {
    return new Response(message, {
      status,
      headers: { "x-error-code": code, "x-error-message": message, ...extra },
    });
  }

  private route(req: Request, u: URL, host: string): Response | Promise<Response> {
    const p = u.pathname;
    if (p.startsWith("/cdn/")) return this.serveBody(req, p.slice(5), true);
    if (host.startsWith("localhost")) return new Response("not the hub", { status: 404 });
    if (this.requireToken && req.headers.get("authorization") !== `Bearer ${this.requireToken}`) {
      return this.gated
        ? this.hubError(
          401,
          "GatedRepo",
          `Access to model ${this.repo} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
        )
        : this.hubError(401, "RepoNotFound", "Repository not found");
    }
    const api = `/api/models/${this.repo}/`;
    if (p.startsWith(api)) {
      const rest = p.slice(api.length);
      const [kind, rawRev] = rest.split("/");
      const rev = decodeURIComponent(rawRev ?? "");
      const fault = this.takeFault("*", kind === "tree" ? "tree" : "revision");
      if (fault?.kind === "status") return this.statusFault(fault);
      if (fault?.kind === "endless") return this.endless();
      if (rev !== "main" && rev !== this.commit) {
        return this.hubError(404, "RevisionNotFound", `Invalid rev id: ${rev}`);
      }
      if (kind === "revision") {
        return Response.json({
          id: this.repo,
          sha: this.commit,
          siblings: [...this.entries.keys()].map((rfilename) => ({ rfilename })),
        }, { headers: { "x-repo-commit": this.commit } });
      }
      if (kind === "tree") return this.tree(u);
    }
    const cache = `/api/resolve-cache/models/${this.repo}/`;
    const resolve = `/${this.repo}/resolve/`;
    const viaCache = p.startsWith(cache);
    if (!viaCache && p.startsWith("/api/")) return this.hubError(401, "RepoNotFound", "Repository not found");
    if (!viaCache && !p.startsWith(resolve)) {
      return this.hubError(401, "RepoNotFound", "Repository not found");
    }
    const rest = p.slice(viaCache ? cache.length : resolve.length);
    const slash = rest.indexOf("/");
    const rev = decodeURIComponent(rest.slice(0, slash));
    const path = rest.slice(slash + 1).split("/").map(decodeURIComponent).join("/");
    if (rev !== "main" && rev !== this.commit) {
      return this.hubError(404, "RevisionNotFound", `Invalid rev id: ${rev}`);
    }
    const e = this.entries.get(path);
    const common = { "x-repo-commit": this.commit };
    if (!e) return this.hubError(404, "EntryNotFound", `${path} does not exist`, common);
    if (req.method === "HEAD" || (req.method === "GET" && !viaCache)) {
      const fault = (req.method === "HEAD" ? this.takeFault(path, "head") : undefined) ??
        this.takeFault(path, "resolve");
      if (fault?.kind === "status") return this.statusFault(fault);
      if (fault?.kind === "stall") {
        const ms = fault.ms;
        return new Promise<void>((r) => setTimeout(r, ms)).then(() => this.route(req, u, host));
      }
      if (fault?.kind === "redirect") {
        return new Response(null, {
          status: 302,
          headers: {
            ...common,
            location: fault.location,
            "x-linked-etag": `"${e.sha256 ?? e.oid}"`,
            "x-linked-size": String(e.size),
            etag: `W/"redirect-${e.oid.slice(0, 8)}"`,
          },
        });
      }
    }
    if (this.resolveCache && !viaCache && !e.sha256) {
      const location = `${cache}${this.commit}/${rest.slice(slash + 1)}?etag=%22${e.oid}%22`;
      return new Response(null, { status: 307, headers: { ...common, location } });
    }
    if (e.sha256) {
      const headers = {
        ...common,
        location: `${this.cdnUrl}/cdn/${e.sha256}?path=${encodeURIComponent(path)}&sig=x`,
        "x-linked-etag": `"${e.sha256}"`,
        "x-linked-size": String(e.size),
        etag: `W/"redirect-${e.oid.slice(0, 8)}"`,
        "content-type": "text/plain; charset=utf-8",
      };
      return new Response(req.method === "HEAD" ? null : "Found. Redirecting to the CDN", {
        status: 302,
        headers,
      });
    }
    if (req.method === "HEAD") {
      return new Response(null, {
        headers: {
          ...common,
          etag: `"${e.oid}"`,
          "content-length": String(e.size),
          "accept-ranges": "bytes",
        },
      });
    }
    return this.serveBody(req, path, false);
  }

  private statusFault(f: { status: number; retryAfterS?: number }): Response {
    const headers: Record<string, string> = {};
    if (f.retryAfterS !== undefined) headers["retry-after"] = String(f.retryAfterS);
    return new Response(`fault ${f.status}`, { status: f.status, headers });
  }

  /** An answer that starts like a JSON list of files and never ends; sends only as fast as it is read. */
  private endless(): Response {
    const entry = new TextEncoder().encode(
      JSON.stringify({ type: "file", oid: "0".repeat(40), size: 1, path: "x".repeat(200) }) + ",",
    );
    let first = true;
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull: (ctl) => {
        if (cancelled) return;
        const chunk = new Uint8Array(entry.length * 256 + (first ? 1 : 0));
        let o = 0;
        if (first) chunk[o++] = 0x5b; // "["
        first = false;
        for (let i = 0; i < 256; i++, o += entry.length) chunk.set(entry, o);
        this.endlessBytesSent += chunk.length;
        ctl.enqueue(chunk);
      },
      cancel: () => {
        cancelled = true;
      },
    }, { highWaterMark: 0 });
    return new Response(body, {
      headers: { "content-type": "application/json", "x-repo-commit": this.commit },
    });
  }

  private tree(u: URL): Response {
    if (u.searchParams.get("recursive") !== "true") {
      return new Response("recursive only here", { status: 400 });
    }
    const all: Record<string, unknown>[] = [];
    const dirs = new Set<string>();
    for (const [path, e] of [...this.entries].sort(([a], [b]) => a.localeCompare(b))) {
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++) {
        const d = parts.slice(0, i).join("/");
        if (!dirs.has(d)) {
          dirs.add(d);
          all.push({ type: "directory", oid: "0".repeat(40), size: 0, path: d });
        }
      }
      all.push({
        type: "file",
        oid: e.oid,
        size: e.size,
        path,
        ...(e.sha256 ? { lfs: { oid: e.sha256, size: e.size, pointerSize: 134 } } : {}),
      });
    }
    all.push(...this.extraEntries);
    const cursor = Number(u.searchParams.get("cursor") ?? "0");
    const page = all.slice(cursor, cursor + this.pageSize);
    const headers: Record<string, string> = {};
    if (cursor + this.pageSize < all.length) {
      const next = new URL(u.href);
      next.host = `127.0.0.1:${this.port}`;
      next.searchParams.set("cursor", String(cursor + this.pageSize));
      headers.link = `<${next.href}>; rel="next"`;
    }
    return Response.json(page, { headers });
  }

  private serveBody(req: Request, key: string, cdn: boolean): Response {
    let e: Entry | undefined;
    if (cdn) e = [...this.entries.values()].find((x) => x.sha256 === key);
    else e = this.entries.get(key);
    if (!e) return new Response("no such object", { status: 404 });
    const path = e.file.path;
    const size = e.size;
    const range = req.headers.get("range");
    let fault = this.takeFault(path, "body", (f) => f.kind !== "416" || range !== null);
    if (fault?.kind === "status") return this.statusFault(fault);
    if (fault?.kind === "redirect") {
      return new Response("Found", { status: 302, headers: { location: fault.location } });
    }
    let start = 0;
    let end = size; // exclusive
    let status = 200;
    if (range && fault?.kind !== "ignore-range") {
      const m = range.match(/^bytes=(\d+)-(\d*)$/);
      if (!m) return new Response("bad range", { status: 400 });
      start = Number(m[1]);
      end = m[2] ? Math.min(size, Number(m[2]) + 1) : size;
      if (fault?.kind === "416" || start >= size || start >= end) {
        return new Response(null, { status: 416, headers: { "content-range": `bytes */${size}` } });
      }
      status = 206;
    }
    if (fault?.kind === "416" || fault?.kind === "ignore-range") fault = undefined;
    const headers: Record<string, string> = {
      "content-length": String(end - start),
      "accept-ranges": "bytes",
      "content-type": "application/octet-stream",
      etag: cdn ? `"cdn-${e.sha256!.slice(0, 16)}"` : `"${e.oid}"`,
    };
    if (!cdn) headers["x-repo-commit"] = this.commit;
    if (status === 206) headers["content-range"] = `bytes ${start}-${end - 1}/${size}`;
    let extra = 0;
    if (fault?.kind === "extra-bytes") {
      extra = fault.bytes;
      if (fault.announce) headers["content-length"] = String(end - start + extra);
      else delete headers["content-length"];
    }
    const content = e.file.content;
    let pos = start;
    let sentHere = 0;
    let cancelled = false;
    let wake: (() => void) | undefined;
    const f = fault;
    const body = new ReadableStream<Uint8Array>({
      pull: async (ctl) => {
        if (cancelled) return;
        if (pos >= end && extra > 0) {
          const more = new Uint8Array(Math.min(extra, 64 * 1024)).fill(0x41);
          extra -= more.length;
          this.bytesSent.set(path, (this.bytesSent.get(path) ?? 0) + more.length);
          return ctl.enqueue(more);
        }
        if (pos >= end) return ctl.close();
        if (f?.kind === "cut" && sentHere >= f.afterBytes) {
          // Give the bytes a moment to leave, then drop the connection mid-body.
          await new Promise((r) => setTimeout(r, 20));
          // Ending the stream short of Content-Length makes the server drop the connection.
          ctl.close();
          return;
        }
        if (f?.kind === "stall" && sentHere >= f.afterBytes) {
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, f.ms);
          });
          if (cancelled) return;
        }
        let limit = end - pos;
        if ((f?.kind === "cut" || f?.kind === "stall") && sentHere < f.afterBytes) {
          limit = Math.min(limit, f.afterBytes - sentHere);
        }
        let chunk = slices(content, pos, limit).next().value as Uint8Array;
        if (f?.kind === "wrong-bytes" && f.offset >= pos && f.offset < pos + chunk.length) {
          chunk = chunk.slice();
          chunk[f.offset - pos] ^= 0xff;
        }
        pos += chunk.length;
        sentHere += chunk.length;
        this.bytesSent.set(path, (this.bytesSent.get(path) ?? 0) + chunk.length);
        ctl.enqueue(chunk);
      },
      cancel: () => {
        cancelled = true;
        wake?.();
      },
    }, { highWaterMark: 0 });
    return new Response(body, { status, headers });
  }
}

/** A server with a small repo: two regular files (one in a folder) and two LFS files. */
export function smallRepo(opts: HubServerOptions & { lfsSize?: number } = {}): HubServer {
  const enc = new TextEncoder();
  const lfsSize = opts.lfsSize ?? 300_000;
  return new HubServer({
    files: [
      { path: "config.json", content: enc.encode('{"model_type": "tiny"}\n'), lfs: false },
      { path: "tokenizer/__init__.py", content: new Uint8Array(0), lfs: false },
      { path: "tokenizer/vocab.txt", content: enc.encode("a\nb\nc\n".repeat(1000)), lfs: false },
      { path: "model.safetensors", content: { size: lfsSize, seed: 7 }, lfs: true },
      { path: "transformer/diffusion.bin", content: { size: lfsSize + 12_345, seed: 11 }, lfs: true },
    ],
    ...opts,
  });
}
