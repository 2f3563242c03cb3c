/**
 * Every command, with --json, under environments a careless user, a batch system or a full disk hand it:
 * each run prints exactly one JSON document on stdout, exits with a documented code, shows no stack trace,
 * and leaves nothing running. The network is never reached (indexes and the Hub point at a closed port).
 */
import assert from "node:assert/strict";
import { runMlagent } from "./support/cli.ts";
import { FIXTURES, tempDir } from "./support/env.ts";
import { writeFakeBin } from "./support/fake_bin.ts";
import { CAN_MOUNT } from "./support/mounts.ts";

const DOCUMENTED_EXITS = new Set([0, 1, 2, 3, 99]);
const STACK = /^\s+at .*(\.ts|\.js):\d+:\d+\)?$/m;

/** The commands, each as a user might run it (no network: the index and the Hub are a closed port). */
const COMMANDS: string[][] = [
  ["doctor", "--profile", "yolo"],
  ["install", "yolo", "--dry-run"],
  ["install", "yolo", "--no-models", "--no-wait", "--timeout", "5"],
  ["profiles", "list"],
  ["download", "org/model", "--verify"],
  ["status", "yolo"],
  ["verify", "yolo"],
  ["prologue", "--profile", "yolo", "--timeout", "5"],
  ["cache", "info"],
  ["cache", "heal", "--dry-run"],
  ["cache", "clean"],
  ["lock", "list"],
  ["lock", "check", "some-lock"],
];

/** Processes whose environment carries the marker: anything mlagent started and left behind. */
function leftBehind(marker: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      if (Deno.readTextFileSync(`/proc/${e.name}/environ`).includes(marker)) out.push(Number(e.name));
    } catch { /* gone, or not ours to read */ }
  }
  return out;
}

Deno.test({
  name:
    "every command under hostile environments: one JSON document, a documented exit code, no stack trace, nothing left running",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using d = await tempDir("mlagent-hostile-");
    const base = d.path;
    await Deno.mkdir(`${base}/bin`);
    await writeFakeBin(`${base}/bin`, "nvidia-smi", {
      stdoutFile: `${FIXTURES}/nvidia-smi/xml/q_x_535.86.05_1xRTX4090.xml`,
    });
    await writeFakeBin(`${base}/bin`, "dmesg", { stdout: "" });
    await Deno.writeTextFile(`${base}/a-file`, "not a directory\n");
    await Deno.mkdir(`${base}/ro`);
    // A read-only mount (root ignores file modes, not a read-only filesystem) and a full small tmpfs.
    const mounted: string[] = [];
    if (CAN_MOUNT) {
      for (const [dir, opts] of [["ro", "size=1m,ro"], ["full", "size=64k"]]) {
        await Deno.mkdir(`${base}/${dir}`, { recursive: true });
        const m = await new Deno.Command("mount", {
          args: ["-t", "tmpfs", "-o", opts, "tmpfs", `${base}/${dir}`],
        })
          .output();
        if (m.code === 0) mounted.push(`${base}/${dir}`);
      }
      if (mounted.includes(`${base}/full`)) {
        // Fill it: every later write there fails with ENOSPC.
        await new Deno.Command("dd", {
          args: ["if=/dev/zero", `of=${base}/full/filler`, "bs=4k", "count=100"],
        })
          .output();
      }
    }
    const sane: Record<string, string> = {
      HOME: `${base}/home`,
      MLAGENT_ROOT: `${base}/venvs`,
      MLAGENT_STATE_DIR: `${base}/state`,
      MLAGENT_MODELS_DIR: `${base}/models`,
      MLAGENT_CACHE_DIR: `${base}/cache`,
      MLAGENT_LOCK_DIR: `${base}/locks`,
      MLAGENT_INDEX_URL: "http://127.0.0.1:1/simple/",
      MLAGENT_RETRY_BASE_MS: "1",
      HF_ENDPOINT: "http://127.0.0.1:1",
      HF_HOME: `${base}/hf`,
      PATH: `${base}/bin:${Deno.env.get("PATH")}`,
    };
    const everyPath = (p: string) => ({
      MLAGENT_ROOT: `${p}/venvs`,
      MLAGENT_STATE_DIR: `${p}/state`,
      MLAGENT_MODELS_DIR: `${p}/models`,
      MLAGENT_CACHE_DIR: `${p}/cache`,
      MLAGENT_LOCK_DIR: `${p}/locks`,
      XDG_DATA_HOME: `${p}/data`,
      XDG_STATE_HOME: `${p}/xstate`,
      XDG_CACHE_HOME: `${p}/xcache`,
      HF_HOME: `${p}/hf`,
    });
    const environments: [string, Record<string, string | undefined>][] = [
      ["HOME unset, every place given", { HOME: undefined, USER: undefined, LOGNAME: undefined }],
      ["every MLAGENT_* and XDG path is a file", {
        ...Object.fromEntries(Object.keys(everyPath("")).map((k) => [k, `${base}/a-file`])),
        MLAGENT_PROFILE_PATH: `${base}/a-file`,
      }],
      ["every path lies under a file", everyPath(`${base}/a-file`)],
      ["TMPDIR is a file", { TMPDIR: `${base}/a-file` }],
      ["relative paths", { ...everyPath("rel"), MLAGENT_PROFILE_PATH: "rel/profiles" }],
      ["numbers that are not numbers", {
        MLAGENT_LOCK_TTL: "0x10",
        MLAGENT_XID_WINDOW_S: "ten",
        MLAGENT_RETRY_BASE_MS: "-5",
        MLAGENT_STALL_TIMEOUT_S: "1e999",
      }],
      ...(mounted.includes(`${base}/ro`)
        ? [
          ["every path on a read-only filesystem", everyPath(`${base}/ro`)] as [
            string,
            Record<string, string>,
          ],
        ]
        : []),
      ...(mounted.includes(`${base}/full`)
        ? [["every path on a full disk", everyPath(`${base}/full`)] as [string, Record<string, string>]]
        : []),
    ];
    const marker = `MLAGENT_HOSTILE_MARK=${crypto.randomUUID()}`;
    try {
      for (const [name, vars] of environments) {
        await t.step(name, async () => {
          const problems: string[] = [];
          const cwd = await Deno.makeTempDir({ dir: base });
          // Four at a time: the matrix is long, the machine has two cores.
          const queue = [...COMMANDS];
          const worker = async () => {
            for (let argv = queue.shift(); argv; argv = queue.shift()) {
              const r = await runMlagent(["--json", ...argv], {
                env: { ...sane, ...vars, [marker.split("=")[0]]: marker.split("=")[1] },
                cwd,
                timeoutMs: 60_000,
              });
              const what = `${argv.join(" ")} [exit ${r.code}]`;
              if (!DOCUMENTED_EXITS.has(r.code)) {
                problems.push(`${what}: undocumented exit code\n${r.stderr}`);
              }
              try {
                JSON.parse(r.stdout);
              } catch {
                problems.push(
                  `${what}: stdout is not one JSON document: ${JSON.stringify(r.stdout.slice(0, 300))}`,
                );
              }
              if (STACK.test(r.stderr)) {
                problems.push(`${what}: stack trace on stderr:\n${r.stderr.slice(0, 1500)}`);
              }
            }
          };
          await Promise.all([worker(), worker(), worker(), worker()]);
          const left = leftBehind(marker);
          if (left.length) problems.push(`left running: pids ${left.join(", ")}`);
          assert.deepEqual(problems, []);
        });
      }
    } finally {
      for (const m of mounted) await new Deno.Command("umount", { args: ["-l", m] }).output();
    }
  },
});
