import type { Command } from "../cli.ts";
import { failed } from "../errors.ts";

export const cacheCommand: Command = {
  name: "cache",
  summary: "Inspect and heal the node-local installer cache",
  help: "Usage: mlagent cache [options]",
  run: () => Promise.reject(failed("cache: not implemented yet")),
};
