/**
 * Room for everything an install will write, judged before the first byte: the venv and the installer cache
 * (the profile's disk_gib) and the models still to fetch (their sizes from the Hub's listing of the pinned
 * revision, or the profile's size_gib when offline or the Hub does not answer). Places on one filesystem
 * share its free space, so their needs add up. A shortfall names the place, what needs it and by how much.
 */
import { gatherDisk } from "../../checks/disk.ts";
import type { Env } from "../core/env.ts";
import { failed } from "../core/errors.ts";
import { formatBytes } from "../core/output.ts";
import { filterPaths, verifyLocalModel } from "../download/mod.ts";
import { HubClient, hubEndpoint, readToken } from "../download/hub.ts";
import type { ModelSpec } from "../profiles/types.ts";
import type { InstallPlan } from "./types.ts";

const GIB = 1024 ** 3;

export interface ModelNeed {
  repo: string;
  local_dir: string;
  /** Bytes still to fetch; null when neither the Hub nor the profile says. */
  bytes: number | null;
  /** Where the size came from. */
  source: "present" | "hub" | "profile" | "unknown";
}

export interface SpaceShortfall {
  /** What needs the room: "models", "venv and cache". */
  roles: string[];
  mount_point: string;
  need_bytes: number;
  free_bytes: number;
  short_bytes: number;
}

const offline = (env: Env) =>
  ["1", "on", "yes", "true"].includes((env.vars.HF_HUB_OFFLINE ?? "").toLowerCase());

/** What one model still needs on disk: nothing when complete, else its listed size less what is there. */
export async function modelNeed(
  env: Env,
  spec: ModelSpec,
  target: InstallPlan["models"][number],
): Promise<ModelNeed> {
  const base = { repo: target.repo, local_dir: target.local_dir };
  const have = await verifyLocalModel(env, {
    repo: target.repo,
    revision: target.revision,
    ...(target.layout === "hub-cache" ? { layout: target.layout } : { localDir: target.local_dir }),
    requiredFiles: spec.required_files,
    include: spec.include,
    exclude: spec.exclude,
  }).catch(() => null);
  if (have?.complete) return { ...base, bytes: 0, source: "present" };
  const present = have?.bytes ?? 0;
  const hint = spec.size_gib !== undefined
    ? { ...base, bytes: Math.max(0, spec.size_gib * GIB - present), source: "profile" as const }
    : { ...base, bytes: null, source: "unknown" as const };
  if (offline(env)) return hint;
  try {
    const client = new HubClient(env, hubEndpoint(env), await readToken(env));
    client.apiTimeoutMs = 15_000;
    const { files: listed } = await client.resolveAndList(target.repo, target.revision);
    const keep = new Set([
      ...filterPaths(listed.map((f) => f.path), spec.include, spec.exclude),
      ...(spec.required_files ?? []),
    ]);
    const total = listed.filter((f) => keep.has(f.path)).reduce((n, f) => n + f.size, 0);
    return { ...base, bytes: Math.max(0, total - present), source: "hub" };
  } catch (e) {
    // The fetch itself will report the Hub's failure with its own words; the size is only a forecast.
    env.log.debug(
      `model ${target.repo}: no listing for the space check (${e instanceof Error ? e.message : e})`,
    );
    return hint;
  }
}

/**
 * Throws `failed` (nothing written yet) when a filesystem cannot hold what goes on it. `venvAndCache` is
 * whether stages will run (the profile's disk_gib counts then), `models` what the models still need.
 */
export async function requireSpace(
  env: Env,
  plan: InstallPlan,
  { venvAndCache, models }: { venvAndCache: boolean; models: ModelNeed[] },
): Promise<void> {
  const places: { role: string; path: string; bytes: number }[] = [];
  if (venvAndCache) {
    places.push({ role: "venv and cache", path: plan.venvDir, bytes: plan.profile.disk_gib * GIB });
  }
  for (const m of models) {
    if (m.bytes) places.push({ role: `model ${m.repo}`, path: m.local_dir, bytes: m.bytes });
  }
  if (!places.length) return;
  const disk = await gatherDisk(env, places.map((p) => ({ role: p.role, path: p.path })));
  const byMount = new Map<string, { roles: string[]; need: number; free: number }>();
  disk.places.forEach((d, i) => {
    if (d.available_bytes === null || d.mount_point === null) return;
    const m = byMount.get(d.mount_point) ?? { roles: [], need: 0, free: d.available_bytes };
    m.roles.push(places[i].role);
    m.need += places[i].bytes;
    byMount.set(d.mount_point, m);
  });
  const short: SpaceShortfall[] = [...byMount].filter(([, m]) => m.need > m.free).map(([mount, m]) => ({
    roles: m.roles,
    mount_point: mount,
    need_bytes: m.need,
    free_bytes: m.free,
    short_bytes: m.need - m.free,
  }));
  if (!short.length) return;
  const say = short.map((s) =>
    `${s.roles.join(" and ")} need ${formatBytes(s.need_bytes)} on ${s.mount_point}, ${
      formatBytes(s.free_bytes)
    } free (${formatBytes(s.short_bytes)} short)`
  );
  throw failed(
    `install ${plan.profile.name}: not enough free space (nothing was written): ${say.join("; ")}`,
    "free space there, or point MLAGENT_MODELS_DIR / MLAGENT_ROOT / MLAGENT_CACHE_DIR at a larger filesystem; " +
      "--no-models installs the venv alone",
    { space: short },
  );
}
