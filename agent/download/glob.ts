/**
 * include/exclude patterns, matched as the Hub's own client matches them.
 *
 * `hf download --include/--exclude` hands its patterns to snapshot_download, which keeps a repo path when
 * huggingface_hub's filter_repo_objects says so (huggingface/huggingface_hub @ ee0a4510f4bc, 2026-08-20,
 * src/huggingface_hub/utils/_paths.py): a path is kept if it matches any allow pattern and no ignore pattern,
 * with `fnmatch.fnmatchcase` (case-sensitive everywhere since v1.22, #4435), after both the pattern and the
 * path have every `\` turned into `/` (#4506) and a pattern ending in `/` has `*` appended
 * (_add_wildcard_to_directories). fnmatchcase compiles the pattern with CPython's Lib/fnmatch.py translate,
 * ported below rule for rule; tests/fixtures/fnmatch/table.json holds what Python itself answered.
 */

/** What a pattern compiles to: the regular expression, and whether it can match any name at all. */
export interface CompiledGlob {
  regExp: RegExp;
  /** The pattern holds a class that admits no character (such as `[z-a]`), so no name matches it. */
  matchesNothing: boolean;
}

/** Pure: Python's fnmatch.fnmatchcase(name, glob) as `regExp.test(name)`. Never throws. */
export function compileGlob(glob: string): CompiledGlob {
  // The fixed text between stars: `a*b*` is ["a", "b", ""]. Consecutive stars count as one, as in CPython.
  const runs: string[] = [""];
  let afterStar = false;
  let matchesNothing = false;
  // Python indexes code points, so `?` is one code point even outside the BMP (the "u" flag below agrees).
  const pat = Array.from(glob);
  const n = pat.length;
  let i = 0;
  while (i < n) {
    const c = pat[i++];
    if (c === "*") {
      if (!afterStar) runs.push("");
      afterStar = true;
      continue;
    }
    afterStar = false;
    if (c === "?") {
      runs[runs.length - 1] += ".";
    } else if (c === "[") {
      // A `]` first in the class (or right after `!`) is a member, not the end.
      let j = i;
      if (j < n && pat[j] === "!") j++;
      if (j < n && pat[j] === "]") j++;
      while (j < n && pat[j] !== "]") j++;
      if (j >= n) {
        runs[runs.length - 1] += literal("["); // no closing `]`: the `[` is itself
        continue;
      }
      const cls = compileClass(pat, i, j);
      i = j + 1;
      if (cls === null) matchesNothing = true;
      runs[runs.length - 1] += cls ?? "(?!)";
    } else {
      runs[runs.length - 1] += literal(c);
    }
  }
  return { regExp: new RegExp(`^${joinRuns(runs)}$`, "su"), matchesNothing };
}

/** Pure: fnmatch's pattern as a regular expression (no Hub rules; see hubPattern for those). */
export function globToRegExp(glob: string): RegExp {
  return compileGlob(glob).regExp;
}

/** Pure: the pattern huggingface_hub really matches with: `\` read as `/`, and `dir/` meaning `dir/*`. */
export function hubPattern(pattern: string): string {
  const p = pattern.replaceAll("\\", "/");
  return p.endsWith("/") ? `${p}*` : p;
}

/** Pure: the paths kept by include (any match; none given = all) and exclude (no match), as `hf download` keeps them. */
export function filterPaths(paths: string[], include?: string[], exclude?: string[]): string[] {
  const inc = (include ?? []).map((p) => globToRegExp(hubPattern(p)));
  const exc = (exclude ?? []).map((p) => globToRegExp(hubPattern(p)));
  return paths.filter((path) => {
    const p = path.replaceAll("\\", "/");
    return (inc.length === 0 || inc.some((r) => r.test(p))) && !exc.some((r) => r.test(p));
  });
}

/**
 * Pure: why an include/exclude pattern can never select a file of a Hub repo, or null when it can.
 * Repo paths are relative, non-empty and use `/`, so besides a class that admits nothing, a pattern that
 * only matches the empty name or a name starting with `/` or `./` selects nothing either.
 */
export function whyGlobNeverMatches(pattern: string): string | null {
  const p = hubPattern(pattern);
  if (p === "") return "the empty pattern matches only an empty path, and repo paths are never empty";
  if (compileGlob(p).matchesNothing) {
    return "it holds a character class that admits no character (a reversed range such as [z-a] is dropped, as Python's fnmatch drops it)";
  }
  if (p.startsWith("/") || p.startsWith("./")) {
    return `repo paths are relative: they never start with "${p.startsWith("/") ? "/" : "./"}"`;
  }
  return null;
}

/**
 * The class between `[` (just before `start`) and `]` (at `end`), as CPython's translate reads it; null when it
 * admits no character. `-` starting the class (or following `!`), ending it, or right after a range is a member;
 * every other `-` joins the characters either side into a range, and a range whose start is above its end is
 * dropped together with its two ends (so `[z-a]` is empty and `[!z-a]` is any character). `^` and `\` are members
 * like any other character: `!` is the only negation and nothing escapes.
 */
function compileClass(pat: string[], start: number, end: number): string | null {
  let i = start;
  let chunks: string[][];
  if (!pat.slice(i, end).includes("-")) {
    chunks = [pat.slice(i, end)];
  } else {
    chunks = [];
    let k = pat[i] === "!" ? i + 2 : i + 1;
    for (;;) {
      k = indexOf(pat, "-", k, end);
      if (k < 0) break;
      chunks.push(pat.slice(i, k));
      i = k + 1;
      k = k + 3;
    }
    const last = pat.slice(i, end);
    if (last.length > 0) chunks.push(last);
    else chunks.at(-1)!.push("-");
    for (let k = chunks.length - 1; k > 0; k--) {
      if (codePoint(chunks[k - 1].at(-1)!) > codePoint(chunks[k][0])) {
        chunks[k - 1] = [...chunks[k - 1].slice(0, -1), ...chunks[k].slice(1)];
        chunks.splice(k, 1);
      }
    }
  }
  // Python joins the chunks with `-` and tests that text: empty admits nothing, a lone `!` admits anything.
  const joinedLength = chunks.reduce((n, c) => n + c.length, 0) + chunks.length - 1;
  if (joinedLength === 0) return null;
  if (chunks.length === 1 && chunks[0].length === 1 && chunks[0][0] === "!") return ".";
  // Read the joined text as Python's regex parser reads a class: chunk characters are members, each joining
  // `-` makes a range of its neighbours, and a `-` with no member left after it is a member itself.
  const tokens: (string | null)[] = []; // null: a joining `-`
  chunks.forEach((chunk, k) => {
    if (k > 0) tokens.push(null);
    tokens.push(...chunk);
  });
  // Negation is read from the joined text, after dropped ranges: so `[z-a!b]` is "not b", as in Python.
  const negated = tokens[0] === "!";
  if (negated) tokens.shift();
  const members: string[] = [];
  for (let t = 0; t < tokens.length; t++) {
    const lo = tokens[t] ?? "-";
    if (tokens[t + 1] === null && t + 2 < tokens.length) {
      const hi = tokens[t + 2] ?? "-";
      // translate never leaves a reversed range; if it did, Python would raise, and nothing is the safe reading.
      if (codePoint(lo) <= codePoint(hi)) members.push(`${classChar(lo)}-${classChar(hi)}`);
      t += 2;
    } else {
      members.push(classChar(lo));
    }
  }
  return `[${negated ? "^" : ""}${members.join("")}]`;
}

/**
 * CPython writes an interior `*` + fixed piece as the atomic group `(?>.*?piece)`: take the first place the
 * piece fits and never backtrack into it. The piece has a fixed width and a `*` always follows it, so this matches
 * the same names as `.*piece`, without the backtracking blow-up of many stars; a lookahead with a back-reference
 * is JavaScript's spelling of an atomic group.
 */
function joinRuns(runs: string[]): string {
  let out = runs[0];
  for (let k = 1; k < runs.length; k++) {
    out += k === runs.length - 1 ? `.*${runs[k]}` : `(?=(.*?${runs[k]}))\\${k}`;
  }
  return out;
}

function literal(c: string): string {
  return /^[A-Za-z0-9_]$/.test(c) ? c : `\\u{${codePoint(c).toString(16)}}`;
}

function classChar(c: string): string {
  return `\\u{${codePoint(c).toString(16)}}`;
}

function codePoint(c: string): number {
  return c.codePointAt(0)!;
}

function indexOf(pat: string[], c: string, from: number, end: number): number {
  for (let k = from; k < end; k++) if (pat[k] === c) return k;
  return -1;
}
