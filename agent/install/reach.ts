/** Whether the package indexes answer, asked before anything is written; and the network retry policy installs share. */
import { canonicalName } from "../core/pep503.ts";
import type { Env } from "../core/env.ts";
import { failed } from "../core/errors.ts";
import type { Stage } from "../profiles/types.ts";
import type { NetworkDetail } from "./classify.ts";
import { backoffDelayMs, retry } from "../core/retry.ts";
import type { InstallPlan, PlannedStage } from "./types.ts";
import { numberVar } from "../core/vars.ts";

export type ReachFailure = "dns" | "connection" | "tls" | "timeout" | "http";

/** Fetches the index page of one project: null when reachable (any answer below 500), else what failed. */
export async function probeIndex(
  env: Env,
  indexUrl: string,
  project: string,
  timeoutMs = 15_000,
): Promise<{ kind: ReachFailure; message: string } | null> {
  if (!/^https?:\/\//.test(indexUrl)) return null;
  const url = `${indexUrl.replace(/\/+$/, "")}/${canonicalName(project)}/`;
  try {
    const res = await env.fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    if (res.status >= 500 || res.status === 429) {
      return { kind: "http", message: `${url} answered HTTP ${res.status}` };
    }
    return null;
  } catch (e) {
    const msg = e instanceof Error ? `${e.message}${e.cause ? ` (${e.cause})` : ""}` : String(e);
    return { kind: classifyFetchError(e, msg), message: `${url}: ${msg}` };
  }
}

export function classifyFetchError(e: unknown, msg: string): ReachFailure {
  if (e instanceof DOMException && (e.name === "TimeoutError" || e.name === "AbortError")) return "timeout";
  if (
    /dns error|failed to lookup|name or service not known|no such host|nodename nor servname|getaddrinfo/i
      .test(msg)
  ) {
    return "dns";
  }
  if (/certificate|tls|ssl|handshake|UnknownIssuer/i.test(msg)) return "tls";
  if (/timed? ?out/i.test(msg)) return "timeout";
  return "connection";
}

export const REACH_DETAIL: Record<ReachFailure, NetworkDetail> = {
  dns: "dns",
  connection: "connect",
  tls: "tls",
  timeout: "timeout",
  http: "http-5xx",
};

const REACH_WORDS: Record<ReachFailure, string> = {
  dns: "DNS lookup failed",
  connection: "the connection failed",
  tls: "the TLS handshake failed",
  timeout: "no answer in time",
  http: "the server answered with an error",
};

/** Every http(s) index the pending stages use answers; transient failures are retried with backoff. */
export async function checkIndexes(env: Env, plan: InstallPlan, stages: PlannedStage[]): Promise<void> {
  const seen = new Set<string>();
  for (const st of stages) {
    const stage = plan.profile.stages.find((s) => s.name === st.name)!;
    const project = firstProject(stage);
    for (const idx of st.indexes) {
      if (seen.has(idx) || !project) continue;
      seen.add(idx);
      const last = await retry(async () => {
        const bad = await probeIndex(env, idx, project);
        if (bad) throw bad;
        return null;
      }, {
        maxAttempts: NETWORK_ATTEMPTS,
        sleep: env.sleep,
        random: env.random,
        baseMs: retryBaseMs(env),
        onRetry: (e, n, ms) =>
          env.log.warn(
            `index ${idx}: ${(e as { message: string }).message}; attempt ${
              n + 1
            }/${NETWORK_ATTEMPTS} in ${ms} ms`,
          ),
      }).catch((e: { kind: ReachFailure; message: string }) => e);
      if (last) {
        throw failed(
          `cannot reach the package index ${idx}: ${REACH_WORDS[last.kind]} (${last.message})`,
          last.kind === "dns"
            ? "check the host name and the node's DNS; on an isolated node set MLAGENT_INDEX_URL to the site mirror"
            : last.kind === "tls"
            ? "check the node's CA bundle (SSL_CERT_FILE, PIP_CERT) or the proxy's certificate"
            : last.kind === "http"
            ? "The index is failing; try again later or set MLAGENT_INDEX_URL to a mirror"
            : "check the network or proxy (HTTPS_PROXY); on an isolated node set MLAGENT_INDEX_URL to the site mirror",
          { stage: st.name, index_url: idx, reach_failure: last.kind },
        );
      }
    }
  }
}

function firstProject(stage: Stage): string | null {
  for (const p of stage.packages) {
    const m = p.match(/^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==|>=|<=|~=|!=|<|>|$)/);
    if (m && !p.includes("@")) return m[1];
  }
  return null;
}

export const NETWORK_ATTEMPTS = 3;

/** Full-jitter exponential backoff (agent/retry.ts); MLAGENT_RETRY_BASE_MS sets the first ceiling. */
export function backoffMs(env: Env, attempt: number): number {
  return backoffDelayMs(attempt, { baseMs: retryBaseMs(env), random: env.random });
}

function retryBaseMs(env: Env): number {
  return numberVar(env, "MLAGENT_RETRY_BASE_MS", 1000);
}
