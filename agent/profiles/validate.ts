/** Lint: what a JSON Schema cannot say about a profile (every requirement pinned, unique stage names, no conflicting pins). */
import { validateJson } from "../core/jsonschema.ts";
import type { Profile } from "./types.ts";
import { PROFILE_SCHEMA } from "../../profiles/mod.ts";
import { parseRequirement, type Requirement } from "./requirement.ts";
import { whyGlobNeverMatches } from "../download/glob.ts";

const COMMIT_RE = /^[0-9a-f]{40}$/;

export interface LintIssue {
  /** The file (or "builtin:NAME") the issue is in. */
  source: string;
  /** JSON pointer to the field ("/stages/1/packages/0"); "" for the whole document. */
  path: string;
  /** The rule that failed, in words. */
  rule: string;
  severity: "error" | "warning";
}
/**
 * Every problem with a profile document: schema violations (with the field path and the rule), unknown
 * fields (naming the allowed ones), unpinned requirements, and cross-field rules. Pure.
 */
export function lintProfile(value: unknown, source: string): LintIssue[] {
  const issues: LintIssue[] = validateJson(PROFILE_SCHEMA, value).map((i) => ({
    source,
    path: i.path,
    rule: i.message,
    severity: "error" as const,
  }));
  if (issues.length > 0) return issues; // cross-field rules assume the shape is right
  const p = value as Profile;
  const error = (path: string, rule: string) => issues.push({ source, path, rule, severity: "error" });
  const warn = (path: string, rule: string) => issues.push({ source, path, rule, severity: "warning" });

  const seenStages = new Map<string, number>();
  const pins = new Map<string, { where: string; req: Requirement }>();
  let anyBuild = false;
  let anyCudaIndex = false;
  p.stages.forEach((stage, si) => {
    const sp = `/stages/${si}`;
    if (seenStages.has(stage.name)) {
      error(`${sp}/name`, `stage name "${stage.name}" repeats stage ${seenStages.get(stage.name)}`);
    }
    seenStages.set(stage.name, si);
    anyBuild ||= stage.builds_extensions === true;
    const indexes = [stage.index_url, ...(stage.extra_index_urls ?? [])];
    if (indexes.includes("cuda")) anyCudaIndex = true;
    stage.packages.forEach((text, pi) => {
      const req = parseRequirement(text);
      const path = `${sp}/packages/${pi}`;
      if (req.kind === "invalid") return error(path, req.problem!);
      if (!req.pinned && !stage.allow_unpinned) {
        error(
          path,
          `"${text}" is not pinned: ${req.problem} (or set allow_unpinned on the stage with a reason)`,
        );
      }
      const key = req.marker ? `${req.name}; ${req.marker}` : req.name;
      const prev = pins.get(key);
      if (prev && req.pinned && prev.req.pinned && pinOf(prev.req) !== pinOf(req)) {
        error(path, `"${text}" conflicts with "${prev.req.text}" at ${prev.where}`);
      }
      if (!prev) pins.set(key, { where: path, req });
    });
    if (stage.no_build_isolation && stage.packages.length > 0 && si === 0) {
      warn(
        `${sp}/no_build_isolation`,
        "the first stage builds without isolation: its build deps must already be in the venv",
      );
    }
  });
  if (anyCudaIndex && p.cuda_variants.length === 0) {
    error("/cuda_variants", 'a stage uses index_url "cuda" but the profile lists no CUDA variants');
  }
  if (anyBuild && !p.builds_extensions) {
    error(
      "/builds_extensions",
      "a stage sets builds_extensions, so the profile must too (doctor checks headers and nvcc)",
    );
  }
  const variantNames = new Set<string>();
  p.cuda_variants.forEach((v, i) => {
    if (variantNames.has(v.name)) {
      error(`/cuda_variants/${i}/name`, `CUDA variant "${v.name}" is listed twice`);
    }
    variantNames.add(v.name);
    const digits = v.cuda.replace(".", "");
    if (`cu${digits}` !== v.name) {
      error(`/cuda_variants/${i}/cuda`, `CUDA ${v.cuda} does not match variant ${v.name}`);
    }
  });
  const seenVerify = new Set<string>();
  p.verify.forEach((step, i) => {
    if (seenVerify.has(step.name)) error(`/verify/${i}/name`, `verify step "${step.name}" is listed twice`);
    seenVerify.add(step.name);
  });
  if (p.gpu.required && p.cuda_variants.length === 0) {
    warn("/cuda_variants", "the profile requires a GPU but lists no CUDA variants");
  }
  p.models.forEach((m, mi) => {
    const mp = `/models/${mi}`;
    for (const field of ["include", "exclude"] as const) {
      m[field]?.forEach((pattern, pi) => {
        const why = whyGlobNeverMatches(pattern);
        if (why) {
          error(
            `${mp}/${field}/${pi}`,
            `${field} pattern ${JSON.stringify(pattern)} can never match a file: ${why}`,
          );
        }
      });
    }
    if (m.include?.length === 0) {
      // mlagent (like `hf download` without --include) reads no patterns as "every file"; huggingface_hub's
      // snapshot_download(allow_patterns=[]) reads the same list as "no file", so the intent is unclear.
      warn(
        `${mp}/include`,
        "an empty include list downloads every file of the repo; remove it, or list patterns",
      );
    }
    // Warnings for now: the built-in profiles do not pin their models yet (issue 13).
    if (m.revision === undefined) {
      warn(
        `${mp}/revision`,
        `model ${m.repo} has no revision: it follows the repo's main branch, which moves; pin a 40-hex commit`,
      );
    } else if (!COMMIT_RE.test(m.revision)) {
      warn(
        `${mp}/revision`,
        `revision ${
          JSON.stringify(m.revision)
        } of ${m.repo} is not a 40-hex commit: branches and tags move; pin the commit`,
      );
    }
    if (m.layout === "hub-cache" && m.local_dir !== undefined) {
      // The hub cache places a model by its repo id alone (models--ORG--NAME), as huggingface_hub does.
      error(
        `${mp}/local_dir`,
        `model ${m.repo} has layout "hub-cache", which places it by repo id in the hub cache: local_dir does not apply; remove one of them`,
      );
    }
    if (!m.required_files?.length) {
      warn(
        `${mp}/required_files`,
        `model ${m.repo} lists no required_files: a copy lacking the files the model needs passes as installed; list them`,
      );
    }
  });
  return issues;
}

function pinOf(r: Requirement): string {
  return r.kind === "version" ? `==${r.version}` : `${r.url}@${r.ref ?? ""}`;
}
