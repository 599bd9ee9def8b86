/**
 * colbert-quantize's job: model.onnx → model_int8.onnx (dynamic INT8), written atomically, then
 * compared with the FP32 model on probe inputs (cosine similarity of the output rows).
 */
import fs from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { readModel } from "../onnx/reader.js";
import { writeModel } from "../onnx/writer.js";
import { quantizeDynamic, type QuantizeOptions } from "./dynamic.js";
import { chunkable, wrapInBatchLoop } from "../export/chunks.js";
import { ColbertTokenizer } from "../runtime/tokenizer.js";
import { PROBE_SESSION_OPTIONS, withModelView } from "../runtime/model-view.js";
import { readOnnxConfig } from "../colbert/onnx-config.js";
import { silentLogger, type Logger } from "../util/log.js";
import { UserError } from "../errors.js";

export interface QuantizeReport {
  input: string;
  output: string;
  inputBytes: number;
  outputBytes: number;
  matmuls: number;
  gathers: number;
  seconds: number;
  /** Cosine similarity of INT8 vs FP32 output rows on probe inputs (attended rows). */
  cosine: CosineSummary;
}

function filesSize(files: string[]): number {
  return files.filter((f) => fs.existsSync(f)).reduce((s, f) => s + fs.statSync(f).size, 0);
}

/** Below these INT8-vs-FP32 cosines the quantized model is flagged (ours: mean ≥ 0.9999, min ≥ 0.9997 on every fixture). */
const DRIFT = { mean: 0.999, min: 0.99 };

const PROBES: [string, "query" | "document"][] = [
  ["what is late interaction retrieval?", "query"],
  ["ColBERT encodes every token of a document into its own vector and scores a query by summing, for each query token, its best match among the document tokens.", "document"],
  ["Paris is the capital and most populous city of France.", "document"],
];

/** Probe batch: from the folder's tokenizer when it is an export folder, else fixed token ids. */
async function probeBatch(dir: string): Promise<{ ids: number[][]; mask: number[][]; tokenTypes: boolean }> {
  const cfgFile = path.join(dir, "onnx_config.json");
  const tokFile = path.join(dir, "tokenizer.json");
  if (fs.existsSync(cfgFile) && fs.existsSync(tokFile)) {
    const cfg = readOnnxConfig(dir);
    const tok = await ColbertTokenizer.fromFolder(dir, cfg);
    const encoded = await Promise.all(PROBES.map(([t, type]) => tok.encode(t, type)));
    return { ids: encoded.map((e) => e.ids), mask: encoded.map((e) => e.mask), tokenTypes: cfg.uses_token_type_ids };
  }
  const ids = [Array.from({ length: 24 }, (_, i) => 2 + ((i * 37) % 97))];
  return { ids, mask: ids.map((r) => r.map(() => 1)), tokenTypes: false };
}

/** Runs the probe batch; `lean`: a probe session through a view (the big FP32 model), else as served. */
async function run(file: string, batch: Awaited<ReturnType<typeof probeBatch>>, lean: boolean): Promise<{ data: Float32Array; dims: number[] }> {
  const seq = Math.max(...batch.ids.map((r) => r.length));
  const b = batch.ids.length;
  const pad = (rows: number[][]) => {
    const out = new BigInt64Array(b * seq);
    rows.forEach((r, i) => r.forEach((v, j) => (out[i * seq + j] = BigInt(v))));
    return new ort.Tensor("int64", out, [b, seq]);
  };
  const session = lean ? await withModelView(file, (f) => ort.InferenceSession.create(f, PROBE_SESSION_OPTIONS)) : await ort.InferenceSession.create(file);
  try {
    const feeds: Record<string, ort.Tensor> = { input_ids: pad(batch.ids), attention_mask: pad(batch.mask) };
    if (session.inputNames.includes("token_type_ids")) feeds["token_type_ids"] = pad(batch.ids.map((r) => r.map(() => 0)));
    const outName = session.outputNames[0]!;
    const out = (await session.run(feeds))[outName]!;
    return { data: out.data as Float32Array, dims: out.dims as number[] };
  } finally {
    await session.release();
  }
}

/** Cosine similarity per attended row of two [batch, seq, dim] outputs. */
export function rowCosines(a: Float32Array, b: Float32Array, dim: number, mask: number[][], seq: number): number[] {
  const out: number[] = [];
  mask.forEach((row, i) =>
    row.forEach((m, j) => {
      if (m !== 1) return;
      let dot = 0, na = 0, nb = 0;
      const o = (i * seq + j) * dim;
      for (let c = 0; c < dim; c++) {
        dot += a[o + c]! * b[o + c]!;
        na += a[o + c]! ** 2;
        nb += b[o + c]! ** 2;
      }
      out.push(dot / Math.sqrt(na * nb || 1));
    }),
  );
  return out;
}

export interface CosineSummary {
  mean: number;
  min: number;
  rows: number;
}

/** Whether INT8 outputs drift from FP32 more than quantized ColBERT models usually do. */
export function drifts(c: CosineSummary): boolean {
  return c.mean < DRIFT.mean || c.min < DRIFT.min;
}

/**
 * Cosine similarity of INT8 vs FP32 output rows (attended rows) on the probe texts, tokenized by
 * the folder's tokenizer when the FP32 model sits in an export folder.
 */
export async function int8Fidelity(fp32File: string, int8File: string): Promise<CosineSummary> {
  const batch = await probeBatch(path.dirname(fp32File));
  // INT8 as it will be served (onnxruntime fuses its MatMuls at load); the FP32 reference lean.
  const [fp32, int8] = [await run(fp32File, batch, true), await run(int8File, batch, false)];
  const cos = rowCosines(fp32.data, int8.data, fp32.dims[2]!, batch.mask, fp32.dims[1]!);
  return { mean: cos.reduce((a, b) => a + b, 0) / cos.length, min: Math.min(...cos), rows: cos.length };
}

export interface QuantizeModelOptions extends QuantizeOptions {
  /**
   * Run the INT8 model's batch in chunks of about this many tokens (export/chunks.ts) when the
   * input is a plain ColBERT graph: INT8 runs on CPUs only, where chunks are faster (BENCHMARKS.md).
   * 0 or absent: the graph's form is kept.
   */
  chunkTokens?: number;
}

export async function quantizeModel(input: string, output: string, logger: Logger = silentLogger, opts: QuantizeModelOptions = {}): Promise<QuantizeReport> {
  const start = performance.now();
  if (path.resolve(input) === path.resolve(output)) throw new UserError(`Output ${output} is the input model; choose another path (default: model_int8.onnx beside it)`);
  const source = readModel(input);
  let stats;
  let written;
  try {
    const q = quantizeDynamic(source.model, opts);
    stats = q.stats;
    if (stats.matmuls === 0) throw new UserError(`${input} has no MatMul with constant weights to quantize; is it already quantized?`);
    logger.info(`Quantizing ${stats.matmuls} MatMul weights and ${stats.gathers} embedding tables to INT8…`);
    const chunk = (opts.chunkTokens ?? 0) > 0 && chunkable(q.model);
    written = writeModel(output, chunk ? wrapInBatchLoop(q.model, opts.chunkTokens!) : q.model);
  } finally {
    source.close();
  }
  const seconds = (performance.now() - start) / 1000;
  const cosine = await int8Fidelity(input, output);
  const report: QuantizeReport = {
    input,
    output,
    inputBytes: filesSize([input, input + ".data"]),
    outputBytes: written.bytes,
    matmuls: stats.matmuls,
    gathers: stats.gathers,
    seconds,
    cosine,
  };
  const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;
  logger.info(
    `Wrote ${path.basename(output)}: ${mb(report.inputBytes)} → ${mb(report.outputBytes)} in ${seconds.toFixed(1)} s; ` +
      `INT8 vs FP32 cosine on ${cosine.rows} probe rows: mean ${report.cosine.mean.toFixed(5)}, min ${report.cosine.min.toFixed(5)}`,
  );
  if (drifts(cosine)) {
    logger.warn(
      `Warning: the INT8 model drifts from FP32 on the probe texts (mean cosine ${report.cosine.mean.toFixed(4)}, min ${report.cosine.min.toFixed(4)}; ` +
        `quantized ColBERT models usually stay above ${DRIFT.mean} / ${DRIFT.min}): check retrieval quality before shipping it, or serve the FP32 model`,
    );
  }
  return report;
}
