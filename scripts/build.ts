/**
 * Builds the self-contained binaries with `deno compile` into dist/: x86_64 and aarch64 Linux.
 * deno compile fetches its runtime (denort) from the internet; where that is unreachable, point
 * DENORT_BIN at a denort binary for the target (then only that target is built).
 * Usage: deno task build [--target x86_64-unknown-linux-gnu]
 */
const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];
const root = new URL("../", import.meta.url).pathname;

/**
 * Modules imported by a specifier spelled as a sum of strings (`import("./" + "planned" + ".ts")`), which the
 * module graph does not follow so that hot paths do not read them: found in the source, so none is missed.
 */
function summedImports(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${root}/${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...summedImports(path));
    else if (e.name.endsWith(".ts")) {
      const text = Deno.readTextFileSync(`${root}/${path}`);
      for (const m of text.matchAll(/import\(\s*("\.[^"]*"(?:\s*\+\s*"[^"]*")+)\s*\)/g)) {
        const spec = m[1].split("+").map((part) => part.trim().slice(1, -1)).join("");
        out.push(new URL(spec, `file://${root}/${path}`).pathname);
      }
    }
  }
  return out;
}
const lazyModules = [...new Set([...summedImports("agent"), ...summedImports("checks")])];

const args = Deno.args;
const only = args.includes("--target") ? [args[args.indexOf("--target") + 1]] : null;
const denort = Deno.env.get("DENORT_BIN");
const targets = only ?? (denort ? [Deno.build.target] : TARGETS);

await Deno.mkdir(`${root}/dist`, { recursive: true });
let failures = 0;
for (const target of targets) {
  const arch = target.split("-")[0];
  const out = `${root}/dist/mlagent-linux-${arch}`;
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--allow-all",
      "--no-check",
      "--target",
      target,
      "--output",
      out,
      // The command table and the no-op install import by specifiers the module graph does not follow.
      ...lazyModules.flatMap((m) => ["--include", m]),
      `${root}/main.ts`,
    ],
    env: denort ? { DENORT_BIN: denort } : {},
    stdout: "inherit",
    stderr: "inherit",
  });
  const { code } = await cmd.output();
  if (code === 0) console.error(`built ${out}`);
  else {
    console.error(
      `deno compile failed for ${target} (exit ${code}); set DENORT_BIN where the runtime cannot be downloaded`,
    );
    failures++;
  }
}
Deno.exit(failures ? 1 : 0);
