/**
 * Library entry point: export, quantize, check, encode (texts and corpora), Hub. The HTTP server is its own entry
 * (`pylate-onnx-export/server`), so that this one's types need nothing from @types/node.
 */
export { exportModel, type ExportOptions, type ExportResult } from "./export/exporter.js";
export type { OnnxConfig } from "./colbert/onnx-config.js";
export { quantizeModel, type QuantizeReport, type QuantizeModelOptions } from "./quantize/index.js";
export { stderrLogger, silentLogger, type Logger } from "./util/log.js";
export { ColbertEncoder, maxSim, type Embedding, type EncoderOptions, type EncodeOptions } from "./runtime/encoder.js";
export { poolDocument } from "./runtime/pooling.js";
export { resolveModel, type ResolvedModel } from "./runtime/model-source.js";
export { encodeCorpus, type CorpusOptions, type CorpusSummary } from "./encode/corpus.js";
export { mergeShards } from "./encode/merge.js";
export { downloadModel, downloadRepo } from "./hub/download.js";
export { pushFolder } from "./hub/upload.js";
export { auditExport, type AuditReport, type AuditOptions, type Finding } from "./check/audit.js";
export { UserError } from "./errors.js";
