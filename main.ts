/**
 * mlagent's entry point: the only place that reads Deno.args and calls Deno.exit. Builds the real Env,
 * runs the CLI, renders the outcome, and maps errors to exit codes once.
 */
import { dispatch, VERSION } from "./agent/cli.ts";
import { COMMANDS } from "./agent/commands/mod.ts";
import { realEnv } from "./agent/core/env.ts";
import { EXIT, fromSystemError, MlagentError } from "./agent/core/errors.ts";
import { render } from "./agent/core/output.ts";

async function main(argv: string[]): Promise<number> {
  const before = argv.indexOf("--") === -1 ? argv : argv.slice(0, argv.indexOf("--"));
  const quiet = before.includes("--quiet") || before.includes("-q");
  const env = realEnv({
    verbose: before.includes("--verbose") || before.includes("-v"),
    quiet,
    noProgress: before.includes("--no-progress"),
  });
  const asJson = before.includes("--json");
  try {
    const inv = await dispatch(argv, COMMANDS);
    if (inv.kind === "help") {
      await env.writeStdout(inv.text + "\n");
      return EXIT.ok;
    }
    if (inv.kind === "version") {
      await env.writeStdout(asJson ? JSON.stringify({ version: VERSION }) + "\n" : `mlagent ${VERSION}\n`);
      return EXIT.ok;
    }
    const outcome = await inv.command.run(env, inv.argv);
    await render(env, outcome, asJson, quiet);
    return outcome.exitCode;
  } catch (caught) {
    // What the operating system refused (a full disk, a read-only mount) is not a bug: say what it means.
    const e = fromSystemError(caught) ?? caught;
    if (e instanceof MlagentError) {
      // One clear line naming what was wrong, then the hint; with --json also a document on stdout.
      env.log.error(e.message);
      if (e.hint) env.log.hint(e.hint);
      if (asJson) {
        await render(env, {
          exitCode: e.exitCode,
          json: {
            ok: false,
            error: { code: e.code, message: e.message, hint: e.hint ?? null, ...e.details },
          },
          text: "",
        }, true);
      }
      return e.exitCode;
    }
    // A bug: one line and where to report it; the stack only with --verbose.
    const message = e instanceof Error ? e.message : String(e);
    env.log.error(`internal error: ${message}`);
    env.log.hint("this is a bug in mlagent; run again with --verbose for the stack, and report it");
    if (e instanceof Error && e.stack) env.log.debug(e.stack);
    if (asJson) {
      await render(env, {
        exitCode: EXIT.failed,
        json: {
          ok: false,
          error: { code: "internal", message, hint: "this is a bug in mlagent; please report it" },
        },
        text: "",
      }, true);
    }
    return EXIT.failed;
  } finally {
    // Probes abandoned at a deadline (a hung nvidia-smi, a stat on a dead mount) die with mlagent.
    env.stopChildren();
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
