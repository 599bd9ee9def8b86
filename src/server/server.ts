/**
 * The NextPlaid-compatible HTTP server: routing, CORS, body limits and error shape here; each
 * resource's logic in handlers/ (next-plaid-api's main.rs and handlers/*). The model runs on its
 * own threads (runtime/session-pool.ts), so this thread keeps answering — /health included —
 * while requests are being encoded.
 */
import crypto from "node:crypto";
import http from "node:http";
import { parseJsonBody } from "./body-parser.js";
import { HttpError, JsonText, readBody, Reply } from "./http.js";
import { IndexError, type IndexErrorCode } from "../plaid/types.js";
import { ServerContext, type RequestContext, type ServerOptions } from "./context.js";
import { health } from "./handlers/health.js";
import { encode } from "./handlers/encode.js";
import { rerank, rerankWithEncoding } from "./handlers/rerank.js";
import { declareIndex, deleteIndex, indexInfo, listIndices, updateIndexConfig } from "./handlers/indices.js";
import { addDocuments, deleteDocuments, update, updateWithEncoding } from "./handlers/documents.js";
import { search, searchFiltered, searchFilteredWithEncoding, searchWithEncoding } from "./handlers/search.js";
import { metadataAll, metadataCheck, metadataCount, metadataGet, metadataQuery, metadataUpdate } from "./handlers/metadata.js";

export type { ServerOptions };

type Handler = (ctx: ServerContext, request: RequestContext) => Promise<unknown> | unknown;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

/** `/indices/{name}/update` → a matcher capturing `name`. */
function route(method: string, path: string, handler: Handler): Route {
  const keys: string[] = [];
  const source = path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, (_m, key: string) => {
    keys.push(key);
    return "([^/]+)";
  });
  return { method, pattern: new RegExp(`^${source}$`), keys, handler };
}

const ROUTES: Route[] = [
  route("GET", "/health", (ctx) => health(ctx)),
  route("GET", "/", (ctx) => health(ctx)),
  route("POST", "/encode", encode),
  route("POST", "/rerank", rerank),
  route("POST", "/rerank_with_encoding", rerankWithEncoding),
  route("GET", "/indices", listIndices),
  route("POST", "/indices", declareIndex),
  route("GET", "/indices/{name}", indexInfo),
  route("DELETE", "/indices/{name}", deleteIndex),
  route("PUT", "/indices/{name}/config", updateIndexConfig),
  route("POST", "/indices/{name}/update", update),
  route("POST", "/indices/{name}/update_with_encoding", updateWithEncoding),
  route("POST", "/indices/{name}/documents", addDocuments),
  route("DELETE", "/indices/{name}/documents", deleteDocuments),
  route("POST", "/indices/{name}/search", search),
  route("POST", "/indices/{name}/search/filtered", searchFiltered),
  route("POST", "/indices/{name}/search_with_encoding", searchWithEncoding),
  route("POST", "/indices/{name}/search/filtered_with_encoding", searchFilteredWithEncoding),
  route("GET", "/indices/{name}/metadata", metadataAll),
  route("GET", "/indices/{name}/metadata/count", metadataCount),
  route("POST", "/indices/{name}/metadata/check", metadataCheck),
  route("POST", "/indices/{name}/metadata/query", metadataQuery),
  route("POST", "/indices/{name}/metadata/get", metadataGet),
  route("POST", "/indices/{name}/metadata/update", metadataUpdate),
];

/** NextPlaid's HTTP status for each index error code (error.rs). */
const INDEX_ERROR_STATUS: Record<IndexErrorCode, number> = {
  INDEX_NOT_FOUND: 404,
  INDEX_NOT_DECLARED: 404,
  METADATA_NOT_FOUND: 404,
  INDEX_ALREADY_EXISTS: 409,
  BAD_REQUEST: 400,
  DIMENSION_MISMATCH: 400,
  REQUEST_TIMEOUT: 408,
  SERVICE_UNAVAILABLE: 503,
};

/** CORS as NextPlaid's tower-http layer sends it: any origin, method and header. */
function corsHeaders(req: http.IncomingMessage): Record<string, string> {
  return {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "*",
    "access-control-allow-headers": String(req.headers["access-control-request-headers"] ?? "*"),
    vary: "origin, access-control-request-method, access-control-request-headers",
  };
}

export function createServer(opts: ServerOptions): http.Server {
  return httpServer(createRequestHandler(opts));
}

/** How long an idle keep-alive connection stays open (see httpServer). */
export const KEEP_ALIVE_MS = 75_000;

/**
 * The HTTP server of colbert-serve and createServer. Idle keep-alive connections stay open 75 s
 * (Node's default is 5 s): a client reusing a socket just as the server closes it gets a failed
 * request ("fetch failed", ECONNRESET, or EPIPE while it sends an update's body); clients and load
 * balancers time out idle sockets before that (NextPlaid's server never closes them).
 */
export function httpServer(listener: http.RequestListener): http.Server {
  const server = http.createServer(listener);
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  return server;
}

/** Answers every request with 503 while the model loads (the port is bound first, so a busy port fails fast). */
export function loadingHandler(): http.RequestListener {
  return (req, res) => {
    const data = JSON.stringify({ code: "SERVICE_UNAVAILABLE", message: "The model is loading; retry shortly" });
    res.writeHead(503, { "content-type": "application/json", "content-length": Buffer.byteLength(data), "retry-after": "1", ...corsHeaders(req) });
    res.end(data);
  };
}

export function createRequestHandler(opts: ServerOptions, ctx = new ServerContext(opts)): http.RequestListener {
  return (req, res) => {
    // Every answer carries a request id, the client's own when it sent one (as NextPlaid).
    const incoming = req.headers["x-request-id"];
    const cors = { ...corsHeaders(req), "x-request-id": typeof incoming === "string" && incoming.length <= 200 ? incoming : crypto.randomUUID() };
    const send = (status: number, value: unknown) => {
      if (res.headersSent || res.destroyed) return;
      const data = value instanceof JsonText ? value.text : JSON.stringify(value);
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data), ...cors });
      res.end(data);
    };
    const url = decodeURI((req.url ?? "/").split("?")[0]!);
    if (req.method === "OPTIONS") {
      res.writeHead(200, { ...cors, "content-length": 0 });
      res.end();
      return;
    }
    // A client that goes away cancels its queued work.
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort(new Error("client disconnected"));
    });
    const handle = async () => {
      let match: { route: Route; params: Record<string, string> } | undefined;
      let pathKnown = false;
      for (const r of ROUTES) {
        const m = r.pattern.exec(url);
        if (!m) continue;
        pathKnown = true;
        if (r.method !== req.method) continue;
        match = { route: r, params: Object.fromEntries(r.keys.map((k, i) => [k, m[i + 1]!])) };
        break;
      }
      if (!match) {
        throw pathKnown ? new HttpError(405, "METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${url}`) : new HttpError(404, "NOT_FOUND", `No route ${url}`);
      }
      const body = req.method === "POST" || req.method === "PUT" || req.method === "DELETE" ? await readJsonBody(req, ctx.maxBody) : {};
      const result = await match.route.handler(ctx, { req, body, params: match.params, signal: abort.signal });
      if (result instanceof Reply) send(result.status, result.body);
      else send(200, result);
    };
    handle().catch((e: unknown) => {
      if (abort.signal.aborted) return;
      if (e instanceof HttpError) send(e.status, { code: e.code, message: e.message });
      else if (e instanceof IndexError) send(INDEX_ERROR_STATUS[e.code], { code: e.code, message: e.message });
      else send(500, { code: "INTERNAL_ERROR", message: (e as Error)?.message ?? String(e) });
    });
  };
}

/** A JSON object body; an empty body is `{}` for DELETE (some clients send none). */
async function readJsonBody(req: http.IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const raw = await readBody(req, limit);
  if (raw.length === 0 && req.method === "DELETE") return {};
  return parseJsonBody(raw);
}
