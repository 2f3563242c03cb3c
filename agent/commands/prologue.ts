import type { Command } from "../cli.ts";
import { failed } from "../errors.ts";

export const prologueCommand: Command = {
  name: "prologue",
  summary: "Gate a job's start (LSF/Slurm prologue)",
  help: "Usage: mlagent prologue [options]",
  run: () => Promise.reject(failed("prologue: not implemented yet")),
};
