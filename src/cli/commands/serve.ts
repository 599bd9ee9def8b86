/** colbert-serve: NextPlaid-compatible /encode server over an exported model folder. */
import { Command } from "commander";
import http from "node:http";
import path from "node:path";
import { createRequestHandler, loadingHandler } from "../../server/server.js";
import { UserError } from "../../errors.js";
import { VERSION } from "../../version.js";
import { addEncoderOptions, loadEncoder, type EncoderFlags } from "../encoder-options.js";
import { parseCommand, withHelp } from "../run.js";

interface Flags extends EncoderFlags {
  host: string;
  port: number;
  quiet?: boolean;
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n > 65535) throw new UserError(`--port must be an integer from 0 to 65535, got "${value}"`);
  return n;
}

export async function main(): Promise<void> {
  const cmd = addEncoderOptions(new Command())
    .name("colbert-serve")
    .description("Serve an exported ColBERT model over HTTP (NextPlaid API: /encode, /rerank_with_encoding, /health).")
    .version(VERSION, "--version")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port (0 picks a free one)", parsePort, 8080)
    .option("--quiet", "no startup output");
  withHelp(cmd, [
    "colbert-serve --model ./model-onnx                       # http://127.0.0.1:8080 (FP32)",
    "colbert-serve --model ./model-onnx --int8 --host 0.0.0.0 --port 8080",
    `curl -s localhost:8080/encode -H 'content-type: application/json' -d '{"texts":["hi"],"input_type":"query"}'`,
  ]);
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags>();
  // The port first: a busy or forbidden port fails in a second, not after loading the model.
  let handler = loadingHandler();
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE") reject(new UserError(`Port ${flags.port} on ${flags.host} is already in use: stop the other server or pass another --port`));
      else if (e.code === "EACCES") reject(new UserError(`Not allowed to listen on port ${flags.port}: ports below 1024 need privileges; pass --port 8080 or higher`));
      else if (e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND") reject(new UserError(`Cannot listen on ${flags.host}: not an address of this machine; pass --host 127.0.0.1 or 0.0.0.0`));
      else reject(e);
    });
    server.listen(flags.port, flags.host, () => resolve());
  });
  let encoder;
  try {
    encoder = await loadEncoder(flags);
  } catch (e) {
    server.close();
    throw e;
  }
  handler = createRequestHandler({ encoder, quantized: !!flags.int8 });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : flags.port;
  if (!flags.quiet) {
    process.stderr.write(
      `colbert-serve ${VERSION}: ${path.resolve(encoder.dir)} (${encoder.config.model_name}, ${path.basename(encoder.modelFile)}, ${flags.int8 ? "INT8" : "FP32"}) on http://${flags.host}:${port}\n`,
    );
  }
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


