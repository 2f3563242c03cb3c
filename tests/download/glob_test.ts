import assert from "node:assert/strict";
import {
  compileGlob,
  filterPaths,
  globToRegExp,
  hubPattern,
  whyGlobNeverMatches,
} from "../../agent/download/glob.ts";
import { FIXTURES } from "../support/env.ts";

/** What Python's fnmatch and huggingface_hub's filter_repo_objects answered (see generate.py beside it). */
interface Table {
  python: string;
  huggingface_hub: { commit: string };
  names: string[];
  patterns: { pattern: string; why: string; translate: string; fnmatch: string[]; hub: string[] }[];
}
const TABLE: Table = JSON.parse(Deno.readTextFileSync(`${FIXTURES}/fnmatch/table.json`));

Deno.test("the fnmatch table was made by CPython and the Hub's own filter, and is big enough to mean something", () => {
  assert.match(TABLE.python, /^CPython 3\.\d+\.\d+$/);
  assert.match(TABLE.huggingface_hub.commit, /^[0-9a-f]{40}$/);
  assert.ok(TABLE.patterns.length >= 60, `${TABLE.patterns.length} patterns`);
  assert.ok(TABLE.names.length * TABLE.patterns.length >= 60 * 60);
});

Deno.test("globToRegExp() agrees with Python's fnmatch on every pattern and name of the table", () => {
  const wrong: string[] = [];
  for (const row of TABLE.patterns) {
    const re = globToRegExp(row.pattern);
    const want = new Set(row.fnmatch);
    for (const name of TABLE.names) {
      if (re.test(name) !== want.has(name)) {
        wrong.push(
          `${JSON.stringify(row.pattern)} vs ${JSON.stringify(name)}: Python says ${
            want.has(name)
          } (${row.why})`,
        );
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("filterPaths() keeps exactly what huggingface_hub's filter_repo_objects keeps, as include and as exclude", () => {
  for (const row of TABLE.patterns) {
    assert.deepEqual(
      filterPaths(TABLE.names, [row.pattern]),
      row.hub,
      `include ${JSON.stringify(row.pattern)}`,
    );
    const kept = new Set(row.hub);
    assert.deepEqual(
      filterPaths(TABLE.names, undefined, [row.pattern]),
      TABLE.names.filter((n) => !kept.has(n)),
      `exclude ${JSON.stringify(row.pattern)}`,
    );
  }
});

Deno.test("no pattern of the table throws, and a class that admits nothing is reported as matching nothing", () => {
  for (const row of TABLE.patterns) {
    const compiled = compileGlob(row.pattern);
    // CPython spells a class that admits nothing as (?!); that is the only way a pattern matches nothing.
    assert.equal(compiled.matchesNothing, row.translate.includes("(?!)"), row.pattern);
  }
  for (
    const odd of ["[", "[!", "[]", "[!]", "[z-a]", "[]-]", "[--]", "[\\", "\\", "[a-\\]", "[😀-a]", "[a-😀]"]
  ) {
    assert.doesNotThrow(() => filterPaths(["a"], [odd], [odd]), odd);
  }
});

Deno.test("globToRegExp() reads the bracket patterns that used to select other files than hf download", () => {
  const rows: [string, string, boolean][] = [
    ["[!.]*", ".gitattributes", false], // ! negates
    ["[!.]*", "config.json", true],
    ["[^a]*", "^x", true], // ^ is a member, not a negation
    ["[^a]*", "b", false],
    ["[]]", "]", true], // ] first is a member
    ["[!]]", "a", true],
    ["[!]]", "]", false],
    ["[z-a]", "m", false], // reversed range: nothing, no crash
    ["[!z-a]", "m", true],
    ["[a-]", "-", true],
    ["[\\]", "\\", true], // backslash escapes nothing
  ];
  for (const [pattern, name, want] of rows) {
    assert.equal(globToRegExp(pattern).test(name), want, `${pattern} ${name}`);
  }
});

Deno.test("globToRegExp() stays fast with many stars, as CPython's atomic groups do", () => {
  const re = globToRegExp("*a*a*a*a*a*a*a*a*a*a*a*b");
  const started = performance.now();
  assert.equal(re.test("a".repeat(5000) + "c"), false);
  assert.ok(performance.now() - started < 1000, "no backtracking blow-up");
});

Deno.test("hubPattern() reads a backslash as / and a trailing / as the folder's files", () => {
  assert.equal(hubPattern("vae/"), "vae/*");
  assert.equal(hubPattern("vae\\"), "vae/*");
  assert.equal(hubPattern("text_encoder\\*.bin"), "text_encoder/*.bin");
  assert.equal(hubPattern("*.json"), "*.json");
});

Deno.test("whyGlobNeverMatches() names patterns that select nothing from a Hub repo, and only those", () => {
  for (const p of ["[z-a]", "vae/[z-a]*", "[a--]", "", "/config.json", "./vae/*", ".\\vae\\*"]) {
    assert.ok(whyGlobNeverMatches(p), JSON.stringify(p));
  }
  assert.match(whyGlobNeverMatches("[z-a]")!, /admits no character/);
  assert.match(whyGlobNeverMatches("/x")!, /relative/);
  for (const p of ["*", "[!z-a]", "[]", "[", ".*", "*/", "vae/", "[!]]", "?"]) {
    assert.equal(whyGlobNeverMatches(p), null, JSON.stringify(p));
  }
});
