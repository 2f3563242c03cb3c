/**
 * Pins that must hold across stages. Each stage installs with every earlier exact pin as a constraint; when a
 * stage's needs conflict with one, the installer's conflict report is read into one sentence naming the pin,
 * the stage that set it, and the package that wanted another version. After the last stage the installed
 * versions are compared with every pin before the venv may be called ready.
 */
import { canonicalName } from "../core/pep503.ts";
import { compareVersions } from "../compat.ts";
import { parseRequirement } from "../profiles/mod.ts";
import type { Profile } from "../profiles/types.ts";

export interface Pin {
  /** Canonical name. */
  name: string;
  version: string;
  stage: string;
}

/** Every `name==version` pin of the profile, with the stage that sets it (the first, when two agree). */
export function profilePins(profile: Profile): Pin[] {
  const out = new Map<string, Pin>();
  for (const stage of profile.stages) {
    for (const r of stage.packages.map(parseRequirement)) {
      if (r.kind === "version" && r.version !== null && !out.has(r.name)) {
        out.set(r.name, { name: r.name, version: r.version, stage: stage.name });
      }
    }
  }
  return [...out.values()];
}

export interface PinConflict {
  /** The pinned package and its pin. */
  package: string;
  pin: string;
  /** The stage that set the pin. */
  pinned_by_stage: string;
  /** The package (and version) whose requirement cannot be met with the pin. */
  required_by: string;
  required_by_version: string | null;
  /** What it asked for ("torch>=2.6.0"). */
  requires: string;
}

/**
 * Reads pip's "The conflict is caused by:" block (or uv's "Because X depends on Y and you require Z") for a
 * constraint from an earlier stage. Null when the failure is not about one of `pins`.
 */
export function findPinConflict(output: string, pins: Pin[]): PinConflict | null {
  const byName = new Map(pins.map((p) => [p.name, p]));
  // pip: "    optimum-quanto 0.2.7 depends on torch>=2.6.0" beside "The user requested (constraint) torch==2.4.0"
  const constrained = new Set(
    [...output.matchAll(/The user requested \(constraint\) ([A-Za-z0-9][A-Za-z0-9._-]*)\s*==/g)]
      .map((m) => canonicalName(m[1])),
  );
  for (
    const m of output.matchAll(
      /^\s*([A-Za-z0-9][A-Za-z0-9._-]*) (\S+) depends on ([A-Za-z0-9][A-Za-z0-9._-]*)(\S*)/gm,
    )
  ) {
    const pin = byName.get(canonicalName(m[3]));
    if (pin && constrained.has(pin.name)) {
      return conflict(pin, m[1], m[2], `${m[3]}${m[4]}`);
    }
  }
  // uv: "Because mla-wants-new==1.0 depends on mla-base>=2.0 and you require mla-base==1.0, ..."
  for (
    const m of output.matchAll(
      /Because ([A-Za-z0-9][A-Za-z0-9._-]*)(?:==(\S+))? depends on ([A-Za-z0-9][A-Za-z0-9._-]*)([^\s,]*) and you require \3==/g,
    )
  ) {
    const pin = byName.get(canonicalName(m[3]));
    if (pin) return conflict(pin, m[1], m[2] ?? null, `${m[3]}${m[4]}`);
  }
  return null;
}

function conflict(pin: Pin, by: string, byVersion: string | null, requires: string): PinConflict {
  return {
    package: pin.name,
    pin: `${pin.name}==${pin.version}`,
    pinned_by_stage: pin.stage,
    required_by: canonicalName(by),
    required_by_version: byVersion,
    requires,
  };
}

export function describeConflict(c: PinConflict): string {
  return `${c.required_by}${c.required_by_version ? ` ${c.required_by_version}` : ""} needs ${c.requires}, ` +
    `but stage "${c.pinned_by_stage}" pinned ${c.pin}`;
}

/** Whether an installed version satisfies `==pin` (PEP 440: a pin without a local label ignores "+cu124"). */
export function pinHolds(pin: string, installed: string): boolean {
  const have = (pin.includes("+") ? installed : installed.split("+")[0]).toLowerCase();
  const want = pin.toLowerCase();
  // Plain release numbers compare with zero padding (==1.0 holds for 1.0.0); anything else must match as written.
  const release = /^\d+(\.\d+)*$/;
  return have === want || (release.test(have) && release.test(want) && compareVersions(have, want) === 0);
}

export interface DriftedPin extends Pin {
  /** The installed version, or null when the distribution is gone. */
  installed: string | null;
}

/** The pins that do not hold in `installed` (name -> version, canonical names). */
export function driftedPins(pins: Pin[], installed: Record<string, string>): DriftedPin[] {
  return pins.flatMap((p) => {
    const have = installed[p.name] ?? null;
    return have !== null && pinHolds(p.version, have) ? [] : [{ ...p, installed: have }];
  });
}
