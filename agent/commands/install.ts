import type { Command } from "../cli.ts";
import { failed } from "../errors.ts";

export const installCommand: Command = {
  name: "install",
  summary: "Build or repair the verified venv for a profile",
  help: "Usage: mlagent install [options]",
  run: () => Promise.reject(failed("install: not implemented yet")),
};
