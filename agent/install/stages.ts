/** One stage with the failure policy: network retries, cache heals, uv replaced by pip, pip asked again with --log. */
import type { Env } from "../core/env.ts";
import { failed, MlagentError } from "../core/errors.ts";
import type { Stage } from "../profiles/types.ts";
import {
  type InstallerChoice,
  type StageCommand,
  stageCommand,
  stageIndexes,
  uvItselfBroke,
} from "./installer.ts";
import { tailLines } from "./venv.ts";
import { stateDirOf } from "./state.ts";
import { healAfterFailure } from "../cache/mod.ts";
import { classifyInstallFailure, type FailureVerdict } from "./classify.ts";
import { describeRun } from "../core/run.ts";

import { backoffMs, NETWORK_ATTEMPTS, probeIndex, REACH_DETAIL } from "./reach.ts";
import type { InstallPlan, PlannedStage } from "./types.ts";
import { writeFileAtomic } from "../core/atomic.ts";
import { describeConflict, findPinConflict, profilePins } from "./pins.ts";
import { formatElapsed } from "../core/progress.ts";
import { indentBlock, plural } from "../core/output.ts";

/**
 * A stage's command for another installer than planned (uv broke: that installer's own cache) or without
 * the cache (`uncached`); the same indexes and constraints as planned.
 */
function commandFor(
  plan: InstallPlan,
  stage: Stage,
  ps: PlannedStage,
  installer: InstallerChoice,
  { uncached = false } = {},
): StageCommand {
  return stageCommand({
    installer,
    venvDir: plan.venvDir,
    stage,
    indexes: stageIndexes(stage, plan.cuda, plan.mirror),
    cacheDir: uncached ? null : cacheDirFor(plan, installer.kind),
    crossDevice: uncached || plan.crossDevice,
    mirrorOnly: plan.mirror !== null,
    constraintsFile: ps.constraintsFile,
  });
}

/** Writes the stage's constraints file (earlier stages' pins) where its argv names it. */
async function writeConstraints(env: Env, ps: PlannedStage): Promise<void> {
  if (!ps.constraintsFile) return;
  await env.fs.mkdir(ps.constraintsFile.slice(0, ps.constraintsFile.lastIndexOf("/")), { recursive: true });
  await writeFileAtomic(env, ps.constraintsFile, ps.constraints.join("\n") + "\n");
}

/** uv and pip keep separate caches side by side: <cache root>/uv, <cache root>/pip. */
function cacheDirFor(plan: InstallPlan, kind: "uv" | "pip"): string | null {
  if (!plan.cacheDir) return null;
  return plan.cacheDir.replace(/\/(uv|pip)$/, `/${kind}`);
}

const UNKNOWN: FailureVerdict = {
  kind: "unknown",
  package: null,
  cause: null,
  remedy: "",
  detail: null,
  url: null,
  retry: "none",
  evidence: null,
};

export type StageOutcome =
  | { ok: true; attempts: number; argv: string[]; installer: InstallerChoice }
  | { ok: false; verdict: FailureVerdict; error: MlagentError; installer: InstallerChoice };

/**
 * One stage with the failure policy: network failures retried with backoff (3 attempts), a corrupt cache
 * healed then retried once, uv replaced by pip when uv itself breaks; everything else fails at once.
 */
/** pip's console says only "No matching distribution" when an index fails; the cause is in its --log. */
const PIP_LOG_TAIL_BYTES = 512 * 1024;

/** A per-stage pip log in the venv's state dir, emptied for each attempt (pip appends) and kept for the user. */
async function freshPipLog(env: Env, venvDir: string, stageName: string): Promise<string | null> {
  const dir = stateDirOf(venvDir);
  const path = `${dir}/${stageName.replace(/[^A-Za-z0-9._-]/g, "_")}.pip.log`;
  try {
    await env.fs.mkdir(dir, { recursive: true });
    await env.fs.writeTextFile(path, "");
    return path;
  } catch {
    return null; // no log is no reason to fail an install
  }
}

async function readTail(env: Env, path: string, maxBytes: number): Promise<string> {
  try {
    const bytes = await env.fs.readFile(path);
    return new TextDecoder().decode(bytes.subarray(Math.max(0, bytes.length - maxBytes)));
  } catch {
    return "";
  }
}

export async function runStage(
  env: Env,
  plan: InstallPlan,
  stage: Stage,
  ps: PlannedStage,
  initial: InstallerChoice,
  signal: AbortSignal,
): Promise<StageOutcome> {
  let installer = initial;
  // An earlier stage may have switched to pip; the planned argv is for the planned installer.
  let command = installer.kind === plan.installer.kind ? ps.command : commandFor(plan, stage, ps, installer);
  await writeConstraints(env, ps);
  let networkFailures = 0;
  let heals = 0;
  let uncached = false;
  let attempts = 0;
  // pip prints "from versions: none" alike for a missing package and for an index it failed to read; only its
  // --log says which. --log also hides build output from the console, so it is used only to tell those apart.
  let diagnose = false;
  for (;;) {
    attempts++;
    env.log.info(`stage ${ps.name}: installing ${stage.packages.join(" ")}`);
    const pipLog = diagnose && installer.kind === "pip"
      ? await freshPipLog(env, plan.venvDir, ps.name)
      : null;
    const t0 = env.now();
    const row = env.progress.row(`stage ${ps.name}`);
    const r = await env.run(pipLog ? [...command.argv, "--log", pipLog] : command.argv, {
      signal,
      timeoutMs: command.timeoutMs,
      env: command.env,
      onOutput: (_s, text) => {
        for (const line of text.split("\n")) {
          if (!line.trim()) continue;
          env.log.debug(`  ${line}`);
          const step = installerStep(line);
          if (step) row.update(step);
        }
      },
    });
    const ok = r.kind === "exited" && r.code === 0;
    row.done(ok ? `stage ${ps.name}: installed in ${formatElapsed(env.now() - t0)}` : undefined);
    if (ok) return { ok: true, attempts, argv: command.argv, installer };
    if (signal.aborted) {
      return { ok: false, verdict: UNKNOWN, installer, error: failed(`stage ${ps.name} interrupted`) };
    }
    if (installer.kind === "uv" && uvItselfBroke(r)) {
      env.log.warn(`uv itself failed (${describeRun(r)}); falling back to pip for the remaining stages`);
      installer = { kind: "pip", uv: null, reason: "uv failed" };
      command = commandFor(plan, stage, ps, installer);
      continue;
    }
    const consoleOutput = r.kind === "not-found" ? `${r.program}: not found` : `${r.stdout}\n${r.stderr}`;
    const output = pipLog
      ? `${consoleOutput}\n${await readTail(env, pipLog, PIP_LOG_TAIL_BYTES)}`
      : consoleOutput;
    let verdict: FailureVerdict = r.kind === "timed-out"
      ? {
        ...UNKNOWN,
        cause: `the installer did not finish within ${Math.round(r.afterMs / 1000)} s`,
        remedy: `raise the stage's timeout_s, or check for a build that hangs`,
      }
      : classifyInstallFailure(output);
    verdict = await reconsiderAsNetwork(env, verdict, output, ps.indexes);
    if (
      !diagnose && installer.kind === "pip" && verdict.kind === "resolution" &&
      /from versions: none/.test(output)
    ) {
      diagnose = true;
      attempts--;
      env.log.info(
        `stage ${ps.name}: pip found no versions; asking again with --log to tell a missing package from a failing index`,
      );
      continue;
    }
    if (verdict.retry === "backoff" && ++networkFailures < NETWORK_ATTEMPTS) {
      const ms = backoffMs(env, networkFailures);
      env.log.warn(
        `stage ${ps.name}: network failure (${verdict.detail ?? verdict.cause ?? "network"}); ` +
          `attempt ${networkFailures + 1}/${NETWORK_ATTEMPTS} in ${ms} ms`,
      );
      await env.sleep(ms);
      continue;
    }
    const cacheDir = cacheDirFor(plan, installer.kind);
    // agent/cache.ts heals in at most two steps (the named entries, then the whole installer cache), each
    // followed by one retry; never a loop. We already hold the cache lock for this stage.
    if (verdict.retry === "heal-cache-then-once" && heals < 2 && cacheDir) {
      heals++;
      const healed = await healAfterFailure(env, {
        cacheDir,
        installer: installer.kind,
        verdict,
        attempt: heals,
        lockHeld: true,
      });
      if (healed.action !== "none") {
        env.log.warn(`stage ${ps.name}: retrying after healing the cache (${healed.action})`);
        continue;
      }
    }
    if (verdict.retry === "without-cache-once" && !uncached) {
      uncached = true;
      env.log.warn(
        `stage ${ps.name}: ${verdict.cause ?? "the cache is unusable here"}; retrying once without it`,
      );
      command = commandFor(plan, stage, ps, installer, { uncached: true });
      continue;
    }
    const tail = tailLines(consoleOutput, 20);
    const conflict = ps.constraints.length
      ? findPinConflict(
        output,
        profilePins(plan.profile).filter((p) => ps.constraints.some((c) => c.startsWith(`${p.name}==`))),
      )
      : null;
    if (conflict) {
      return {
        ok: false,
        verdict: { ...verdict, kind: "resolution", package: conflict.required_by },
        installer,
        error: failed(
          `install ${plan.profile.name}: stage "${ps.name}" conflicts with an earlier pin: ${
            describeConflict(conflict)
          }`,
          `pin a version of ${conflict.required_by} that accepts ${conflict.pin} in stage "${ps.name}", ` +
            `or change the pin in stage "${conflict.pinned_by_stage}"`,
          { stage: ps.name, package: conflict.required_by, kind: "resolution", conflict, output_tail: tail },
        ),
      };
    }
    const pkg = verdict.package ?? packageFromOutput(output);
    const what = verdict.kind === "unknown" ? "failed" : `failed (${verdict.kind})`;
    return {
      ok: false,
      verdict,
      installer,
      error: failed(
        `install ${plan.profile.name}: stage "${ps.name}" ${what}` +
          `${pkg ? ` on package ${pkg}` : ""}${verdict.cause ? `: ${verdict.cause}` : ""}` +
          ` after ${plural(attempts, "attempt")} (${describeRun(r)})\n${indentBlock(tail)}`,
        pipLog ? `${verdict.remedy} (pip's full log: ${pipLog})` : verdict.remedy,
        {
          stage: ps.name,
          package: pkg,
          kind: verdict.kind,
          cause: verdict.cause,
          attempts,
          output_tail: tail,
          installer_log: pipLog,
        },
      ),
    };
  }
}

/**
 * pip prints "from versions: none" both when a package does not exist and when the index failed and it gave
 * up quietly; asking the index tells the two apart.
 */
async function reconsiderAsNetwork(
  env: Env,
  verdict: FailureVerdict,
  output: string,
  indexes: string[],
): Promise<FailureVerdict> {
  if (verdict.kind === "network") return verdict;
  const m = output.match(/No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)/);
  if (!m || !/from versions: none/.test(output)) return verdict;
  for (const idx of indexes) {
    const bad = await probeIndex(env, idx, m[1]);
    if (bad) {
      return {
        kind: "network",
        package: m[1].toLowerCase(),
        cause: `the index did not answer for ${m[1]}: ${bad.message}`,
        remedy: "check the network or the index; set MLAGENT_INDEX_URL to a reachable mirror",
        detail: REACH_DETAIL[bad.kind],
        url: null,
        retry: "backoff",
        evidence: bad.message,
      };
    }
  }
  return verdict;
}

function packageFromOutput(output: string): string | null {
  const m = output.match(/No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)/) ??
    output.match(/Failed to build ([A-Za-z0-9][A-Za-z0-9._-]*)/) ??
    output.match(/Collecting ([A-Za-z0-9][A-Za-z0-9._-]*)[^\n]*\n(?:(?!Collecting)[^\n]*\n)*[^\n]*error/i);
  return m ? m[1].toLowerCase() : null;
}

/** What pip or uv is doing, from one line of its output ("Collecting torch==2.4.0", "Building wheel ..."). */
export function installerStep(line: string): string | null {
  const m = line.match(
    /^\s*(Collecting \S+|Downloading \S+(?: \([^)]*\))?|Building wheels? for \S+|Installing collected packages|Preparing metadata|Resolved \d+ packages?|Prepared \d+ packages?|Installed \d+ packages?|Building \S+)/,
  );
  return m ? m[1].replace(/^Downloading (\S+\/)?/, "Downloading ") : null;
}
