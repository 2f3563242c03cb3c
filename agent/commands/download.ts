import type { Command } from "../cli.ts";
import { failed } from "../errors.ts";

export const downloadCommand: Command = {
  name: "download",
  summary: "Download a Hugging Face repo, resumably and verified",
  help: "Usage: mlagent download [options]",
  run: () => Promise.reject(failed("download: not implemented yet")),
};
