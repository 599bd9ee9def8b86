/** Library entry point: export, quantize, encode, serve, Hub. */
export { exportModel, type ExportOptions, type ExportResult } from "./export/exporter.js";
export type { OnnxConfig } from "./colbert/onnx-config.js";
export { quantizeModel, type QuantizeReport } from "./quantize/index.js";
export { ColbertEncoder, maxSim, type Embedding, type EncoderOptions, type EncodeOptions } from "./runtime/encoder.js";
export { poolDocument } from "./runtime/pooling.js";
export { createServer, type ServerOptions } from "./server/server.js";
export { downloadModel, downloadRepo } from "./hub/download.js";
export { pushFolder } from "./hub/upload.js";
export { UserError } from "./errors.js";
