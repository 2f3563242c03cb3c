/** Which filesystem a path lives on, from /proc/self/mountinfo: network filesystems break flock and hard links. */
import type { Env } from "./env.ts";
import { selfAndParents } from "./paths.ts";
import { LEAF } from "./run.ts";

export const NETWORK_FS_TYPES = new Set([
  "nfs",
  "nfs4",
  "lustre",
  "gpfs",
  "beegfs",
  "cifs",
  "smb3",
  "smbfs",
  "fuse.sshfs",
  "ceph",
  "fuse.ceph",
  "glusterfs",
  "fuse.glusterfs",
  "panfs",
  "afs",
  "9p",
  "wekafs",
  "fuse.juicefs",
]);

export interface Mount {
  id: number;
  /** major:minor of the device; two paths on the same device can hard-link. */
  device: string;
  mountPoint: string;
  fsType: string;
  source: string;
  network: boolean;
}

/** Parses mountinfo (proc(5)); octal escapes in paths (\040 for space) are decoded. */
export function parseMountInfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const right = line.slice(sep + 3).split(" ");
    const fsType = right[0] ?? "";
    mounts.push({
      id: Number(left[0]),
      device: left[2] ?? "",
      mountPoint: unescapeOctal(left[4] ?? ""),
      fsType,
      source: unescapeOctal(right[1] ?? ""),
      network: isNetworkFs(fsType),
    });
  }
  return mounts;
}

export function isNetworkFs(fsType: string): boolean {
  return NETWORK_FS_TYPES.has(fsType) || fsType.startsWith("nfs");
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

export function readMounts(env: Env): Mount[] {
  try {
    return parseMountInfo(env.fs.readTextFileSync(`${env.procRoot}/self/mountinfo`));
  } catch {
    return [];
  }
}

/** The mount a path lives on (the longest mount point that prefixes it; later mounts shadow earlier ones). */
export function mountOf(mounts: Mount[], absPath: string): Mount | null {
  let best: Mount | null = null;
  for (const m of mounts) {
    const mp = m.mountPoint;
    const covers = mp === "/" || absPath === mp || absPath.startsWith(mp.endsWith("/") ? mp : mp + "/");
    if (covers && (!best || mp.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/**
 * The mount for a path that may not exist yet: resolves the nearest existing ancestor through symlinks.
 * MLAGENT_FORCE_NETWORK_FS (colon-separated path prefixes) marks paths as network-backed, for tests and
 * for sites whose network filesystem mountinfo does not reveal (e.g. a FUSE overlay).
 */
export function mountForPath(env: Env, path: string, mounts = readMounts(env)): Mount | null {
  let p = path;
  let real = p;
  for (;;) {
    try {
      real = env.fs.realPathSync(p);
      break;
    } catch {
      const up = p.slice(0, p.lastIndexOf("/")) || "/";
      if (up === p) break;
      real = p = up;
    }
  }
  const m = mountOf(mounts, real);
  const forced = (env.vars.MLAGENT_FORCE_NETWORK_FS ?? "").split(":").filter(Boolean);
  if (forced.some((f) => path === f || path.startsWith(f.endsWith("/") ? f : f + "/"))) {
    return {
      ...(m ?? { id: -1, device: "forced", mountPoint: path, source: "forced" }),
      fsType: m?.fsType ?? "unknown",
      network: true,
    };
  }
  return m;
}

export function sameFilesystem(a: Mount | null, b: Mount | null): boolean {
  return !!a && !!b && a.device === b.device;
}

/**
 * Asks a `stat` child about a path and each of its parents, as the checks then stat them in process (the
 * trust check walks the same selfAndParents); true when it answered in time, existing or not. A walk down to the path does
 * not ask the server for its parents' attributes: a dead mount's own root may hang a stat while a name
 * below it still answers from the client's cache.
 */
export async function pathAnswers(env: Env, path: string, timeoutMs: number): Promise<boolean> {
  const r = await env.run(["stat", "-c", "%F", "--", ...selfAndParents(path)], { ...LEAF, timeoutMs });
  return r.kind !== "timed-out";
}
