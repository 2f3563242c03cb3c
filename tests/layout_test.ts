/**
 * The house rules a reader relies on to find things: agent/ never reaches up into the commands, checks/ sits
 * below install and prologue (it may use only core, the cache's placement rule and data), and no module
 * imports itself in a circle. Read from the source's own import lines, so a new file is held to them too.
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "./support/env.ts";

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
  /** import("./x.ts"): loaded only when reached. */
  dynamic: boolean;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${REPO_ROOT}/${dir}`)) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...sourceFiles(rel));
    else if (e.name.endsWith(".ts")) out.push(rel);
  }
  return out;
}

function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") out.pop();
    else if (part !== "." && part !== "") out.push(part);
  }
  return out.join("/");
}

/** Every relative import and re-export of the program's own modules, static and dynamic. */
function importEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const file of ["main.ts", ...sourceFiles("agent"), ...sourceFiles("checks")]) {
    const text = Deno.readTextFileSync(`${REPO_ROOT}/${file}`);
    const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : "";
    const pattern =
      /^(?:import|export)\s+(type\s+)?[^;]*?from\s+"(\.[^"]+)"|import\(\s*("\.[^"]*"(?:\s*\+\s*"[^"]*")*)\s*\)/gm;
    for (const m of text.matchAll(pattern)) {
      // import("./" + "x" + ".ts"): the command table's spelling, which Deno's module graph does not follow.
      const spec = m[2] ?? m[3]?.split("+").map((part) => part.trim().slice(1, -1)).join("");
      edges.push({ from: file, to: normalize(`${dir}/${spec}`), typeOnly: !!m[1], dynamic: !!m[3] });
    }
  }
  return edges;
}

const EDGES = importEdges();

Deno.test("the import reader sees static, type-only and dynamic imports", () => {
  const has = (from: string, to: string) => EDGES.some((e) => e.from === from && e.to === to);
  assert.ok(has("main.ts", "agent/cli.ts"));
  assert.ok(has("agent/commands/mod.ts", "agent/commands/doctor.ts"), "dynamic import");
  assert.ok(EDGES.some((e) => e.typeOnly), "type-only imports");
});

Deno.test("nothing under agent/ outside agent/commands/ imports from agent/commands/", () => {
  const bad = EDGES.filter((e) =>
    e.from.startsWith("agent/") && !e.from.startsWith("agent/commands/") && e.to.startsWith("agent/commands/")
  );
  assert.deepEqual(bad, []);
});

Deno.test("checks/ imports from agent/ only core, the cache placement rule, CUDA data and profile types", () => {
  const allowed = (to: string) =>
    to.startsWith("agent/core/") || to === "agent/cache/placement.ts" || to === "agent/compat.ts" ||
    to.startsWith("agent/data/") || to === "agent/profiles/types.ts" || to.startsWith("checks/");
  const bad = EDGES.filter((e) => e.from.startsWith("checks/") && !allowed(e.to));
  assert.deepEqual(bad, []);
});

Deno.test("agent/core/ depends on nothing above it", () => {
  const bad = EDGES.filter((e) => e.from.startsWith("agent/core/") && !e.to.startsWith("agent/core/"));
  assert.deepEqual(bad, []);
});

Deno.test("no module loads itself through a circle of imports", () => {
  const graph = new Map<string, string[]>();
  for (const e of EDGES.filter((e) => !e.typeOnly)) graph.set(e.from, [...(graph.get(e.from) ?? []), e.to]);
  const state = new Map<string, "open" | "done">();
  const cycles: string[][] = [];
  const visit = (node: string, path: string[]) => {
    if (state.get(node) === "done") return;
    if (state.get(node) === "open") {
      cycles.push([...path.slice(path.indexOf(node)), node]);
      return;
    }
    state.set(node, "open");
    for (const next of graph.get(node) ?? []) visit(next, [...path, node]);
    state.set(node, "done");
  };
  for (const node of graph.keys()) visit(node, []);
  assert.deepEqual(cycles, []);
});

/** The files `root` loads before running (static imports only), and the libraries they import. */
function staticLoad(root: string): { seen: Set<string>; libraries: string[] } {
  const statically = new Map<string, string[]>();
  for (const e of EDGES.filter((e) => !e.typeOnly && !e.dynamic)) {
    statically.set(e.from, [...(statically.get(e.from) ?? []), e.to]);
  }
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    stack.push(...(statically.get(f) ?? []));
  }
  const libraries: string[] = [];
  for (const file of seen) {
    const text = Deno.readTextFileSync(`${REPO_ROOT}/${file}`);
    for (const m of text.matchAll(/^import\s+(?!type\s)[^;]*?from\s+"([^".][^"]*)"/gm)) {
      if (!m[1].startsWith("node:")) libraries.push(`${file}: ${m[1]}`);
    }
  }
  return { seen, libraries };
}

Deno.test("start-up loads no library: the modules main.ts imports statically use only Deno, node: and each other", () => {
  const { seen, libraries } = staticLoad("main.ts");
  assert.ok(seen.size > 5, `only ${seen.size} modules seen from main.ts`);
  assert.deepEqual(libraries, []);
});

Deno.test("deno run reads only the start-up modules: the module graph Deno builds for main.ts stops at the command table", async () => {
  // Deno resolves every module its graph reaches before main.ts runs, used or not; the command table's
  // specifiers keep the commands out of that graph, which is most of the start-up mlagent adds (bench startup).
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `${REPO_ROOT}/main.ts`],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.ok(out.success, "deno info main.ts");
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: { specifier: string }[] };
  const files = graph.modules.map((m) => m.specifier.replace(`file://${REPO_ROOT}/`, ""));
  assert.deepEqual(files.filter((f) => /^agent\/commands\/(?!mod\.ts)/.test(f)), []);
  assert.ok(files.length < 20, `main.ts's graph has ${files.length} modules: ${files.join(" ")}`);
});

Deno.test("the hot commands load only the profile validator and the small hashes up front: the JSON locator and msgpack wait until needed", () => {
  // Each library costs tens of ms to load; a job's prologue or a no-op install needs neither unless a profile
  // is broken or a pip cache is scanned.
  for (const command of ["status", "install", "prologue", "run", "env", "verify", "health"]) {
    const { libraries } = staticLoad(`agent/commands/${command}.ts`);
    assert.deepEqual(
      libraries.filter((l) => !/: (@cfworker\/json-schema|@noble\/hashes\/[a-z0-9]+\.js)$/.test(l)),
      [],
      `mlagent ${command} loads these before it runs`,
    );
  }
});

Deno.test("the hot commands load no Node module up front: the Node layer under node:crypto, node:util or node:zlib costs ~30 ms", () => {
  for (
    const command of ["status", "install", "prologue", "run", "env", "verify", "health", "doctor", "lock"]
  ) {
    const { seen } = staticLoad(`agent/commands/${command}.ts`);
    const nodeImports = [...seen].flatMap((file) =>
      [
        ...Deno.readTextFileSync(`${REPO_ROOT}/${file}`).matchAll(
          /^import\s+(?!type\s)[^;]*?from\s+"(node:[^"]+)"/gm,
        ),
      ]
        .map((m) => `${file}: ${m[1]}`)
    );
    assert.deepEqual(nodeImports, [], `mlagent ${command} loads these before it runs`);
  }
});

Deno.test("only main.ts reads Deno.args, and nothing outside main.ts and core/env.ts ends the process", () => {
  const offenders: string[] = [];
  for (const file of [...sourceFiles("agent"), ...sourceFiles("checks")]) {
    const text = Deno.readTextFileSync(`${REPO_ROOT}/${file}`);
    if (/\bDeno\.args\b/.test(text)) offenders.push(`${file}: Deno.args`);
    if (/\bDeno\.exit\(/.test(text) && file !== "agent/core/env.ts") offenders.push(`${file}: Deno.exit`);
  }
  assert.deepEqual(offenders, []);
});
