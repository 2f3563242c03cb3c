/**
 * mlagent run as another local user: nobody (uid 65534), through setpriv, for what root would get through
 * anyway (an unwritable parent, another user's dir). Nobody cannot reach our Deno cache under /root, so it
 * gets a home with a copy of the npm packages mlagent imports.
 */
import assert from "node:assert/strict";
import { mlagentArgv } from "./cli.ts";
import { hermeticVars, REPO_ROOT } from "./env.ts";

export const NOBODY = 65534;

/** A home for nobody under `dir`, with a Deno cache holding our npm packages. */
export async function nobodyHome(dir: string): Promise<string> {
  const home = `${dir}/home`;
  await Deno.mkdir(`${home}/deno`, { recursive: true });
  const ours = hermeticVars().DENO_DIR;
  const cp = await new Deno.Command("cp", { args: ["-r", `${ours}/npm`, `${home}/deno/npm`] }).output();
  assert.equal(cp.code, 0, new TextDecoder().decode(cp.stderr));
  const chown = await new Deno.Command("chown", { args: ["-R", `${NOBODY}:${NOBODY}`, home] }).output();
  assert.equal(chown.code, 0);
  return home;
}

/** Starts `mlagent ARGS` as nobody with `home` (from nobodyHome) as its HOME and Deno cache. */
export function spawnAsNobody(args: string[], vars: Record<string, string | undefined>, home: string) {
  return new Deno.Command("setpriv", {
    args: [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", ...mlagentArgv(args)],
    cwd: REPO_ROOT,
    env: hermeticVars({ HOME: home, DENO_DIR: `${home}/deno`, XDG_STATE_HOME: `${home}/state`, ...vars }),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs `mlagent ARGS` as nobody to the end. */
export async function runAsNobody(args: string[], vars: Record<string, string | undefined>, home: string) {
  const out = await spawnAsNobody(args, vars, home).output();
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: dec(out.stdout), stderr: dec(out.stderr) };
}
