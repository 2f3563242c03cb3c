/**
 * Every command's --json output has a JSON Schema in schemas/, and real outputs (spawned main.ts against
 * fake nodes, a local package index and a local Hub) validate against it. To cover a new command or
 * subcommand, add a row to CASES: the schema it must match, its argv, and the setup it needs.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../agent/commands/mod.ts";
import { validateJson } from "../agent/core/jsonschema.ts";
import { acquire, namedLockSpec } from "../agent/lock/mod.ts";
import { runMlagent } from "./support/cli.ts";
import { FIXTURES, REPO_ROOT, tempDir, testEnv } from "./support/env.ts";
import { writeFakeBin } from "./support/fake_bin.ts";
import { smallRepo } from "./support/hf_server.ts";
import { makeNode, testProfile, writeProfile, writeVenv } from "./support/node_states.ts";
import { startIndex, testDists } from "./support/pypi.ts";

const ONE_GPU_XML = `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`;

// deno-lint-ignore no-explicit-any
const loadSchema = (name: string): any =>
  JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}/schemas/${name}.schema.json`));

interface Ctx {
  vars: Record<string, string>;
  dir: string;
}

interface Case {
  /** schemas/<schema>.schema.json; error documents are always checked against schemas/error.schema.json. */
  schema: string;
  name: string;
  argv: (c: Ctx) => string[];
  /** Expected exit codes (the document must exist whatever the code). */
  codes: number[];
  /** The document is the error document (ok false, error {...}). */
  error?: boolean;
  env?: (c: Ctx) => Record<string, string>;
}

const CASES: Case[] = [
  { schema: "doctor", name: "doctor on a one-GPU node", argv: () => ["doctor"], codes: [0, 1] },
  {
    schema: "doctor",
    name: "doctor for a profile",
    argv: () => ["doctor", "--profile", "demo"],
    codes: [0, 1],
  },
  {
    schema: "install",
    name: "install of a one-stage profile",
    argv: (c) => ["install", `${c.dir}/profiles/tiny.json`],
    codes: [0],
  },
  {
    schema: "install",
    name: "install --dry-run",
    argv: (c) => ["install", `${c.dir}/profiles/tiny.json`, "--dry-run", "--force"],
    codes: [0],
  },
  { schema: "verify", name: "verify of a ready venv", argv: () => ["verify", "demo"], codes: [0, 1] },
  {
    schema: "verify",
    name: "verify --deep of a failed venv",
    argv: () => ["verify", "broken", "--deep"],
    codes: [1],
  },
  { schema: "profiles", name: "profiles list", argv: () => ["profiles", "list"], codes: [0] },
  { schema: "profiles", name: "profiles show", argv: () => ["profiles", "show", "yolo"], codes: [0] },
  {
    schema: "profiles",
    name: "profiles lint with errors",
    argv: (c) => ["profiles", "lint", `${c.dir}/bad.json`],
    codes: [2],
  },
  {
    schema: "download",
    name: "download from the local Hub",
    argv: (c) => ["download", c.vars.TEST_REPO, "--local-dir", `${c.dir}/dl`],
    codes: [0],
  },
  {
    schema: "download",
    name: "download --verify",
    argv: (c) => ["download", c.vars.TEST_REPO, "--local-dir", `${c.dir}/dl`, "--verify"],
    codes: [0],
  },
  {
    schema: "download",
    name: "download --cache (the hub cache layout)",
    argv: (c) => ["download", c.vars.TEST_REPO, "--cache"],
    codes: [0],
  },
  {
    schema: "download",
    name: "download --cache --verify",
    argv: (c) => ["download", c.vars.TEST_REPO, "--cache", "--verify"],
    codes: [0],
  },
  { schema: "status", name: "status of every venv", argv: () => ["status"], codes: [0] },
  {
    schema: "status",
    name: "status of named profiles",
    argv: () => ["status", "demo", "tiny"],
    codes: [0, 1],
  },
  {
    schema: "prologue",
    name: "prologue that runs the job",
    argv: () => ["prologue"],
    codes: [0],
    env: () => ({ LSB_JOBID: "1" }),
  },
  {
    schema: "prologue",
    name: "prologue with a job fault",
    argv: () => ["prologue", "--profile", "missing-venv"],
    codes: [99],
    env: () => ({ LSB_JOBID: "1" }),
  },
  {
    schema: "prologue",
    name: "prologue with a hung nvidia-smi",
    argv: () => ["prologue", "--timeout", "1"],
    codes: [1],
    env: (c) => ({ SLURM_JOB_ID: "1", CUDA_VISIBLE_DEVICES: "0", PATH: `${c.dir}/hang:${c.vars.PATH}` }),
  },
  {
    schema: "health",
    name: "health of a one-GPU node, report only, written for the fleet",
    argv: (c) => ["health", "--no-drain", "--output", `${c.dir}/fleet/`],
    codes: [0, 1],
  },
  {
    schema: "health",
    name: "health with a hung nvidia-smi (LSF, dry run)",
    argv: () => ["health", "--scheduler", "lsf", "--dry-run", "--timeout", "4"],
    codes: [1],
    env: (c) => ({ PATH: `${c.dir}/hang:${c.vars.PATH}` }),
  },
  {
    schema: "status",
    name: "status written into the fleet directory",
    argv: (c) => ["status", "--output", `${c.dir}/fleet/`],
    codes: [0],
  },
  { schema: "fleet", name: "fleet of one node", argv: (c) => ["fleet", `${c.dir}/fleet`], codes: [0, 1] },
  {
    schema: "fleet",
    name: "fleet with a cut-short node file",
    argv: (c) => ["fleet", `${c.dir}/fleet-bad`],
    codes: [1],
  },
  { schema: "cache", name: "cache info", argv: () => ["cache", "info"], codes: [0] },
  { schema: "cache", name: "cache heal", argv: () => ["cache", "heal"], codes: [0] },
  { schema: "cache", name: "cache clean (dry run)", argv: () => ["cache", "clean"], codes: [0] },
  { schema: "lock", name: "lock list with a held lock", argv: () => ["lock", "list"], codes: [0] },
  {
    schema: "lock",
    name: "lock check of a held lock",
    argv: () => ["lock", "check", "held-one"],
    codes: [3],
  },
  { schema: "lock", name: "lock clear (dry run)", argv: () => ["lock", "clear"], codes: [0] },
  {
    schema: "lock",
    name: "lock run of a command that prints",
    argv: () => ["lock", "run", "free-one", "--", "sh", "-c", "echo from the command; exit 3"],
    codes: [3],
  },
  {
    schema: "error",
    name: "lock run of a command not found",
    argv: () => ["lock", "run", "free-one", "--", "no-such-command-xyz"],
    codes: [127],
    error: true,
  },
  {
    schema: "env",
    name: "env of a ready venv",
    argv: () => ["env", "demo"],
    codes: [0],
  },
  { schema: "remove", name: "remove (dry run)", argv: () => ["remove", "demo", "--models"], codes: [0] },
  {
    schema: "remove",
    name: "remove --yes",
    argv: () => ["remove", "doomed", "--yes"],
    codes: [0],
  },
  {
    schema: "download",
    name: "download into the models root",
    argv: (
      c,
    ) => ["download", c.vars.TEST_REPO, "--local-dir", `${c.vars.MLAGENT_MODELS_DIR}/${c.vars.TEST_REPO}`],
    codes: [0],
  },
  { schema: "models", name: "models list", argv: () => ["models", "list"], codes: [0] },
  {
    schema: "models",
    name: "models rm (dry run)",
    argv: (c) => ["models", "rm", c.vars.TEST_REPO],
    codes: [0],
  },
  {
    schema: "run",
    name: "run refuses --json (its record goes to --json-status FILE)",
    argv: () => ["run", "demo", "--", "true"],
    codes: [2],
    error: true,
  },
  {
    schema: "error",
    name: "unknown profile",
    argv: () => ["doctor", "--profile", "no-such"],
    codes: [2],
    error: true,
  },
  { schema: "error", name: "bad flag", argv: () => ["status", "--format", "xml"], codes: [2], error: true },
  {
    schema: "error",
    name: "lock busy",
    argv: () => ["lock", "run", "held-one", "--no-wait", "--", "true"],
    codes: [3],
    error: true,
  },
];

Deno.test("every command has a schema in schemas/ and at least one real output checked against it", () => {
  for (const c of COMMANDS) {
    assert.ok(loadSchema(c.name), c.name);
    assert.ok(CASES.some((k) => k.schema === c.name), `no case for ${c.name}`);
  }
  assert.ok(loadSchema("error"));
});

Deno.test("run --json-status records validate against schemas/run.schema.json", async () => {
  await using d = await tempDir();
  const n = await makeNode(d.path);
  const demo = testProfile("demo");
  await writeProfile(n, demo);
  await writeVenv(n.root, "demo", { status: "ready", profile: demo });
  const rows: [string, string[], number][] = [
    ["a command that ran", [
      "run",
      "demo",
      "--json-status",
      `${d.path}/ok.json`,
      "--",
      "python",
      "-c",
      "exit(3)",
    ], 3],
    ["a command not found", ["run", "demo", "--json-status", `${d.path}/nf.json`, "--", "no-such-cmd"], 127],
    ["a profile not ready", ["run", "missing", "--json-status", `${d.path}/nr.json`, "--", "true"], 1],
  ];
  await writeProfile(n, testProfile("missing"));
  for (const [why, argv, code] of rows) {
    const r = await runMlagent(argv, { env: n.vars });
    assert.equal(r.code, code, `${why}: ${r.stderr}`);
    const file = argv[argv.indexOf("--json-status") + 1];
    const doc = JSON.parse(await Deno.readTextFile(file));
    assert.deepEqual(validateJson(loadSchema("run"), doc), [], `${why}: ${JSON.stringify(doc, null, 2)}`);
    assert.equal(doc.exit_code, code, why);
  }
});

Deno.test("records shared between schemas are one definition, copied whole", () => {
  const status = loadSchema("status");
  const verify = loadSchema("verify");
  assert.deepEqual(verify.$defs.venv, status.$defs.venv);
  assert.deepEqual(verify.$defs.model, status.$defs.model);
  assert.deepEqual(loadSchema("install").$defs.check, loadSchema("doctor").$defs.check);
});

Deno.test("the schemas reject documents of the wrong shape", () => {
  const status = loadSchema("status");
  const prologue = loadSchema("prologue");
  const error = loadSchema("error");
  assert.ok(validateJson(status, { schema_version: 1, ok: true }).length > 0);
  assert.ok(validateJson(prologue, { schema_version: 1, ok: true, verdict: "maybe" }).length > 0);
  assert.ok(
    validateJson(error, { schema_version: 1, ok: false, error: { code: "oops", message: "x", hint: null } })
      .length > 0,
  );
});

Deno.test(
  "real --json outputs of every command validate against their schemas",
  { sanitizeResources: false, sanitizeOps: false },
  async (t) => {
    await using d = await tempDir();
    const n = await makeNode(d.path);
    await writeFakeBin(n.bin, "nvidia-smi", { stdoutFile: ONE_GPU_XML });
    await writeFakeBin(n.bin, "dmesg", { stdout: "" });
    await Deno.mkdir(`${d.path}/hang`);
    await writeFakeBin(`${d.path}/hang`, "nvidia-smi", { sleepS: 30 });
    await Deno.writeTextFile(`${d.path}/bad.json`, '{"name": "Bad Name"}');
    const demo = testProfile("demo");
    await writeProfile(n, demo);
    await writeProfile(n, testProfile("missing-venv"));
    await writeVenv(n.root, "demo", { status: "ready", profile: demo });
    await writeProfile(n, testProfile("broken"));
    await writeVenv(n.root, "broken", { status: "failed", profile: testProfile("broken") });
    await writeProfile(n, testProfile("doomed"));
    await writeVenv(n.root, "doomed", { status: "ready", profile: testProfile("doomed") });
    await writeProfile(n, testProfile("tiny", { stages: [{ name: "one", packages: ["mla-gamma==1.0"] }] }));
    await Deno.mkdir(`${d.path}/fleet`);
    await Deno.mkdir(`${d.path}/fleet-bad`);
    await Deno.writeTextFile(
      `${d.path}/fleet-bad/gpu-1.json`,
      '{"schema_version": 1, "node": {"host": "gpu-',
    );

    const dists = await testDists();
    await using index = await startIndex(dists.dir);
    await using hub = smallRepo();
    const vars = {
      ...n.vars,
      MLAGENT_INDEX_URL: index.url,
      MLAGENT_RETRY_BASE_MS: "20",
      HF_ENDPOINT: hub.url,
      HF_HOME: `${d.path}/hf`,
      TEST_REPO: hub.repo,
    };
    const env = testEnv({ vars });
    const held = await acquire(env, namedLockSpec(env, "held-one", "schemas test"), { handleSignals: false });
    const ctx: Ctx = { vars, dir: d.path };
    try {
      for (const c of CASES) {
        await t.step(`${c.schema}: ${c.name}`, async () => {
          const r = await runMlagent(["--json", ...c.argv(ctx)], {
            env: { ...vars, ...c.env?.(ctx) },
            timeoutMs: 180_000,
          });
          assert.ok(c.codes.includes(r.code), `exit ${r.code}, want ${c.codes}\n${r.stdout}\n${r.stderr}`);
          const doc = r.json<Record<string, unknown>>();
          const isError = doc.ok === false && typeof doc.error === "object";
          assert.equal(isError, c.error ?? false, `error document: ${JSON.stringify(doc).slice(0, 400)}`);
          const issues = validateJson(loadSchema(isError ? "error" : c.schema), doc);
          assert.deepEqual(issues, [], JSON.stringify(doc, null, 2).slice(0, 3000));
        });
      }
    } finally {
      await held.release();
    }
  },
);
