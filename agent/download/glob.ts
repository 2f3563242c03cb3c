/** include/exclude patterns, matched as the Hub's own client matches them. */

/** Pure: fnmatch as Python's (the way huggingface_hub filters): `*` and `?` also match `/`. */
export function globToRegExp(glob: string): RegExp {
  let g = glob;
  if (g.endsWith("/")) g += "*";
  let re = "";
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const close = g.indexOf("]", i + 2);
      if (close === -1) re += "\\[";
      else {
        let body = g.slice(i + 1, close);
        if (body.startsWith("!")) body = "^" + body.slice(1);
        re += `[${body.replace(/\\/g, "\\\\")}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}

/** Pure: the paths kept by include (any match; none given = all) and exclude (no match). */
export function filterPaths(paths: string[], include?: string[], exclude?: string[]): string[] {
  const inc = (include ?? []).map(globToRegExp);
  const exc = (exclude ?? []).map(globToRegExp);
  return paths.filter((p) => (inc.length === 0 || inc.some((r) => r.test(p))) && !exc.some((r) => r.test(p)));
}
