/**
 * A small client for the Hugging Face Hub's HTTP API: repo ids, tokens, the revision -> commit pin, the
 * recursive tree listing (paged through `Link: <...>; rel="next"`), and the per-file HEAD that reads
 * X-Repo-Commit / X-Linked-Etag / X-Linked-Size / ETag / Location without following a redirect to another
 * host. The token is attached only to requests for the Hub's own origin, never to a CDN a redirect names.
 */
import type { Env } from "../core/env.ts";
import { badInput } from "../core/errors.ts";
import { formatBytes } from "../core/output.ts";
import { hfHome } from "../core/paths.ts";
import { sleep } from "../core/time.ts";
import { classifyFetchError, type ReachFailure } from "../install/reach.ts";

/** A full commit id, as the Hub names one. */
const COMMIT_RE = /^[0-9a-f]{40}$/;

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

/**
 * Thrown for HTTP answers; `retriable` marks 5xx/429/network, `retryAfterMs` carries Retry-After, `reach` what
 * failed when no answer came at all (DNS, connection, TLS, timeout).
 */
export class HubHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly retriable: boolean,
    readonly retryAfterMs?: number,
    readonly errorCode?: string,
    readonly reach?: ReachFailure,
  ) {
    super(message);
    this.name = "HubHttpError";
  }
}

const REPO_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$/;
/** C0 and C1 control characters and DEL: never echoed raw to a terminal or a log. */
// deno-lint-ignore no-control-regex
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/g;
/** Pure: whether `text` holds a control character. */
export const hasControlChar = (text: string) => text.search(CONTROL_CHARS) !== -1;

/**
 * Pure: `text` in double quotes with every control character escaped: JSON.stringify, which leaves DEL, the
 * C1 controls (U+009B is a terminal's CSI) and the Unicode line separators raw, plus those.
 */
export function quote(text: string): string {
  return JSON.stringify(text).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Pure: null if `repo` is a valid `owner/name` Hub id, else why not (the id quoted and escaped). */
export function validateRepoId(repo: string): string | null {
  const q = quote(repo);
  if (hasControlChar(repo)) return `repo id ${q} contains a control character`;
  const parts = repo.split("/");
  if (parts.length !== 2) return `repo id ${q} must be owner/name`;
  if (repo.length > 96) return `repo id ${q} is longer than 96 characters`;
  for (const p of parts) {
    if (!REPO_PART.test(p)) return `repo id ${q} has an invalid part ${quote(p)}`;
    if (p.includes("--") || p.includes("..")) return `repo id ${q} may not contain "--" or ".."`;
  }
  if (repo.endsWith(".git")) return `repo id ${q} may not end with ".git"`;
  return null;
}

/** Pure: null if `revision` can name a branch, tag or commit, else why not (quoted and escaped). */
export function validateRevision(revision: string): string | null {
  const q = quote(revision);
  if (revision === "") return "the revision is empty";
  if (hasControlChar(revision)) return `revision ${q} contains a control character`;
  if (revision.length > 256) return `revision ${q} is longer than 256 characters`;
  return null;
}

/** HF_ENDPOINT without a trailing slash, default the public Hub. */
export function hubEndpoint(env: Env): string {
  const e = (env.vars.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, "");
  let url: URL;
  try {
    url = new URL(e);
  } catch {
    throw badInput(`HF_ENDPOINT is not a URL: ${quote(e)}`, `unset it for ${DEFAULT_ENDPOINT}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw badInput(`HF_ENDPOINT must be an http or https URL, not ${quote(e)}`);
  }
  return e;
}

/**
 * Pure: a token as huggingface_hub cleans it (utils/_auth.py `_clean_token` @ ee0a4510: every CR and LF removed
 * wherever it is, then `str.strip()`), plus a leading byte-order mark, which Windows editors write and hf
 * would send as part of the token. Undefined when nothing is left.
 */
export function cleanToken(raw: string): string | undefined {
  const t = raw.replace(/[\r\n]/g, "").replace(/^\ufeff/, "").replace(PY_SPACE_EDGES, "");
  return t || undefined;
}
/** Python's str.isspace() characters at either end (it counts \x1c-\x1f and \x85, and not the BOM). */
const PY_SPACE_EDGES =
  // deno-lint-ignore no-control-regex
  /^[\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/** Pure: why a cleaned token cannot go into an HTTP header as is (a control or non-ASCII character), or null. */
export function tokenProblem(token: string): string | null {
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c === 0x09 || (c >= 0x20 && c <= 0x7e)) continue;
    const code = `U+${c.toString(16).toUpperCase().padStart(4, "0")}`;
    return `character ${i + 1} is ${code}, which ${
      c < 0x20 || c === 0x7f ? "is a control character" : "is not ASCII"
    }`;
  }
  return null;
}

/**
 * The token as huggingface_hub finds it (utils/_auth.py `get_token` @ ee0a4510): HF_TOKEN, else the older
 * HUGGING_FACE_HUB_TOKEN, else the file HF_TOKEN_PATH (default $HF_HOME/token); each cleaned as `cleanToken`
 * says, and one that is empty after cleaning falls through to the next. Undefined when there is none. A token
 * an HTTP header cannot carry, or a token file that exists but cannot be read, is bad input naming where it
 * came from: never sent, never retried as a network error.
 */
export async function readToken(env: Env): Promise<string | undefined> {
  const name = env.vars.HF_TOKEN ? "HF_TOKEN" : "HUGGING_FACE_HUB_TOKEN";
  const fromVar = cleanToken(env.vars[name] ?? "");
  if (fromVar) return checkedToken(fromVar, `the variable ${name}`);
  const path = env.vars.HF_TOKEN_PATH || `${hfHome(env)}/token`;
  let text: string;
  try {
    text = await env.fs.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw badInput(
      `cannot read the Hugging Face token file ${path}: ${e instanceof Error ? e.message : e}`,
      "fix the file (or its permissions), or set HF_TOKEN / HF_TOKEN_PATH",
    );
  }
  const t = cleanToken(text);
  return t ? checkedToken(t, `the token file ${path}`) : undefined;
}

function checkedToken(token: string, where: string): string {
  const why = tokenProblem(token);
  if (!why) return token;
  // The token itself is never echoed: only where it came from and which character is wrong.
  throw badInput(
    `the Hugging Face token in ${where} cannot be sent in an HTTP header: ${why}`,
    "save the token again as one line of plain text (e.g. `hf auth login`), or set HF_TOKEN",
  );
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

/** What the words of a ReachFailure are in a message. */
const REACH_SAYS: Record<ReachFailure, string> = {
  dns: "DNS lookup failed",
  connection: "the connection was refused or dropped",
  tls: "the TLS handshake failed",
  timeout: "no answer in time",
  http: "the server answered with an error",
};
export const reachWords = (r: ReachFailure) => REACH_SAYS[r];

/** What to check when the Hub could not be reached at all, by what failed. */
export function networkHint(reach: ReachFailure, endpoint: string): string {
  const where = reach === "dns"
    ? "the host name and the node's DNS"
    : reach === "tls"
    ? "the node's CA certificates (SSL_CERT_FILE) or the proxy's certificate"
    : reach === "timeout"
    ? "the network, the proxy (HTTPS_PROXY) or a firewall"
    : "that the host answers on that port, and the proxy (HTTPS_PROXY)";
  return `${
    reachWords(reach)
  }: check HF_ENDPOINT (now ${endpoint}) and ${where}; on a node without network, ` +
    "HF_HUB_OFFLINE=1 checks and uses the files already on disk";
}

/**
 * Pure: why a redirect from `from` to `to` may not be followed, or null. Only http and https are fetched (a
 * `file:` or `data:` Location would copy a local file or a made-up body into the model), and a redirect never
 * leaves https for plain http.
 */
export function redirectProblem(from: string, to: string): string | null {
  let target: URL;
  try {
    target = new URL(to, from);
  } catch {
    return `a Location that is not a URL: ${quote(to)}`;
  }
  if (target.protocol !== "http:" && target.protocol !== "https:") {
    return `a redirect to a ${quote(target.protocol.slice(0, -1))} URL (only http and https are followed)`;
  }
  if (new URL(from).protocol === "https:" && target.protocol === "http:") {
    return `a redirect from https to plain http (${target.host})`;
  }
  return null;
}

/** errorCode of a HubHttpError for a redirect (or a location) that is not followed. */
export const REFUSED_REDIRECT = "mlagent:RefusedRedirect";

/** The most one API answer (a revision, one page of a listing) may be: an endless answer is cut here. */
export const API_BODY_MAX_BYTES = 64 * 1024 * 1024;
/** The most all pages of one listing may be together. */
export const LISTING_MAX_BYTES = 256 * 1024 * 1024;

/** What a request to the Hub may say: its method, headers, abort signal, and whether to stop at another host. */
interface HubRequestInit {
  method?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  stopAtOtherHost?: boolean;
}

export class HubClient {
  readonly origin: string;
  /** API calls and HEADs that get no answer within this long are aborted (and retried by the caller). */
  apiTimeoutMs = 60_000;
  apiBodyMaxBytes = API_BODY_MAX_BYTES;
  listingMaxBytes = LISTING_MAX_BYTES;
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
   * another host is returned as is when `stopAtOtherHost`, else followed without the token. Only http(s)
   * URLs are requested, and https is never left for http (redirectProblem).
   */
  async request(
    url: string,
    init: HubRequestInit & {
      /** Bound the whole exchange, body included, by apiTimeoutMs (not for file bodies: the watchdog does those). */
      bounded?: boolean;
      /** Bound only the wait for the answer's headers by apiTimeoutMs (a file's GET: its body has the watchdog). */
      boundedHeaders?: boolean;
    },
  ): Promise<Response> {
    const first = redirectProblem(url, url);
    if (first) {
      throw new HubHttpError(
        `refused to fetch ${redactUrl(url)}: ${first}`,
        0,
        false,
        undefined,
        REFUSED_REDIRECT,
      );
    }
    // The headers' deadline is dropped once they are in: the body is the transfer watchdog's.
    const headersIn = new AbortController();
    let timeout: AbortSignal | undefined;
    if (init.bounded) timeout = AbortSignal.timeout(this.apiTimeoutMs);
    else if (init.boundedHeaders) {
      const ctl = new AbortController();
      sleep(this.apiTimeoutMs, headersIn.signal).then(() => headersIn.signal.aborted || ctl.abort());
      timeout = ctl.signal;
    }
    const signal = timeout ? (init.signal ? AbortSignal.any([init.signal, timeout]) : timeout) : init.signal;
    try {
      return await this.follow(url, init, signal, timeout);
    } finally {
      headersIn.abort();
    }
  }

  private async follow(
    url: string,
    init: HubRequestInit,
    signal: AbortSignal | undefined,
    timeout: AbortSignal | undefined,
  ): Promise<Response> {
    let current = url;
    for (let hop = 0; hop < 10; hop++) {
      // Built outside the try: a header the HTTP layer refuses is not a network error to retry.
      const headers = this.headersFor(current, init.headers);
      let res: Response;
      try {
        res = await this.env.fetch(current, {
          method: init.method ?? "GET",
          headers,
          redirect: "manual",
          signal,
        });
      } catch (e) {
        if (init.signal?.aborted) throw e;
        const host = new URL(current).host;
        if (timeout?.aborted) {
          throw new HubHttpError(
            `no answer from ${host} within ${this.apiTimeoutMs} ms`,
            0,
            true,
            undefined,
            undefined,
            "timeout",
          );
        }
        const msg = e instanceof Error ? `${e.message}${e.cause ? ` (${e.cause})` : ""}` : String(e);
        const reach = classifyFetchError(e, msg);
        throw new HubHttpError(
          `cannot reach ${host}: ${REACH_SAYS[reach]} (${redact(msg, this.token)})`,
          0,
          true,
          undefined,
          undefined,
          reach,
        );
      }
      if (res.status < 300 || res.status >= 400 || !res.headers.get("location")) return res;
      const location = res.headers.get("location")!;
      const bad = redirectProblem(current, location);
      if (bad) {
        await res.body?.cancel().catch(() => {});
        throw new HubHttpError(
          `${new URL(current).host} answered with ${bad}; refused`,
          res.status,
          false,
          undefined,
          REFUSED_REDIRECT,
        );
      }
      const next = new URL(location, current).href;
      if (new URL(next).origin !== new URL(current).origin && init.stopAtOtherHost) return res;
      await res.body?.cancel().catch(() => {});
      current = next;
    }
    throw new HubHttpError(`too many redirects for ${url}`, 0, false);
  }

  /**
   * The body of an API answer as JSON, read as a stream and cut at `max` bytes: an answer that never ends
   * costs at most that much memory and fails naming the URL.
   */
  async readJson(
    res: Response,
    url: string,
    max: number,
    what: string,
  ): Promise<{ value: unknown; bytes: number }> {
    const tooBig = () =>
      new HubHttpError(
        `${what}: the answer from ${redactUrl(url)} is larger than ${formatBytes(max)}; refused`,
        0,
        false,
      );
    const announced = Number(res.headers.get("content-length") ?? NaN);
    if (announced > max) {
      await res.body?.cancel().catch(() => {});
      throw tooBig();
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    if (res.body) {
      const reader = res.body.getReader();
      try {
        while (true) {
          const { done, value } = await reader.read();
          if (done) break;
          total += value.length;
          if (total > max) throw tooBig();
          chunks.push(value);
        }
      } finally {
        reader.cancel().catch(() => {});
      }
    }
    const all = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return { value: JSON.parse(new TextDecoder().decode(all)), bytes: total };
  }

  /** Turns a non-2xx answer into a HubHttpError saying what it means for this repo. */
  async explain(res: Response, repo: string, what: string): Promise<HubHttpError> {
    const code = res.headers.get("x-error-code") ?? undefined;
    const serverMsg = (res.headers.get("x-error-message") ?? "").replace(CONTROL_CHARS, " ");
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

  /**
   * The commit a revision points at, and that commit's files. A revision that is already a commit (a pinned
   * profile's) is listed while the Hub confirms it: one round trip less to a Hub far away. The listing goes
   * through `retried` (the download's retries, logged and counted) exactly as a listing asked afterwards
   * would; the revision's answer still decides, and its error is the one reported when both fail. An early
   * listing for a commit the Hub does not confirm is stopped and asked again for the commit it names.
   */
  async resolveAndList(
    repo: string,
    revision: string,
    retried: <T>(what: string, f: () => Promise<T>, signal?: AbortSignal) => Promise<T> = (_what, f) => f(),
  ): Promise<{ commit: string; files: HubFile[] }> {
    // The signal stops the request and the retries' waits both: nothing of a dropped listing outlives it.
    const list = (commit: string, signal?: AbortSignal) =>
      retried("file listing", () => this.listFiles(repo, commit, signal), signal);
    const earlyStop = new AbortController();
    const early = COMMIT_RE.test(revision) ? list(revision, earlyStop.signal) : null;
    // Its failure is read below, or dropped with it: never an unhandled rejection meanwhile.
    early?.catch(() => {});
    let commit: string;
    try {
      commit = await retried(`revision ${revision}`, () => this.resolveCommit(repo, revision));
    } catch (e) {
      earlyStop.abort();
      throw e;
    }
    if (early && commit === revision) return { commit, files: await early };
    earlyStop.abort();
    return { commit, files: await list(commit) };
  }

  /** The commit a revision points at: GET /api/models/{repo}/revision/{rev} (sha, or X-Repo-Commit). */
  async resolveCommit(repo: string, revision: string, signal?: AbortSignal): Promise<string> {
    const url = `${this.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
    const res = await this.request(url, { signal, bounded: true });
    if (!res.ok) throw await this.explain(res, repo, `revision ${quote(revision)}`);
    const header = res.headers.get("x-repo-commit");
    let body: { sha?: unknown } = {};
    try {
      const { value } = await this.readJson(res, url, this.apiBodyMaxBytes, `revision ${quote(revision)}`);
      if (value && typeof value === "object") body = value as { sha?: unknown };
    } catch (e) {
      if (e instanceof HubHttpError || signal?.aborted) throw e;
      // A body that is not JSON: the header alone is enough.
    }
    const sha = typeof body.sha === "string" ? body.sha : header;
    if (!sha || !COMMIT_RE.test(sha)) {
      throw new HubHttpError(
        `revision ${quote(revision)} of ${repo}: the Hub did not name a commit`,
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
    let budget = this.listingMaxBytes;
    for (let page = 0; url; page++) {
      if (page > 100_000) throw new HubHttpError(`tree listing of ${repo} does not end`, 0, false);
      const res = await this.request(url, { signal, bounded: true });
      if (!res.ok) throw await this.explain(res, repo, `listing files of ${repo}`);
      let entries: unknown;
      const max = Math.min(this.apiBodyMaxBytes, budget);
      try {
        const what = max < this.apiBodyMaxBytes
          ? `tree listing of ${repo} (at most ${formatBytes(this.listingMaxBytes)} over all pages)`
          : `tree listing of ${repo}`;
        const read = await this.readJson(res, url, max, what);
        entries = read.value;
        budget -= read.bytes;
      } catch (e) {
        if (e instanceof HubHttpError || signal?.aborted) throw e;
        // A cut or stalled listing is worth another try; a body that is not JSON is not.
        const cut = !(e instanceof SyntaxError);
        throw new HubHttpError(`tree listing of ${repo}: ${e instanceof Error ? e.message : e}`, 0, cut);
      }
      if (!Array.isArray(entries)) throw new HubHttpError(`tree listing of ${repo} is not a list`, 0, false);
      for (const e of entries as Record<string, unknown>[]) {
        if (e?.type !== "file") continue;
        const lfs = e.lfs as { oid?: string; size?: number } | undefined;
        if (typeof e.path !== "string" || !Number.isSafeInteger(e.size) || (e.size as number) < 0) {
          throw new HubHttpError(`tree listing of ${repo} has a malformed entry`, 0, false);
        }
        out.push({
          path: e.path,
          size: e.size as number,
          oid: String(e.oid ?? ""),
          ...(typeof lfs?.oid === "string" ? { lfsSha256: lfs.oid } : {}),
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
    return await this.metadataOf(res, url, repo, path);
  }

  /**
   * GET on the resolve URL, not following a redirect to the CDN: the Hub answers it with the headers it gives
   * the HEAD (the same checks read them, metadataOf), so a fresh file costs no round trip of its own for
   * them. A regular file's answer carries its body (`body`, to be read or cancelled by the caller); an LFS
   * file's is the redirect, whose location the body is then fetched from. Only the wait for the headers is
   * bounded by apiTimeoutMs; the body has the transfer's watchdog.
   */
  async openFile(
    repo: string,
    commit: string,
    path: string,
    signal?: AbortSignal,
  ): Promise<{ meta: FileMetadata; body?: Response }> {
    const url = this.resolveUrl(repo, commit, path);
    const res = await this.request(url, {
      headers: { "accept-encoding": "identity" },
      signal,
      stopAtOtherHost: true,
      boundedHeaders: true,
    });
    const redirected = res.status >= 300 && res.status < 400;
    if (res.ok && !res.headers.has("content-length") && !res.headers.has("x-linked-size")) {
      // A body sent without its length (chunked by a proxy): the HEAD says the size, as it always did.
      await res.body?.cancel().catch(() => {});
      return { meta: await this.headFile(repo, commit, path, signal) };
    }
    let meta: FileMetadata;
    try {
      meta = await this.metadataOf(res, url, repo, path);
    } catch (e) {
      await res.body?.cancel().catch(() => {});
      throw e;
    }
    if (redirected || !res.body) {
      await res.body?.cancel().catch(() => {});
      return { meta };
    }
    return { meta, body: res };
  }

  /** What a resolve answer (a HEAD's or a GET's) says about the file; an error answer is explained. */
  private async metadataOf(res: Response, url: string, repo: string, path: string): Promise<FileMetadata> {
    const redirected = res.status >= 300 && res.status < 400;
    const name = quote(path);
    if (!res.ok && !redirected) throw await this.explain(res, repo, `file ${name}`);
    const h = res.headers;
    const commitHeader = h.get("x-repo-commit");
    if (!commitHeader) {
      throw new HubHttpError(`file ${name}: the answer has no X-Repo-Commit; not a Hub?`, 0, false);
    }
    const etag = normalizeEtag(h.get("x-linked-etag") ?? h.get("etag"));
    if (!etag) throw new HubHttpError(`file ${name}: the answer has no ETag`, 0, false);
    const sizeText = h.get("x-linked-size") ?? (redirected ? null : h.get("content-length"));
    const size = sizeText === null ? NaN : Number(sizeText);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new HubHttpError(`file ${name}: the answer has no usable size`, 0, false);
    }
    const loc = h.get("location");
    const bad = loc ? redirectProblem(url, loc) : null;
    if (bad) {
      throw new HubHttpError(
        `file ${name}: the Hub answered with ${bad}; refused`,
        res.status,
        false,
        undefined,
        REFUSED_REDIRECT,
      );
    }
    return { commit: commitHeader, etag, size, location: loc ? new URL(loc, url).href : url };
  }
}

/** A URL for a message: the query (signed CDN links carry credentials there) dropped. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? "?…" : ""}`;
  } catch {
    return quote(url);
  }
}
