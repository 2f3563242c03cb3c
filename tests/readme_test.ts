/**
 * The README is tested, so it and the program cannot drift apart. Every `mlagent` line in its code blocks is
 * either a usage synopsis (placeholders, brackets), whose every flag must appear in that command's own
 * --help, or an example, which is run as written in a sandbox (local fake node, the network a closed port,
 * the files it names present) and must parse: no usage error, no stack trace, one JSON document with --json,
 * and the exit code the README shows where it shows one (`$ echo $?`).
 */
import assert from "node:assert/strict";
import { runMlagent } from "./support/cli.ts";
import { FIXTURES, hermeticVars, REPO_ROOT, tempDir, testEnv } from "./support/env.ts";
import { acquire, namedLockSpec } from "../agent/lock/mod.ts";
import { writeFakeBin } from "./support/fake_bin.ts";

interface Line {
  text: string;
  lineNo: number;
  /** The exit code the README shows right after it, if any. */
  exit: number | null;
}

/** `mlagent ...` lines inside fenced code blocks (prompts and `npx ... task` prefixes dropped). */
function readmeLines(): Line[] {
  const lines = Deno.readTextFileSync(`${REPO_ROOT}/README.md`).split("\n");
  const out: Line[] = [];
  let inBlock = false;
  /** A block with `$ ` prompts shows output too: there only prompted lines are commands. */
  let prompted = false;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trimStart().startsWith("```")) {
      inBlock = !inBlock;
      if (inBlock) {
        const end = lines.findIndex((l, k) => k > i && l.trimStart().startsWith("```"));
        prompted = lines.slice(i + 1, end < 0 ? undefined : end).some((l) => l.startsWith("$ "));
      }
      continue;
    }
    if (!inBlock || (prompted && !raw.startsWith("$ "))) continue;
    const m = raw.match(/^\s*(?:\$ )?(?:npx -y deno@\S+ task )?(mlagent\s.*?)\s*(?:#.*)?$/);
    if (!m) continue;
    let exit: number | null = null;
    for (let j = i + 1; j < Math.min(lines.length, i + 6); j++) {
      if (/^\$ echo \$\?/.test(lines[j])) {
        exit = Number(lines[j + 1]);
        break;
      }
      if (/^\s*(?:\$ )?mlagent\s/.test(lines[j]) || lines[j].startsWith("```")) break;
    }
    out.push({ text: m[1], lineNo: i + 1, exit });
  }
  return out;
}

/** Splits a shell-ish line into words, honouring single and double quotes. */
function words(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

const isSynopsis = (text: string) =>
  /[\[\]]|\.\.\.|\b(PROFILE|NAME|FILE|DIR|REPO|COMMAND|VARIANT|SIZE)\b/.test(text);

const LINES = readmeLines();

Deno.test("the README holds both kinds of mlagent lines", () => {
  assert.ok(LINES.filter((l) => isSynopsis(l.text)).length >= 10, "synopses");
  assert.ok(LINES.filter((l) => !isSynopsis(l.text)).length >= 5, "examples");
});

Deno.test("every flag in a README synopsis appears in that command's --help", async () => {
  const helps = new Map<string, string>();
  const missing: string[] = [];
  for (const l of LINES.filter((l) => isSynopsis(l.text))) {
    const w = words(l.text).slice(1);
    // The command, and its subcommand when the second word is one (lowercase, not a flag or placeholder).
    const key = /^[a-z][a-z-]*$/.test(w[1] ?? "") ? [w[0], w[1]] : [w[0]];
    const id = key.join(" ");
    if (!helps.has(id)) {
      const r = await runMlagent([...key, "--help"]);
      assert.equal(r.code, 0, `mlagent ${id} --help: ${r.stderr}`);
      helps.set(id, r.stdout);
    }
    for (const flag of l.text.matchAll(/--[a-z][a-z-]*/g)) {
      if (!helps.get(id)!.includes(flag[0])) missing.push(`README:${l.lineNo} ${id} ${flag[0]}`);
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("every README example runs as written: no usage error, no stack trace, the exit code it shows", async () => {
  await using d = await tempDir("mlagent-readme-");
  await Deno.mkdir(`${d.path}/bin`);
  await writeFakeBin(`${d.path}/bin`, "nvidia-smi", {
    stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`,
  });
  await writeFakeBin(`${d.path}/bin`, "dmesg", { stdout: "" });
  // The files the examples name, in the directory they run from.
  const yolo = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/profiles/yolo.json`));
  await Deno.writeTextFile(`${d.path}/my-model.json`, JSON.stringify({ ...yolo, name: "my-model" }, null, 2));
  await Deno.writeTextFile(`${d.path}/prepare.sh`, "#!/bin/sh\nexit 0\n");
  await Deno.chmod(`${d.path}/prepare.sh`, 0o755);
  const env = {
    HOME: `${d.path}/home`,
    MLAGENT_ROOT: `${d.path}/venvs`,
    MLAGENT_STATE_DIR: `${d.path}/state`,
    MLAGENT_MODELS_DIR: `${d.path}/models`,
    MLAGENT_CACHE_DIR: `${d.path}/cache`,
    MLAGENT_LOCK_DIR: `${d.path}/locks`,
    MLAGENT_INDEX_URL: "http://127.0.0.1:1/simple/",
    MLAGENT_RETRY_BASE_MS: "1",
    HF_ENDPOINT: "http://127.0.0.1:1",
    HF_HOME: `${d.path}/hf`,
    PATH: `${d.path}/bin:${Deno.env.get("PATH")}`,
  };
  const problems: string[] = [];
  for (const l of LINES.filter((l) => !isSynopsis(l.text))) {
    const argv = words(l.text).slice(1);
    // An example that shows a busy lock (exit 3) is run while someone holds that lock, as it says.
    const holder = l.exit === 3 && argv[0] === "lock"
      ? await acquire(
        testEnv({ vars: hermeticVars(env) }),
        namedLockSpec(testEnv({ vars: hermeticVars(env) }), argv[2], "README example"),
        { handleSignals: false },
      )
      : null;
    const r = await runMlagent(argv, { env, cwd: d.path, timeoutMs: 120_000 });
    await holder?.release();
    const where = `README:${l.lineNo} \`${l.text}\` (exit ${r.code})`;
    if (
      /^error: .*(unknown option|unknown command|unexpected argument|needs a value|takes no value|must be a)/m
        .test(r.stderr)
    ) {
      problems.push(`${where}: usage error: ${r.stderr.split("\n")[0]}`);
    }
    if (/^\s+at .*\.(ts|js):\d+:\d+\)?$/m.test(r.stderr)) problems.push(`${where}: stack trace`);
    if (argv.includes("--json")) {
      try {
        const doc = JSON.parse(r.stdout);
        if (doc?.error?.code === "usage") problems.push(`${where}: usage error`);
      } catch {
        problems.push(`${where}: --json printed no single document`);
      }
    }
    if (l.exit !== null && r.code !== l.exit) problems.push(`${where}: the README shows exit ${l.exit}`);
  }
  assert.deepEqual(problems, []);
});
