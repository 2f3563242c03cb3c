/** The install report a plan starts from. */
import type { InstallPlan, InstallReport } from "./types.ts";

export function baseReport(plan: InstallPlan): InstallReport {
  return {
    ok: true,
    profile: plan.profile.name,
    venv: plan.venvDir,
    status: "ready",
    action: "none",
    waited_for_other: false,
    python: { executable: plan.python.executable, version: plan.python.version },
    cuda_variant: plan.cuda?.name ?? null,
    installer: plan.installer.kind,
    cache_dir: plan.cacheDir,
    fingerprint: plan.fingerprint,
    stages: [],
    verify: [],
    models: [],
    packages: {},
    duration_ms: 0,
  } satisfies InstallReport;
}

export function planReport(plan: InstallPlan): InstallReport {
  return {
    ...baseReport(plan),
    status: "planned",
    stages: plan.stages.map((s) => ({
      name: s.name,
      action: "installed",
      attempts: 0,
      duration_ms: 0,
      argv: s.command.argv,
    })),
    models: plan.models.map((m) => ({ repo: m.repo, local_dir: m.local_dir, ok: true, skipped: true })),
  };
}
