import type { Command } from "../cli.ts";
import { failed } from "../errors.ts";

export const profilesCommand: Command = {
  name: "profiles",
  summary: "List, show and lint profiles",
  help: "Usage: mlagent profiles [options]",
  run: () => Promise.reject(failed("profiles: not implemented yet")),
};
