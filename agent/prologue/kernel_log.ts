/**
 * NVIDIA Xid errors from the kernel log. The driver logs `NVRM: Xid (PCI:0000:3b:00): 79, pid=..., ...` for
 * every GPU fault; a node whose GPU fell off the bus minutes ago should not take the next job even if
 * nvidia-smi still answers. Parsing is pure (dmesg, `dmesg --time-format iso`, `journalctl -k -o short-iso`
 * and /dev/kmsg records); gathering tries each reader with a timeout, since dmesg is often restricted.
 */
import type { Env } from "../core/env.ts";

export interface XidEvent {
  /** When it was logged (ms since the epoch); null when the line carries no usable time. */
  time_ms: number | null;
  pci: string;
  code: number;
  /** The rest of the line after the code. */
  detail: string;
}

export type XidSeverity = "node" | "application" | "unknown";

/**
 * What an Xid says about the node, from NVIDIA's Xid catalogue: application faults (13 graphics exception,
 * 31 MMU fault, 43 stopped processing, 45 preemptive cleanup) and contained/recorded memory events (63 row
 * remapping recorded, 94 contained ECC) leave the GPU usable; the rest here mean the GPU or its memory needs
 * an admin (48 double-bit ECC, 61/62 internal errors, 64 remapping failure, 74 NVLink, 79 off the bus, 92 high
 * single-bit rate, 95 uncontained ECC, 119/120 GSP timeouts, 140 unrecovered ECC).
 */
export function xidSeverity(code: number): XidSeverity {
  if ([13, 31, 43, 45, 63, 94].includes(code)) return "application";
  if ([48, 61, 62, 64, 74, 79, 92, 95, 119, 120, 140].includes(code)) return "node";
  return "unknown";
}

const XID = /NVRM: Xid \(([^)]*)\): (\d+)(?:,\s*(.*))?$/;

/** ISO times as dmesg (`2024-01-02T03:04:05,123456+00:00`) and journalctl (`...+0000`) print them. */
function parseIsoPrefix(s: string): number | null {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:?\d{2})?/.exec(s);
  if (!m) return null;
  const frac = m[2] ? `.${m[2].slice(0, 3).padEnd(3, "0")}` : "";
  let zone = m[3] ?? "Z";
  if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const t = Date.parse(`${m[1]}${frac}${zone}`);
  return Number.isFinite(t) ? t : null;
}

/**
 * Every Xid line in `text`. Monotonic stamps (`[ 1234.5]`, /dev/kmsg's microseconds) become wall times via
 * `bootMs` (now minus uptime); without it they stay null.
 */
export function parseXidLines(text: string, bootMs: number | null = null): XidEvent[] {
  const out: XidEvent[] = [];
  for (const line of text.split("\n")) {
    const m = XID.exec(line);
    if (!m) continue;
    let time: number | null = null;
    const kmsg = /^\d+,\d+,(\d+),[^;]*;/.exec(line);
    const mono = /^\[\s*(\d+\.\d+)\]/.exec(line);
    if (kmsg) time = bootMs === null ? null : bootMs + Math.round(Number(kmsg[1]) / 1000);
    else if (mono) time = bootMs === null ? null : bootMs + Math.round(Number(mono[1]) * 1000);
    else time = parseIsoPrefix(line.trimStart());
    out.push({
      time_ms: time,
      pci: m[1].replace(/^PCI:/, ""),
      code: Number(m[2]),
      detail: (m[3] ?? "").trim(),
    });
  }
  return out;
}

export interface KernelLogFacts {
  /** Which reader answered ("dmesg", "journalctl"), or null when none could read the log. */
  source: string | null;
  /** Xids within the window (those without a time count as recent: better a false alarm than a bad node). */
  recent: XidEvent[];
  window_s: number;
  /** Why the log could not be read, or which reader timed out. */
  problem: string | null;
  timed_out: boolean;
}

/** Seconds since boot from /proc/uptime. */
export async function readUptimeS(env: Env): Promise<number | null> {
  try {
    const n = Number((await env.fs.readTextFile(`${env.procRoot}/uptime`)).split(/\s+/)[0]);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/**
 * Reads Xids of the last `windowS` seconds: `dmesg --time-format iso`, then plain `dmesg` (old util-linux),
 * then `journalctl -k` (where dmesg_restrict hides the ring buffer from users). Each read has `timeoutMs`.
 */
export async function gatherXids(env: Env, windowS: number, timeoutMs: number): Promise<KernelLogFacts> {
  const now = env.now();
  const uptime = await readUptimeS(env);
  const bootMs = uptime === null ? null : now - Math.round(uptime * 1000);
  const since = Math.floor((now - windowS * 1000) / 1000);
  const readers: [string, string[]][] = [
    ["dmesg", ["dmesg", "--time-format", "iso"]],
    ["dmesg", ["dmesg"]],
    ["journalctl", ["journalctl", "-k", "--since", `@${since}`, "-o", "short-iso", "--no-pager", "-q"]],
  ];
  const problems: string[] = [];
  let timedOut = false;
  for (const [source, argv] of readers) {
    const r = await env.run(argv, { timeoutMs });
    if (r.kind === "not-found") {
      problems.push(`${argv[0]} not found`);
      continue;
    }
    if (r.kind === "timed-out") {
      timedOut = true;
      problems.push(`${argv.join(" ")} did not answer within ${r.afterMs} ms`);
      continue;
    }
    if (r.code !== 0) {
      problems.push(
        `${argv.join(" ")}: exit ${r.code}${r.stderr.trim() ? ` (${r.stderr.trim().split("\n")[0]})` : ""}`,
      );
      continue;
    }
    const cutoff = now - windowS * 1000;
    const recent = parseXidLines(r.stdout, bootMs).filter((e) => e.time_ms === null || e.time_ms >= cutoff);
    return { source, recent, window_s: windowS, problem: null, timed_out: false };
  }
  return { source: null, recent: [], window_s: windowS, problem: problems.join("; "), timed_out: timedOut };
}
