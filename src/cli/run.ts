/** Shared CLI plumbing: one-line errors, exit codes. */
import { CommanderError, type Command } from "commander";
import { environmentError, UserError } from "../errors.js";

export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, " ").trim();
}

/** Runs a CLI main: errors become `Error: …` on stderr and exit code 1. */
export function runCli(main: () => Promise<void>): void {
  main().then(
    () => {
      process.exitCode = process.exitCode ?? 0;
    },
    (e: unknown) => {
      const err = e as Error;
      const known = e instanceof UserError ? e : environmentError(e);
      const message = known ? known.message : `unexpected failure: ${err?.message ?? String(e)} (please report this bug)`;
      process.stderr.write(`Error: ${oneLine(message)}\n`);
      if (process.env["DEBUG"] && err?.stack) process.stderr.write(err.stack + "\n");
      process.exitCode = 1;
    },
  );
}

export function parseIntOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new UserError(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

/**
 * Parses argv with `cmd`; returns false when commander already answered (--help, --version).
 * Parse errors become one-line UserErrors.
 */
export function parseCommand(cmd: Command): boolean {
  cmd.exitOverride().configureOutput({ outputError: () => {} });
  try {
    cmd.parse(process.argv);
    return true;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return false;
      throw new UserError(`${oneLine(e.message.replace(/^error: /, ""))} (see --help)`);
    }
    throw e;
  }
}

/** The environment variables the commands read, for --help. */
export const ENVIRONMENT_HELP = `
Environment:
  HF_TOKEN                 Hugging Face token (private/gated models, --push-to-hub); else the
                           token file \`huggingface-cli login\` writes
  HF_ENDPOINT              Hub URL (default https://huggingface.co)
  HF_HOME, HF_HUB_CACHE    where downloads are cached (shared with Python's huggingface_hub)
  HF_HUB_OFFLINE=1         use only the cache, never the network
  HF_HUB_DOWNLOAD_TIMEOUT  seconds the Hub may stay silent before giving up (default 10)
  DEBUG=1                  print stack traces with errors`;

/** Adds examples and the environment section to a command's --help. */
export function withHelp(cmd: Command, examples: string[]): Command {
  return cmd.addHelpText("after", `\nExamples:\n${examples.map((e) => `  ${e}`).join("\n")}\n${ENVIRONMENT_HELP}`);
}
