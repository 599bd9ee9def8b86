/** colbert-serve: NextPlaid-compatible HTTP server — encode and rerank over a ColBERT model, and the index API over --index-dir. */
import { Command } from "commander";
import http from "node:http";
import path from "node:path";
import { createRequestHandler, httpServer, loadingHandler } from "../../server/server.js";
import { ServerContext } from "../../server/context.js";
import { startIndexEngine, type RemoteEngine } from "../../plaid/client.js";
import { UserError } from "../../errors.js";
import { VERSION } from "../../version.js";
import { watchStalls } from "../../util/stalls.js";
import { addEncoderOptions, loadEncoder, type EncoderFlags } from "../encoder-options.js";
import { parseCommand, parseIntOption, withHelp } from "../run.js";

interface Flags extends EncoderFlags {
  host: string;
  port: number;
  maxBody?: number;
  maxQueue?: number;
  shutdownTimeout: number;
  indexDir?: string;
  indexTimeout?: number;
  indexWriteTimeout?: number;
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n > 65535) throw new UserError(`--port must be an integer from 0 to 65535, got "${value}"`);
  return n;
}

export async function main(): Promise<void> {
  watchStalls();
  const cmd = addEncoderOptions(new Command(), "fp32", "auto", "(required without --index-dir)")
    .name("colbert-serve")
    .description(
      "Serve the NextPlaid HTTP API: /encode and /rerank over a ColBERT model (--model), and indices — create, add documents with metadata, search with embeddings or text, filters, keyword and hybrid search — stored under --index-dir. Inference and index work run on their own threads.",
    )
    .version(VERSION, "--version")
    .option("--host <host>", "address to listen on (0.0.0.0 serves other machines)", "127.0.0.1")
    .option("--port <n>", "port (0 picks a free one)", parsePort, 8080)
    .option("--max-body <bytes>", "largest request body (default 100 MB, as NextPlaid)", parseIntOption("--max-body"))
    .option("--max-queue <texts>", "texts allowed to wait for the model before requests get 503 (default 4096)", parseIntOption("--max-queue"))
    .option("--index-dir <dir>", "folder of indices: enables the /indices API (created if missing; --model is then optional)")
    .option("--index-timeout <s>", "time budget of one index request (search, metadata, filter): past it the answer is 408 and the index's thread restarts (default 300, as NextPlaid)", parseIntOption("--index-timeout"))
    .option("--index-write-timeout <s>", "time budget of one background index write (an update batch or a delete; default 3600)", parseIntOption("--index-write-timeout"))
    .option("--shutdown-timeout <s>", "on SIGTERM, seconds to let requests in flight finish", parseIntOption("--shutdown-timeout"), 30)
    .option("--quiet", "no startup output");
  withHelp(cmd, [
    "colbert-serve --model ./model-onnx                        # FP32 (model.onnx), PyLate-exact",
    "colbert-serve --model ./model-onnx --int8                 # model_int8.onnx: faster on CPU",
    "colbert-serve --model lightonai/GTE-ModernColBERT-v1      # a PyLate checkpoint: exported once, cached",
    "colbert-serve --model me/model-onnx --fp32 --host 0.0.0.0 # a published export, FP32",
    "colbert-serve --model ./model-onnx --index-dir ./indices  # + the index API (search_with_encoding, …)",
    "colbert-serve --index-dir ./indices                       # indices only: embeddings in, embeddings out",
    `curl -s localhost:8080/encode -H 'content-type: application/json' -d '{"texts":["hi"],"input_type":"query"}'`,
  ],
    "hub",
    `
Routes (NextPlaid's API):
  GET  /health, /                          server, model, indices, updates, index threads
  POST /encode, /rerank, /rerank_with_encoding
  GET  /indices        POST /indices       GET|DELETE /indices/{name}   PUT /indices/{name}/config
  POST /indices/{name}/update, /update_with_encoding, /documents        DELETE /indices/{name}/documents
  POST /indices/{name}/search, /search/filtered, /search_with_encoding, /search/filtered_with_encoding
  GET  /indices/{name}/metadata, /metadata/count
  POST /indices/{name}/metadata/check, /metadata/query, /metadata/get, /metadata/update
`,
  );
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags>();
  const log = (m: string) => {
    if (!flags.quiet) process.stderr.write(m + "\n");
  };
  // The port first: a busy or forbidden port fails in a second, not after loading the model.
  let handler = loadingHandler();
  const server = httpServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE") reject(new UserError(`Port ${flags.port} on ${flags.host} is already in use: stop the other server or pass another --port`));
      else if (e.code === "EACCES") reject(new UserError(`Not allowed to listen on port ${flags.port}: ports below 1024 need privileges; pass --port 8080 or higher`));
      else if (e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND") reject(new UserError(`Cannot listen on ${flags.host}: not an address of this machine; pass --host 127.0.0.1 or 0.0.0.0`));
      else reject(e);
    });
    server.listen(flags.port, flags.host, () => resolve());
  });
  let encoder: Awaited<ReturnType<typeof loadEncoder>> | undefined;
  let indexEngine: RemoteEngine | undefined;
  try {
    if (flags.indexDir) {
      indexEngine = await startIndexEngine(path.resolve(flags.indexDir), {
        requestTimeoutMs: flags.indexTimeout !== undefined ? flags.indexTimeout * 1000 : undefined,
        writeTimeoutMs: flags.indexWriteTimeout !== undefined ? flags.indexWriteTimeout * 1000 : undefined,
      });
    }
    if (flags.model || !flags.indexDir) encoder = await loadEncoder(flags, "fp32");
  } catch (e) {
    server.close();
    await indexEngine?.close();
    throw e;
  }
  const int8 = encoder ? path.basename(encoder.modelFile) === "model_int8.onnx" : false;
  const ctx = new ServerContext({ encoder, quantized: int8, maxBodyBytes: flags.maxBody, maxQueuedTexts: flags.maxQueue, indexEngine, indexDir: flags.indexDir });
  const serve = createRequestHandler(ctx.opts, ctx);
  let stopping = false;
  const inFlight = new Set<http.ServerResponse>();
  // While stopping, answers close their connection, so keep-alive clients do not hold the exit.
  const closeAfter = (res: http.ServerResponse) => {
    if (!res.headersSent) res.setHeader("connection", "close");
  };
  handler = (req, res) => {
    inFlight.add(res);
    const done = () => {
      if (!inFlight.delete(res)) return;
      // Once nothing is in flight, the remaining (keep-alive) connections have nothing to wait for.
      if (stopping && inFlight.size === 0) setImmediate(() => server.closeAllConnections());
    };
    res.once("finish", done);
    res.once("close", done);
    if (stopping) closeAfter(res);
    serve(req, res);
  };
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : flags.port;
  if (encoder) {
    log(`Model: ${encoder.source}`);
    log(
      `Inference: ${path.basename(encoder.modelFile)} (${int8 ? "INT8" : "FP32"}), ${encoder.executionProvider} provider, ` +
        `${encoder.sessionCount} session(s) × ${encoder.threads} thread(s), batches of ${encoder.batchSize}`,
    );
  }
  if (flags.indexDir) log(`Indices: ${path.resolve(flags.indexDir)}`);
  log(
    `colbert-serve ${VERSION}: ${encoder ? `${path.resolve(encoder.dir)} (${encoder.config.model_name}, ${path.basename(encoder.modelFile)}, ${int8 ? "INT8" : "FP32"})` : "no model"} on http://${flags.host}:${port}`,
  );

  // Graceful shutdown: stop accepting, let requests in flight finish (bounded), release the model.
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const deadline = setTimeout(() => {
      process.stderr.write(`Requests still running after ${flags.shutdownTimeout} s; exiting\n`);
      // Index threads stop between two onnxruntime runs first (exiting during one aborts the
      // process); an interrupted write leaves the index as it was before it.
      const stopped = indexEngine?.close(false) ?? Promise.resolve();
      void Promise.race([stopped, new Promise((r) => setTimeout(r, 10_000))]).finally(() => process.exit(0));
    }, flags.shutdownTimeout * 1000);
    deadline.unref();
    inFlight.forEach(closeAfter);
    server.close(() => {
      // Queued index writes finish (each commits atomically; a kill would keep the state before).
      void ctx
        .idle()
        .then(() => Promise.all([encoder?.close(), indexEngine?.close()]))
        .then(() => process.exit(0));
    });
    if (inFlight.size === 0) server.closeAllConnections();
    else server.closeIdleConnections();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
