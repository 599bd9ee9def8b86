/**
 * The NextPlaid-compatible HTTP server, as a library (`pylate-onnx-export/server`), and the index
 * engine it serves (`startIndexEngine(dir)` → `createServer({ indexEngine })`, or call it directly).
 */
export { createServer, createRequestHandler, type ServerOptions } from "./server.js";
export { startIndexEngine, type IndexEngineOptions, type RemoteEngine } from "../plaid/client.js";
export { IndexError, type IndexConfig, type IndexEngine, type IndexInfo, type MetadataRow, type Query, type QueryResult, type SearchRequest } from "../plaid/types.js";
