import type { Command } from "../cli.ts";
import { failed } from "../errors.ts";

export const statusCommand: Command = {
  name: "status",
  summary: "Report venvs, models, cache, locks and the last doctor verdict",
  help: "Usage: mlagent status [options]",
  run: () => Promise.reject(failed("status: not implemented yet")),
};
