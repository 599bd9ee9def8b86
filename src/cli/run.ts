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
/** `--chunk-tokens N` (export, quantize): 0 (plain graphs) or a positive integer. */
export function parseChunkTokens(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new UserError(`--chunk-tokens must be 0 (whole batches) or a positive integer, got "${value}"`);
  return n;
}

/**
 * A --json summary line: keys in snake_case (as the configs), durations (`seconds` keys) rounded
 * to milliseconds.
 */
export function jsonLine(value: unknown): string {
  const snake = (k: string) => k.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
  const walk = (v: unknown, key = ""): unknown => {
    if (Array.isArray(v)) return v.map((x) => walk(x));
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [snake(k), walk(x, k)]));
    if (typeof v === "number" && /seconds$/i.test(key)) return Math.round(v * 1000) / 1000;
    return v;
  };
  return JSON.stringify(walk(value)) + "\n";
}

const HUB_ENVIRONMENT = (push: boolean) => `
Environment:
  HF_TOKEN                 Hugging Face token (private/gated models${push ? ", --push-to-hub" : ""}); else the
                           token file \`huggingface-cli login\` writes
  HF_ENDPOINT              Hub URL (default https://huggingface.co)
  HF_HOME, HF_HUB_CACHE    where downloads are cached (shared with Python's huggingface_hub)
  HF_HUB_OFFLINE=1         use only the cache, never the network
  HF_HUB_DOWNLOAD_TIMEOUT  seconds the Hub may stay silent before giving up (default 10)
  DEBUG=1                  print stack traces with errors`;

const LOCAL_ENVIRONMENT = `
Environment:
  DEBUG=1                  print stack traces with errors`;

/**
 * Adds examples and the environment section to a command's --help: the Hub's variables for
 * commands that download ("hub"; "push": and publish), only DEBUG for local ones.
 */
export function withHelp(cmd: Command, examples: string[], env: "push" | "hub" | "local" = "hub", extra = ""): Command {
  const environment = env === "local" ? LOCAL_ENVIRONMENT : HUB_ENVIRONMENT(env === "push");
  return cmd.addHelpText("after", `${extra}\nExamples:\n${examples.map((e) => `  ${e}`).join("\n")}\n${environment}`);
}
