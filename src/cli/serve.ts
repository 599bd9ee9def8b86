#!/usr/bin/env node
/** colbert-serve: NextPlaid-compatible /encode server over an exported model folder. */
import { Command } from "commander";
import { createServer } from "../server/server.js";
import { VERSION } from "../version.js";
import { addEncoderOptions, loadEncoder, type EncoderFlags } from "./encoder-options.js";
import { parseCommand, runCli } from "./run.js";

interface Flags extends EncoderFlags {
  host: string;
  port: number;
  quiet?: boolean;
}

async function main(): Promise<void> {
  const cmd = addEncoderOptions(new Command())
    .name("colbert-serve")
    .description("Serve an exported ColBERT model over HTTP (NextPlaid API: /encode, /rerank_with_encoding, /health).")
    .version(VERSION, "--version")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port (0 picks a free one)", (v) => Number(v), 8080)
    .option("--quiet", "no startup output");
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags>();
  const encoder = await loadEncoder(flags);
  const server = createServer({ encoder, quantized: !!flags.int8 });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(flags.port, flags.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : flags.port;
  if (!flags.quiet) process.stderr.write(`colbert-serve ${VERSION}: ${encoder.config.model_name} on http://${flags.host}:${port}\n`);
  // Graceful shutdown: stop accepting, let in-flight requests finish, then release the model.
  const stop = () => {
    server.close(() => {
      void encoder.close().then(() => process.exit(0));
    });
    server.closeIdleConnections();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

runCli(main);
