/**
 * Real node files for `mlagent fleet`: a fake node per host (tests/support/node_states.ts), then the real
 * CLI writes its `status --json --output DIR/` and `health --output DIR/` there, as cron and the health hook
 * do on a cluster. Each node's state (venvs, GPUs, driver, cache record) is set up before the CLI runs.
 */
import { runMlagent } from "./cli.ts";
import { FIXTURES } from "./env.ts";
import { writeFakeBin } from "./fake_bin.ts";
import { type FakeNode, makeNode, testProfile, writeProfile, writeVenv } from "./node_states.ts";
import type { Profile } from "../../agent/profiles/types.ts";

export const SMI_HEALTHY = `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`;
export const SMI_ERR = `${FIXTURES}/nvidia-smi/table/table_525.85.12_8xA30_one-GPU-ERR.txt`;
/** Driver 510.47.03 (CUDA 11.6): too old for cu121 wheels. */
export const SMI_OLD_DRIVER = `${FIXTURES}/nvidia-smi/xml/q_x_510.47.03_1xTeslaP100.xml`;

export const CU121 = { name: "cu121", cuda: "12.1", index_url: "https://download.pytorch.org/whl/cu121" };

export interface NodeSpec {
  host: string;
  smi?: string;
  /** Venvs to write: profile name -> how. */
  venvs?: Record<string, "ready" | "damaged" | "outdated" | "failed">;
  /** Build the venvs with this CUDA variant (the profile lists it). */
  cuda?: boolean;
  /** Corrupt entries the cache's record says its last scan found. */
  corruptCacheEntries?: number;
  /** Write a health report too (default true). */
  health?: boolean;
}

function profileFor(name: string, cuda: boolean): Profile {
  return testProfile(name, { cuda_variants: cuda ? [CU121] : [] });
}

/** Makes the node under `dir/<host>` and has the real CLI write its files into `fleetDir`. */
export async function writeNodeFiles(dir: string, fleetDir: string, spec: NodeSpec): Promise<FakeNode> {
  const n = await makeNode(`${dir}/${spec.host}`);
  await writeFakeBin(n.bin, "nvidia-smi", { stdoutFile: spec.smi ?? SMI_HEALTHY });
  await writeFakeBin(n.bin, "dmesg", { stdout: "" });
  for (const [name, how] of Object.entries(spec.venvs ?? {})) {
    const p = profileFor(name, spec.cuda ?? false);
    // Outdated: the profile moved its pin after the venv was built.
    const now = how === "outdated" ? { ...p, stages: [{ name: "one", packages: ["mla-alpha==2.0"] }] } : p;
    await writeProfile(n, now);
    const venv = await writeVenv(n.root, name, {
      status: how === "failed" ? "failed" : "ready",
      profile: p,
      cudaVariant: spec.cuda ? CU121.name : null,
    });
    if (how === "damaged") {
      // A pinned package's dist-info gone: what a stray `pip uninstall` or a half-cleaned disk leaves.
      for await (const e of Deno.readDir(`${venv}/lib`)) {
        await Deno.remove(`${venv}/lib/${e.name}/site-packages/mla_alpha-1.0.dist-info`, { recursive: true });
      }
    }
  }
  if (spec.corruptCacheEntries !== undefined) {
    const cache = n.vars.MLAGENT_CACHE_DIR;
    await Deno.mkdir(cache, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(
      `${cache}/.mlagent-cache.json`,
      JSON.stringify({
        bytes: 1024,
        entries: 10,
        corrupt_entries: spec.corruptCacheEntries,
        last_heal_at: null,
      }),
    );
  }
  const vars = { ...n.vars, MLAGENT_HOSTNAME: spec.host };
  const status = await runMlagent(["status", "--json", "--output", `${fleetDir}/`], { env: vars });
  if (status.code !== 0) throw new Error(`status for ${spec.host}: ${status.stderr}`);
  if (spec.health ?? true) {
    const health = await runMlagent(["health", "--no-drain", "--output", `${fleetDir}/`], { env: vars });
    if (![0, 1].includes(health.code)) {
      throw new Error(`health for ${spec.host}: exit ${health.code} ${health.stderr}`);
    }
  }
  return n;
}
