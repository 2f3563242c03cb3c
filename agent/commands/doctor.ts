import type { Command } from "../cli.ts";
import { failed } from "../errors.ts";

export const doctorCommand: Command = {
  name: "doctor",
  summary: "Check this node: GPUs, driver, CUDA, Python, disk, TMPDIR, installers",
  help: "Usage: mlagent doctor [options]",
  run: () => Promise.reject(failed("doctor: not implemented yet")),
};
