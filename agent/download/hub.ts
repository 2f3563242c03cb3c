/**
 * A small client for the Hugging Face Hub's HTTP API: repo ids, tokens, the revision -> commit pin, the
 * recursive tree listing (paged through `Link: <...>; rel="next"`), and the per-file HEAD that reads
 * X-Repo-Commit / X-Linked-Etag / X-Linked-Size / ETag / Location without following a redirect to another
 * host. The token is attached only to requests for the Hub's own origin, never to a CDN a redirect names.
 */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { hfHome } from "../core/paths.ts";

export const DEFAULT_ENDPOINT = "https://huggingface.co";

/** One file of a revision, as the tree API lists it. */
export interface HubFile {
  path: string;
  size: number;
  /** git blob sha1 (the ETag of a regular file). */
  oid: string;
  /** sha256 of an LFS/Xet file (its X-Linked-Etag); absent for regular git files. */
  lfsSha256?: string;
}

/** What a HEAD on /resolve/ says about one file. */
export interface FileMetadata {
  commit: string;
  etag: string;
  size: number;
  /** Where to GET the body: the CDN URL of a cross-host redirect, else the resolve URL. */
  location: string;
}

/** Thrown for HTTP answers; `retriable` marks 5xx/429/network, `retryAfterMs` carries Retry-After. */
export class HubHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly retriable: boolean,
    readonly retryAfterMs?: number,
    readonly errorCode?: string,
  ) {
    super(message);
    this.name = "HubHttpError";
  }
}

const REPO_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$/;

/** Pure: null if `repo` is a valid `owner/name` Hub id, else why not. */
export function validateRepoId(repo: string): string | null {
  const parts = repo.split("/");
  if (parts.length !== 2) return `repo id "${repo}" must be owner/name`;
  if (repo.length > 96) return `repo id "${repo}" is longer than 96 characters`;
  for (const p of parts) {
    if (!REPO_PART.test(p)) return `repo id "${repo}" has an invalid part "${p}"`;
    if (p.includes("--") || p.includes("..")) return `repo id "${repo}" may not contain "--" or ".."`;
  }
  if (repo.endsWith(".git")) return `repo id "${repo}" may not end with ".git"`;
  return null;
}

/** HF_ENDPOINT without a trailing slash, default the public Hub. */
export function hubEndpoint(env: Env): string {
  const e = (env.vars.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, "");
  try {
    new URL(e);
  } catch {
    throw badInput(`HF_ENDPOINT is not a URL: "${e}"`);
  }
  return e;
}

/** HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else HF_TOKEN_PATH / $HF_HOME/token; undefined if none. */
export async function readToken(env: Env): Promise<string | undefined> {
  const fromVar = env.vars.HF_TOKEN || env.vars.HUGGING_FACE_HUB_TOKEN;
  if (fromVar?.trim()) return fromVar.trim();
  const path = env.vars.HF_TOKEN_PATH || `${hfHome(env)}/token`;
  try {
    const t = (await env.fs.readTextFile(path)).trim();
    return t || undefined;
  } catch {
    return undefined;
  }
}

/** Replaces every occurrence of the token in `text` (for logs and JSON). */
export function redact(text: string, token: string | undefined): string {
  return token && token.length >= 4 ? text.split(token).join("hf_***") : text;
}

/** Drops W/ and the quotes, as huggingface_hub does. */
export function normalizeEtag(raw: string | null): string | null {
  if (!raw) return null;
  return raw.replace(/^W\//, "").replace(/^"|"$/g, "");
}

/** Retry-After in ms (seconds or an HTTP date), capped at 10 minutes. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (!value) return undefined;
  const s = Number(value.trim());
  if (Number.isFinite(s) && s >= 0) return Math.min(s * 1000, 600_000);
  const d = Date.parse(value);
  return Number.isNaN(d) ? undefined : Math.min(Math.max(0, d - nowMs), 600_000);
}

/** The URL of `rel="next"` in a Link header, if any. */
export function parseNextLink(link: string | null): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(",")) {
    const m = part.match(/<([^>]+)>\s*;\s*rel="?next"?/);
    if (m) return m[1];
  }
  return undefined;
}

export function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

export class HubClient {
  readonly origin: string;
  /** API calls and HEADs that get no answer within this long are aborted (and retried by the caller). */
  apiTimeoutMs = 60_000;
  constructor(
    readonly env: Env,
    readonly endpoint: string,
    readonly token: string | undefined,
  ) {
    this.origin = new URL(endpoint).origin;
  }

  /** Headers for `url`: the token only when it goes to the Hub's own origin. */
  headersFor(url: string, extra: Record<string, string> = {}): Headers {
    const h = new Headers({ "user-agent": "mlagent", ...extra });
    if (this.token && new URL(url).origin === this.origin) h.set("authorization", `Bearer ${this.token}`);
    return h;
  }

  /**
   * One request with manual redirects: relative/same-origin ones are followed with the token; a redirect to
   * another host is returned as is when `stopAtOtherHost`, else followed without the token.
   */
  async request(
    url: string,
    init: {
      method?: string;
      headers?: Record<string, string>;
      signal?: AbortSignal;
      stopAtOtherHost?: boolean;
      /** Bound the whole exchange, body included, by apiTimeoutMs (not for file bodies: the watchdog does those). */
      bounded?: boolean;
    },
  ): Promise<Response> {
    let current = url;
    const timeout = init.bounded ? AbortSignal.timeout(this.apiTimeoutMs) : undefined;
    const signal = timeout ? (init.signal ? AbortSignal.any([init.signal, timeout]) : timeout) : init.signal;
    for (let hop = 0; hop < 10; hop++) {
      let res: Response;
      try {
        res = await this.env.fetch(current, {
          method: init.method ?? "GET",
          headers: this.headersFor(current, init.headers),
          redirect: "manual",
          signal,
        });
      } catch (e) {
        if (init.signal?.aborted) throw e;
        if (timeout?.aborted) {
          throw new HubHttpError(
            `no answer from ${new URL(current).host} within ${this.apiTimeoutMs} ms`,
            0,
            true,
          );
        }
        const msg = e instanceof Error ? e.message : String(e);
        throw new HubHttpError(
          `network error for ${new URL(current).host}: ${redact(msg, this.token)}`,
          0,
          true,
        );
      }
      if (res.status < 300 || res.status >= 400 || !res.headers.get("location")) return res;
      const next = new URL(res.headers.get("location")!, current).href;
      if (new URL(next).origin !== new URL(current).origin && init.stopAtOtherHost) return res;
      await res.body?.cancel();
      current = next;
    }
    throw new HubHttpError(`too many redirects for ${url}`, 0, false);
  }

  /** Turns a non-2xx answer into a HubHttpError saying what it means for this repo. */
  async explain(res: Response, repo: string, what: string): Promise<HubHttpError> {
    const code = res.headers.get("x-error-code") ?? undefined;
    const serverMsg = res.headers.get("x-error-message") ?? "";
    await res.body?.cancel().catch(() => {});
    const s = res.status;
    const retriable = s >= 500 || s === 429 || s === 408;
    const after = parseRetryAfter(res.headers.get("retry-after"), this.env.now());
    let msg = `${what}: HTTP ${s}${serverMsg ? ` (${serverMsg})` : ""}`;
    if (code === "GatedRepo") {
      msg = `${repo} is a gated repo and this ${
        this.token ? "token has" : "request has no token, so it has"
      } no access`;
    } else if (
      code === "RepoNotFound" || ((s === 401 || s === 404) && code === undefined && what.startsWith("repo"))
    ) {
      msg = `${repo} was not found, or it is private and ${
        this.token ? "this token has no access" : "no token was given"
      }`;
    } else if (code === "RevisionNotFound") {
      msg = `${what}: revision not found in ${repo}`;
    } else if (s === 401 || s === 403) {
      msg = `${what}: HTTP ${s}, ${this.token ? "the token is not allowed" : "a token is required"}${
        serverMsg ? ` (${serverMsg})` : ""
      }`;
    }
    return new HubHttpError(redact(msg, this.token), s, retriable, after, code);
  }

  /** The commit a revision points at: GET /api/models/{repo}/revision/{rev} (sha, or X-Repo-Commit). */
  async resolveCommit(repo: string, revision: string, signal?: AbortSignal): Promise<string> {
    const url = `${this.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
    const res = await this.request(url, { signal, bounded: true });
    if (!res.ok) throw await this.explain(res, repo, `revision "${revision}"`);
    const header = res.headers.get("x-repo-commit");
    let body: { sha?: unknown } = {};
    try {
      body = await res.json();
    } catch {
      // The header alone is enough.
    }
    const sha = typeof body.sha === "string" ? body.sha : header;
    if (!sha || !/^[0-9a-f]{40}$/.test(sha)) {
      throw new HubHttpError(
        `revision "${revision}" of ${repo}: the Hub did not name a commit`,
        res.status,
        false,
      );
    }
    return sha;
  }

  /** Every file of the revision, following pagination. Directory entries are dropped. */
  async listFiles(repo: string, commit: string, signal?: AbortSignal): Promise<HubFile[]> {
    let url: string | undefined = `${this.endpoint}/api/models/${repo}/tree/${
      encodeURIComponent(commit)
    }?recursive=true&expand=false`;
    const out: HubFile[] = [];
    for (let page = 0; url; page++) {
      if (page > 100_000) throw new HubHttpError(`tree listing of ${repo} does not end`, 0, false);
      const res = await this.request(url, { signal, bounded: true });
      if (!res.ok) throw await this.explain(res, repo, `listing files of ${repo}`);
      let entries: unknown;
      try {
        entries = await res.json();
      } catch (e) {
        if (signal?.aborted) throw e;
        // A cut or stalled listing is worth another try; a body that is not JSON is not.
        const cut = !(e instanceof SyntaxError);
        throw new HubHttpError(`tree listing of ${repo}: ${e instanceof Error ? e.message : e}`, 0, cut);
      }
      if (!Array.isArray(entries)) throw new HubHttpError(`tree listing of ${repo} is not a list`, 0, false);
      for (const e of entries as Record<string, unknown>[]) {
        if (e.type !== "file") continue;
        const lfs = e.lfs as { oid?: string; size?: number } | undefined;
        if (typeof e.path !== "string" || typeof e.size !== "number") {
          throw new HubHttpError(`tree listing of ${repo} has a malformed entry`, 0, false);
        }
        out.push({
          path: e.path,
          size: e.size,
          oid: String(e.oid ?? ""),
          ...(lfs?.oid ? { lfsSha256: lfs.oid } : {}),
        });
      }
      const next = parseNextLink(res.headers.get("link"));
      if (next && new URL(next, url).origin !== this.origin) {
        throw new HubHttpError(
          `tree listing of ${repo} pages to another host: ${new URL(next, url).host}`,
          0,
          false,
        );
      }
      url = next ? new URL(next, url).href : undefined;
    }
    return out;
  }

  resolveUrl(repo: string, commit: string, path: string): string {
    return `${this.endpoint}/${repo}/resolve/${encodeURIComponent(commit)}/${encodePath(path)}`;
  }

  /** HEAD on the resolve URL, not following a redirect to the CDN (huggingface_hub's get_hf_file_metadata). */
  async headFile(repo: string, commit: string, path: string, signal?: AbortSignal): Promise<FileMetadata> {
    const url = this.resolveUrl(repo, commit, path);
    const res = await this.request(url, {
      method: "HEAD",
      headers: { "accept-encoding": "identity" },
      signal,
      stopAtOtherHost: true,
      bounded: true,
    });
    await res.body?.cancel().catch(() => {});
    const redirected = res.status >= 300 && res.status < 400;
    if (!res.ok && !redirected) throw await this.explain(res, repo, `file "${path}"`);
    const h = res.headers;
    const commitHeader = h.get("x-repo-commit");
    if (!commitHeader) {
      throw new HubHttpError(`file "${path}": the answer has no X-Repo-Commit; not a Hub?`, 0, false);
    }
    const etag = normalizeEtag(h.get("x-linked-etag") ?? h.get("etag"));
    if (!etag) throw new HubHttpError(`file "${path}": the answer has no ETag`, 0, false);
    const sizeText = h.get("x-linked-size") ?? (redirected ? null : h.get("content-length"));
    const size = sizeText === null ? NaN : Number(sizeText);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new HubHttpError(`file "${path}": the answer has no usable size`, 0, false);
    }
    const loc = h.get("location");
    return { commit: commitHeader, etag, size, location: loc ? new URL(loc, url).href : url };
  }
}
