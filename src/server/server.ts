/**
 * HTTP server with the NextPlaid API's encoding endpoints: POST /encode, POST
 * /rerank_with_encoding, GET /health. Errors are JSON {code, message} with a 4xx/5xx status.
 */
import http from "node:http";
import path from "node:path";
import type { ColbertEncoder, Embedding } from "../runtime/encoder.js";
import { maxSim } from "../runtime/encoder.js";
import { poolDocument } from "../runtime/pooling.js";
import type { InputType } from "../runtime/tokenizer.js";
import { MicroBatcher } from "./batcher.js";
import { VERSION } from "../version.js";

export interface ServerOptions {
  encoder: ColbertEncoder;
  /** Largest accepted request body in bytes (default 16 MiB). */
  maxBodyBytes?: number;
  /** Most texts in one request (default 10 000). */
  maxTexts?: number;
  modelName?: string;
  quantized?: boolean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, "PAYLOAD_TOO_LARGE", `Request body exceeds ${limit} bytes`));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function parseJson(body: Buffer): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body.toString("utf8"));
  } catch {
    throw new HttpError(400, "BAD_REQUEST", "Request body is not valid JSON");
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new HttpError(400, "BAD_REQUEST", "Request body must be a JSON object");
  return v as Record<string, unknown>;
}

function poolFactorOf(body: Record<string, unknown>): number | undefined {
  const p = body["pool_factor"];
  if (p === undefined || p === null) return undefined;
  if (typeof p !== "number" || !Number.isInteger(p) || p < 1) throw new HttpError(400, "BAD_REQUEST", "pool_factor must be a positive integer or null");
  return p;
}

function stringList(v: unknown, field: string, max: number): string[] {
  if (!Array.isArray(v) || v.some((t) => typeof t !== "string")) throw new HttpError(400, "BAD_REQUEST", `${field} must be an array of strings`);
  if (v.length === 0) throw new HttpError(400, "BAD_REQUEST", `${field} must not be empty`);
  if (v.length > max) throw new HttpError(400, "BAD_REQUEST", `${field} has ${v.length} entries; the limit is ${max}`);
  return v as string[];
}

function rows(e: Embedding): number[][] {
  return Array.from({ length: e.rows }, (_, r) => Array.from(e.data.subarray(r * e.dim, (r + 1) * e.dim)));
}

export function createServer(opts: ServerOptions): http.Server {
  return http.createServer(createRequestHandler(opts));
}

/** Answers every request with 503 while the model loads (the port is bound first, so a busy port fails fast). */
export function loadingHandler(): http.RequestListener {
  return (_req, res) => {
    const data = JSON.stringify({ code: "SERVICE_UNAVAILABLE", message: "The model is loading; retry shortly" });
    res.writeHead(503, { "content-type": "application/json", "content-length": Buffer.byteLength(data), "retry-after": "1" });
    res.end(data);
  };
}

export function createRequestHandler(opts: ServerOptions): http.RequestListener {
  const { encoder } = opts;
  const maxBody = opts.maxBodyBytes ?? 16 * 2 ** 20;
  const maxTexts = opts.maxTexts ?? 10_000;
  const batcher = new MicroBatcher(encoder, encoder.batchSize * encoder.sessionCount);
  const cfg = encoder.config;

  const encodeTexts = async (texts: string[], type: InputType, poolFactor?: number): Promise<Embedding[]> => {
    const out = await batcher.encode(texts, type);
    if (type !== "document" || !poolFactor || poolFactor <= 1) return out;
    return out.map((e) => {
      const p = poolDocument(e.data, e.rows, e.dim, poolFactor);
      return { rows: p.rows, dim: e.dim, data: p.data };
    });
  };

  const routes: Record<string, (req: http.IncomingMessage, body: Record<string, unknown>) => Promise<unknown>> = {
    "GET /health": async () => ({
      status: "healthy",
      version: VERSION,
      loaded_indices: 0,
      index_dir: "",
      memory_usage_bytes: process.memoryUsage().rss,
      indices: [],
      model: {
        name: opts.modelName ?? cfg.model_name,
        path: encoder.dir,
        quantized: opts.quantized ?? path.basename(encoder.modelFile) === "model_int8.onnx",
        embedding_dim: cfg.embedding_dim,
        batch_size: encoder.batchSize,
        num_sessions: encoder.sessionCount,
        query_prefix: cfg.query_prefix,
        document_prefix: cfg.document_prefix,
        query_length: cfg.query_length,
        document_length: cfg.document_length,
        do_query_expansion: cfg.do_query_expansion,
        uses_token_type_ids: cfg.uses_token_type_ids,
        mask_token_id: cfg.mask_token_id,
        pad_token_id: cfg.pad_token_id,
      },
    }),
    "POST /encode": async (req, body) => {
      const texts = stringList(body["texts"], "texts", maxTexts);
      const type = body["input_type"];
      if (type !== "query" && type !== "document") {
        throw new HttpError(422, "VALIDATION_ERROR", `input_type must be "query" or "document"`);
      }
      const out = await encodeTexts(texts, type, poolFactorOf(body));
      if (String(req.headers["x-embeddings-format"] ?? "").toLowerCase() === "base64") {
        return {
          embeddings_b64: out.map((e) => Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString("base64")),
          shapes: out.map((e) => [e.rows, e.dim]),
          num_texts: out.length,
        };
      }
      return { embeddings: out.map(rows), num_texts: out.length };
    },
    "POST /rerank_with_encoding": async (_req, body) => {
      const query = body["query"];
      if (typeof query !== "string" || query.trim() === "") throw new HttpError(400, "BAD_REQUEST", "query must be a non-empty string");
      const documents = stringList(body["documents"], "documents", maxTexts);
      const [q, docs] = await Promise.all([encodeTexts([query], "query"), encodeTexts(documents, "document", poolFactorOf(body))]);
      const results = docs.map((d, index) => ({ index, score: maxSim(q[0]!, d) })).sort((a, b) => b.score - a.score || a.index - b.index);
      return { results, num_documents: documents.length };
    },
  };

  return (req, res) => {
    const send = (status: number, value: unknown) => {
      const data = JSON.stringify(value);
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
      res.end(data);
    };
    const url = (req.url ?? "/").split("?")[0]!;
    const route = routes[`${req.method} ${url}`];
    const handle = async () => {
      if (!route) {
        const known = Object.keys(routes).some((k) => k.endsWith(` ${url}`));
        throw known ? new HttpError(405, "METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${url}`) : new HttpError(404, "NOT_FOUND", `No route ${url}`);
      }
      const body = req.method === "POST" ? parseJson(await readBody(req, maxBody)) : {};
      send(200, await route(req, body));
    };
    handle().catch((e: unknown) => {
      if (e instanceof HttpError) send(e.status, { code: e.code, message: e.message });
      else send(500, { code: "INTERNAL_ERROR", message: (e as Error)?.message ?? String(e) });
    });
  };
}
