/** The NextPlaid-compatible HTTP server, as a library (`pylate-onnx-export/server`). */
export { createServer, createRequestHandler, type ServerOptions } from "./server.js";
