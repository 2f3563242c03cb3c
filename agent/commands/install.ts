/** `mlagent install PROFILE`: build, repair or confirm the verified venv for a profile. */
import type { Command } from "../cli.ts";
import { parseCommandArgs, parseNumberFlag } from "./args.ts";
import type { Env } from "../core/env.ts";
import { EXIT, exitFor, usageError } from "../core/errors.ts";
import { formatDuration, type Outcome, plural } from "../core/output.ts";
import { install, type InstallPlan, type InstallReport, planInstall, planReport } from "../install/mod.ts";
import { quoteArg } from "../core/run.ts";

const HELP = `Usage: mlagent install PROFILE [options]

Turns a profile (a built-in name, a name in MLAGENT_PROFILE_PATH, or a path to a .json file) into a ready,
verified venv at <root>/<profile name>. Runs the profile's doctor checks first; installs the stages in order
with uv (or pip); retries network failures, heals a corrupt cache once; runs the verify steps; records
the state in <venv>/.mlagent/state.json with "ready" written last. A second run with nothing changed returns
at once; a changed profile reinstalls the changed stages and those after them; a changed interpreter
rebuilds the venv; a venv left half-installed by a killed run is repaired. Models are fetched after the
venv is ready.

Options:
  --root DIR      where venvs live (default: MLAGENT_ROOT, else $XDG_DATA_HOME/mlagent/venvs)
  --force         rebuild the venv from scratch
  --dry-run       print the plan (interpreter, venv, every installer command, models); write nothing
  --cuda VARIANT  use this CUDA variant (cu121 or 12.1) whatever the driver says
  --no-models     do not fetch the profile's models
  --timeout S     wait at most S seconds for another install of the same venv (default 1800)
  --no-wait       fail at once (exit 3) if another install holds the venv
  --json          one JSON document on stdout

Environment:
  MLAGENT_ROOT         venv root (as --root)
  MLAGENT_INDEX_URL    one index (site mirror) that replaces every index of every stage, CUDA's included
  MLAGENT_INSTALLER    uv or pip: force the installer
  MLAGENT_PYTHON       interpreter to build the venv from
  MLAGENT_CACHE_DIR    node-local installer cache root
  MLAGENT_MODELS_DIR   where models go (default $XDG_DATA_HOME/mlagent/models)
  MLAGENT_RETRY_BASE_MS  first network retry delay (default 1000; doubled per attempt, with jitter)
  MLAGENT_STAGE_CONSTRAINTS=0  resolve each stage alone (profile authors: shows what a profile leaves loose)

Exit codes: 0 ready, 1 failed (message names the stage, package and fix), 2 bad profile or flag,
3 the venv is locked by another install (--no-wait).`;

export const installCommand: Command = {
  name: "install",
  help: HELP,
  run: runInstall,
};

async function runInstall(env: Env, argv: string[]): Promise<Outcome> {
  const { values, positionals } = parseCommandArgs("install", argv, {
    root: { type: "string" },
    force: { type: "boolean" },
    "dry-run": { type: "boolean" },
    cuda: { type: "string" },
    "no-models": { type: "boolean" },
    timeout: { type: "string" },
    "no-wait": { type: "boolean" },
  });
  if (positionals.length !== 1) {
    throw usageError(
      positionals.length
        ? `install: one profile expected, got ${positionals.length}`
        : "install: PROFILE missing",
      "usage: mlagent install PROFILE [options]; see: mlagent install --help",
    );
  }
  const timeoutS = parseNumberFlag("install", "timeout", values.timeout, { min: 0 });
  const opts = {
    profile: positionals[0],
    root: values.root,
    force: values.force,
    dryRun: values["dry-run"],
    cuda: values.cuda,
    noModels: values["no-models"],
    lockTimeoutMs: timeoutS === undefined ? undefined : timeoutS * 1000,
    noWait: values["no-wait"],
  };
  if (opts.dryRun) {
    const plan = await planInstall(env, opts);
    const report = planReport(plan);
    // Loaded here only: a no-op install must not pay for the node checks' module.
    const { checkJson }: typeof import("../../checks/mod.ts") = await import("../../checks/" + "mod" + ".ts");
    return {
      exitCode: EXIT.ok,
      json: {
        ...report,
        dry_run: true,
        verify: plan.profile.verify.map((v) => v.name),
        doctor: plan.doctor.map(checkJson),
      },
      text: renderPlan(plan),
    };
  }
  const report = await install(env, opts);
  return { exitCode: exitFor(report.ok), json: { ...report }, text: renderReport(report) };
}

function renderReport(r: InstallReport): string {
  const installed = r.stages.filter((s) => s.action === "installed").map((s) => s.name);
  const head = r.action === "none"
    ? `${r.profile}: ready (nothing to do) at ${r.venv}`
    : `${r.profile}: ready at ${r.venv} (${r.action}; ${
      installed.length ? `installed ${installed.join(", ")}` : "no stage changed"
    })`;
  const lines = [
    head,
    `  python ${r.python.version} (${r.python.executable}), installer ${r.installer}` +
    `${r.cuda_variant ? `, CUDA ${r.cuda_variant}` : ""}, ${
      plural(Object.keys(r.packages).length, "package")
    }, ${formatDuration(r.duration_ms)}`,
  ];
  for (const v of r.verify) {
    lines.push(`  verify ${v.name}: ${v.skipped ? "skipped" : v.ok ? "ok" : "FAILED"}`);
  }
  for (const m of r.models) {
    lines.push(`  model ${m.repo}: ${m.skipped ? "skipped" : m.ok ? `ok (${m.local_dir})` : "FAILED"}`);
  }
  if (!r.ok) lines.push(`  models incomplete: see the errors above`);
  // The last line says how to use what was built.
  else {lines.push(
      `use it: mlagent run ${r.profile} -- python ...   (or: eval "$(mlagent env ${r.profile})")`,
    );}
  return lines.join("\n");
}

/** The plan as text, for --dry-run. */
function renderPlan(plan: InstallPlan): string {
  const lines = [
    `plan for ${plan.profile.name} (dry run: nothing written)`,
    `  doctor:      ${doctorLine(plan)}`,
    ...plan.doctor.filter((c) => c.status === "warn" || c.status === "fail").map((c) =>
      `    ${c.status === "fail" ? "FAIL" : "WARN"} ${c.id}: ${c.message}`
    ),
    `  venv:        ${plan.venvDir}`,
    `  python:      ${plan.python.executable} ${plan.python.version} (${plan.pythonReason})`,
    `  cuda:        ${
      plan.cuda ? `${plan.cuda.name} (${plan.cudaReason})` : "none (profile has no CUDA variants)"
    }`,
    `  installer:   ${plan.installer.kind} (${plan.installer.reason})`,
    `  cache:       ${plan.cacheDir ?? "none"} (${plan.cacheReason}${
      plan.crossDevice ? "; other filesystem than the venv: copy, no links" : ""
    })`,
    ...(plan.mirror ? [`  mirror:      ${plan.mirror} (MLAGENT_INDEX_URL replaces every index)`] : []),
    `  stages:`,
  ];
  for (const s of plan.stages) {
    const extra = Object.entries(s.command.env).filter(([, v]) => v !== undefined).map(([k, v]) =>
      `${k}=${quoteArg(v!)} `
    )
      .join("");
    lines.push(`    ${s.name}:`, `      ${extra}${s.command.argv.map(quoteArg).join(" ")}`);
  }
  lines.push(`  verify:`);
  for (const v of plan.profile.verify) {
    lines.push(`    ${v.name}${v.requires_gpu && !plan.gpuPresent ? " (skipped: no GPU)" : ""}`);
  }
  lines.push(`  models:`);
  for (const m of plan.models) lines.push(`    ${m.repo}@${m.revision} -> ${m.local_dir}`);
  if (!plan.models.length) lines.push(`    none`);
  return lines.join("\n");
}

/** "12 passed, 1 warning, 2 skipped": what the node check said before the plan was made. */
function doctorLine(plan: InstallPlan): string {
  const n = (status: string) => plan.doctor.filter((c) => c.status === status).length;
  return `${n("pass")} passed, ${plural(n("warn"), "warning")}, ${n("fail")} failed (forgiven), ${
    n("skip")
  } skipped`
    .replace(", 0 failed (forgiven)", "");
}
