import type { Command } from "../cli.ts";
import { failed } from "../errors.ts";

export const lockCommand: Command = {
  name: "lock",
  summary: "List, check, clear locks; run a command under a lock",
  help: "Usage: mlagent lock [options]",
  run: () => Promise.reject(failed("lock: not implemented yet")),
};
