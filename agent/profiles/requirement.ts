/** PEP 508 requirements as profiles write them: a name, an exact pin or a direct reference, extras and markers. */
import { canonicalName } from "../core/pep503.ts";

export interface Requirement {
  /** Canonical name (PEP 503: lowercase, runs of -_. become -). */
  name: string;
  extras: string[];
  /** The exact version for `==`/`===` pins ("2.4.0+cu121"); null otherwise. */
  version: string | null;
  /** The VCS or archive URL for direct references, without the @ref; null otherwise. */
  url: string | null;
  /** The VCS ref (commit or tag) for direct references; null otherwise. */
  ref: string | null;
  /** Environment marker after ";", when present. */
  marker: string | null;
  kind: "version" | "vcs" | "url" | "unpinned" | "invalid";
  /** Pinned exactly: an `==` version, a VCS source at a commit or tag, or an archive URL naming its version. */
  pinned: boolean;
  /** Why it is not pinned or cannot be parsed; null when pinned. */
  problem: string | null;
  /** The text as written. */
  text: string;
}

const NAME_RE = /^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[\s*([A-Za-z0-9._,\s-]*)\])?\s*/;
const COMMIT_RE = /^[0-9a-f]{40}$/;
/** Refs that look like release tags (v1.2, 1.2.3, release-2024.01). Branch names cannot be told from tags
 * by syntax, so only version-looking refs and full commits count as pinned. */
const TAG_RE = /^(v|release[-_]?)?[0-9]+(\.[0-9]+)*([._-]?(post|rc|a|b|alpha|beta|dev)[0-9]*)*$/i;
const ARCHIVE_RE = /\/([^/?#]+?)(\.whl|\.tar\.gz|\.tar\.bz2|\.zip|\.tgz)(\?[^#]*)?(#.*)?$/;

/**
 * Parses one requirement line: `name[extras]==1.2.3; marker`, `name @ git+https://host/repo.git@<commit>`,
 * `git+https://host/repo.git@v1.0#egg=name`, or `name @ https://host/name-1.0-py3-none-any.whl`.
 */
export function parseRequirement(req: string): Requirement {
  const text = req;
  const base: Requirement = {
    name: "",
    extras: [],
    version: null,
    url: null,
    ref: null,
    marker: null,
    kind: "invalid",
    pinned: false,
    problem: null,
    text,
  };
  let body = req.trim();
  const invalid = (problem: string): Requirement => ({ ...base, problem });
  if (body === "") return invalid("empty requirement");
  if (body.startsWith("-")) {
    return invalid(`installer options ("${body.split(/\s/)[0]}") belong in stage fields, not in packages`);
  }

  // A bare VCS URL: git+https://...@ref#egg=name
  if (/^(git|hg|svn|bzr)\+/.test(body)) {
    const egg = /#(?:.*&)?egg=([A-Za-z0-9._-]+)/.exec(body);
    if (!egg) return invalid("a VCS URL needs a name: write `name @ git+https://...@<commit>`");
    return direct({ ...base, name: canonicalName(egg[1]) }, body.replace(/#.*$/, ""));
  }

  const semi = splitMarker(body);
  body = semi.body;
  base.marker = semi.marker;
  const m = NAME_RE.exec(body);
  if (!m) return invalid(`cannot read a package name in "${req}"`);
  base.name = canonicalName(m[1]);
  base.extras = m[2] ? m[2].split(",").map((e) => e.trim()).filter(Boolean) : [];
  const rest = body.slice(m[0].length).trim();

  if (rest.startsWith("@")) return direct(base, rest.slice(1).trim());
  if (rest === "") return { ...base, kind: "unpinned", problem: "no version: pin it with ==" };

  const spec = /^(===|==)\s*([A-Za-z0-9.+!_*-]+)$/.exec(rest);
  if (spec) {
    const version = spec[2];
    if (version.includes("*")) {
      return { ...base, kind: "unpinned", problem: `"${rest}" is a wildcard, not an exact pin` };
    }
    return { ...base, kind: "version", version, pinned: true };
  }
  if (/^(~=|!=|<=|>=|<|>|==)/.test(rest)) {
    return { ...base, kind: "unpinned", problem: `"${rest}" is a range, not an exact pin: use ==` };
  }
  return invalid(`cannot read the version specifier "${rest}"`);
}

function splitMarker(body: string): { body: string; marker: string | null } {
  // A URL may contain ";" only in rare query strings; markers follow " ; " or ";" outside URLs.
  const at = body.search(/\s;\s*|;\s*(python_|platform_|sys_|os_|implementation_|extra\b)/);
  if (at === -1) return { body, marker: null };
  return { body: body.slice(0, at).trim(), marker: body.slice(at).replace(/^\s*;\s*/, "").trim() };
}

function direct(base: Requirement, url: string): Requirement {
  const vcs = /^(git|hg|svn|bzr)\+(.+)$/.exec(url);
  if (vcs) {
    // The ref follows the last "@" after the host part (user@host is allowed before it).
    const noFragment = vcs[2].replace(/#.*$/, "");
    const schemeEnd = noFragment.indexOf("://");
    const pathStart = schemeEnd === -1 ? 0 : noFragment.indexOf("/", schemeEnd + 3);
    const at = noFragment.lastIndexOf("@");
    if (at === -1 || at < pathStart) {
      return {
        ...base,
        kind: "unpinned",
        url: url.replace(/#.*$/, ""),
        problem: "VCS source without a ref: append @<40-hex commit> or @<tag>",
      };
    }
    const ref = noFragment.slice(at + 1);
    const bareUrl = `${vcs[1]}+${noFragment.slice(0, at)}`;
    if (COMMIT_RE.test(ref) || TAG_RE.test(ref)) {
      return { ...base, kind: "vcs", url: bareUrl, ref, pinned: true };
    }
    return {
      ...base,
      kind: "unpinned",
      url: bareUrl,
      ref,
      problem: `VCS ref "${ref}" is neither a full 40-hex commit nor a version tag (branches move)`,
    };
  }
  if (/^(https?|file):\/\//.test(url)) {
    const archive = ARCHIVE_RE.exec(url);
    const hashed = /#(sha256|sha384|sha512)=[0-9a-f]+/.test(url);
    // Wheel and sdist file names carry their version: name-1.2.3(-tags).whl / name-1.2.3.tar.gz
    const versioned = archive && /-[0-9][A-Za-z0-9.+!_]*(-|$)/.test(archive[1]);
    if (archive && (versioned || hashed)) {
      const v = archive && /-([0-9][A-Za-z0-9.+!_]*)(-|$)/.exec(archive[1]);
      return { ...base, kind: "url", url, version: v ? v[1] : null, pinned: true };
    }
    return {
      ...base,
      kind: "unpinned",
      url,
      problem: "URL source names no version: point at a versioned wheel/sdist or add #sha256=...",
    };
  }
  return { ...base, kind: "invalid", problem: `cannot read the direct reference "${url}"` };
}
