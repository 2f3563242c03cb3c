/** The command table, in the order --help lists them. */
import type { Command } from "../cli.ts";
import { doctorCommand } from "./doctor.ts";
import { installCommand } from "./install.ts";
import { profilesCommand } from "./profiles.ts";
import { statusCommand } from "./status.ts";
import { prologueCommand } from "./prologue.ts";
import { lockCommand } from "./lock.ts";
import { cacheCommand } from "./cache.ts";
import { downloadCommand } from "./download.ts";

export const COMMANDS: Command[] = [
  doctorCommand,
  installCommand,
  profilesCommand,
  downloadCommand,
  statusCommand,
  prologueCommand,
  cacheCommand,
  lockCommand,
];
