/**
 * The command table, in the order --help lists them. Each module is imported only when its command is used.
 *
 * The specifiers are sums of three string constants on purpose: Deno's module graph follows a plain literal and
 * globs `"./" + x` over the folder, but not this, so `deno run main.ts` does not read and resolve the commands'
 * 150-odd modules before it starts (about 25 ms, most of what mlagent added to the runtime's own start; `deno
 * task bench startup`; tests/layout_test.ts holds it). The bundler folds the sums and includes every command;
 * scripts/build.ts names them to `deno compile` with --include.
 */
import type { CommandEntry } from "../cli.ts";

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: "doctor",
    summary: "Check this node: GPUs, driver, CUDA, Python, disk, TMPDIR, installers",
    load: async () => (await import("./" + "doctor" + ".ts")).doctorCommand,
  },
  {
    name: "install",
    summary: "Build or repair the verified venv for a profile",
    load: async () => (await import("./" + "install" + ".ts")).installCommand,
  },
  {
    name: "run",
    summary: "Run a command in a profile's venv, its models named, held against removal",
    load: async () => (await import("./" + "run" + ".ts")).runCommand,
  },
  {
    name: "env",
    summary: "Print the environment `run` gives a command, for a shell to evaluate",
    load: async () => (await import("./" + "env" + ".ts")).envCommand,
  },
  {
    name: "remove",
    summary: "Remove a profile's venv (and its models), waiting for running jobs",
    load: async () => (await import("./" + "remove" + ".ts")).removeCommand,
  },
  {
    name: "models",
    summary: "List model directories (repo, size, completeness, users); remove one",
    load: async () => (await import("./" + "models" + ".ts")).modelsCommand,
  },
  {
    name: "profiles",
    summary: "List, show and lint profiles",
    load: async () => (await import("./" + "profiles" + ".ts")).profilesCommand,
  },
  {
    name: "download",
    summary: "Download a Hugging Face repo, resumably and verified",
    load: async () => (await import("./" + "download" + ".ts")).downloadCommand,
  },
  {
    name: "verify",
    summary: "Prove a profile's venv and models are whole (cron, prologue --verify)",
    load: async () => (await import("./" + "verify" + ".ts")).verifyCommand,
  },
  {
    name: "status",
    summary: "Report venvs, models, cache, locks and the last doctor verdict",
    load: async () => (await import("./" + "status" + ".ts")).statusCommand,
  },
  {
    name: "prologue",
    summary: "Gate a job's start (LSF pre-exec, Slurm Prolog/TaskProlog)",
    load: async () => (await import("./" + "prologue" + ".ts")).prologueCommand,
  },
  {
    name: "health",
    summary: "Check this node for the scheduler's health hook; drain on a fault, resume once healthy",
    load: async () => (await import("./" + "health" + ".ts")).healthCommand,
  },
  {
    name: "fleet",
    summary: "Merge the nodes' status and health files into one cluster report",
    load: async () => (await import("./" + "fleet" + ".ts")).fleetCommand,
  },
  {
    name: "cache",
    summary: "Inspect and heal the node-local installer cache",
    load: async () => (await import("./" + "cache" + ".ts")).cacheCommand,
  },
  {
    name: "lock",
    summary: "List, check, clear locks; run a command under a lock",
    load: async () => (await import("./" + "lock" + ".ts")).lockCommand,
  },
];
