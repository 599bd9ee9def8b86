#!/usr/bin/env node
/** colbert-serve: NextPlaid-compatible /encode server over an exported model folder. */
import { Command } from "commander";
import { ColbertEncoder } from "../runtime/encoder.js";
import { createServer } from "../server/server.js";
import { VERSION } from "../version.js";
import { parseCommand, parseIntOption, runCli } from "./run.js";

interface Flags {
  model: string;
  host: string;
  port: number;
  int8?: boolean;
  sessions: number;
  batchSize: number;
  provider: string;
  queryLength?: number;
  documentLength?: number;
  quiet?: boolean;
}

async function main(): Promise<void> {
  const cmd = new Command()
    .name("colbert-serve")
    .description("Serve an exported ColBERT model over HTTP (NextPlaid API: /encode, /rerank_with_encoding, /health).")
    .version(VERSION, "--version")
    .requiredOption("--model <dir>", "export folder written by pylate-onnx-export")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port (0 picks a free one)", (v) => Number(v), 8080)
    .option("--int8", "use model_int8.onnx")
    .option("--sessions <n>", "parallel onnxruntime sessions", parseIntOption("--sessions"), 1)
    .option("--batch-size <n>", "texts per model call", parseIntOption("--batch-size"), 32)
    .option("--query-length <n>", "override the model's query_length", parseIntOption("--query-length"))
    .option("--document-length <n>", "override the model's document_length", parseIntOption("--document-length"))
    .option("--provider <name>", "onnxruntime execution provider (cpu, cuda, coreml, dml)", "cpu")
    .option("--quiet", "no startup output");
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags>();
  const encoder = await ColbertEncoder.load(flags.model, {
    int8: flags.int8,
    sessions: flags.sessions,
    batchSize: flags.batchSize,
    executionProvider: flags.provider, queryLength: flags.queryLength, documentLength: flags.documentLength,
  });
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
