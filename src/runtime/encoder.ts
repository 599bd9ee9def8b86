/**
 * ColBERT encoder over an exported folder: PyLate-exact tokenization, length-sorted batches run
 * on one or more onnxruntime sessions, per-text token embeddings in input order, optional
 * hierarchical pooling for documents.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { ColbertTokenizer, type InputType, type TokenizedText } from "./tokenizer.js";
import { poolDocument } from "./pooling.js";
import { withModelView } from "./model-view.js";
import { cpuFlags, int8SaturationWarning } from "../quantize/saturation.js";
import { readOnnxConfig, type OnnxConfig } from "../colbert/onnx-config.js";
import { UserError } from "../errors.js";

/** One text's token embeddings: `rows` × `dim`, row-major, each row L2-normalised. */
export interface Embedding {
  rows: number;
  dim: number;
  data: Float32Array;
}

export interface EncoderOptions {
  /** Use model_int8.onnx instead of model.onnx. */
  int8?: boolean;
  /** Parallel onnxruntime sessions (default 1). */
  sessions?: number;
  /** Texts per model call (default 32). */
  batchSize?: number;
  /** onnxruntime execution provider: "cpu" (default), "cuda", "coreml", "dml", … */
  executionProvider?: string;
  /** Threads per session (default: cores / sessions). */
  threads?: number;
  queryLength?: number;
  documentLength?: number;
  /** Receives warnings about the model (default: process.emitWarning). */
  onWarning?: (message: string) => void;
}

export interface EncodeOptions {
  /** Documents only: hierarchical token pooling factor (> 1 reduces the rows). */
  poolFactor?: number;
  /** Called after each batch with (texts done, total). */
  onProgress?: (done: number, total: number) => void;
}


function readJson<T>(file: string, what: string): T {
  if (!fs.existsSync(file)) throw new UserError(`${what} not found: ${file}; pass a folder written by pylate-onnx-export`);
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch (e) {
    throw new UserError(`Unreadable ${file} (${(e as Error).message}); re-export the model`);
  }
}

/** Longest input the backbone's position embeddings allow (RoBERTa's start after padding_idx). */
function maxInputLength(hf: Record<string, unknown>): number | undefined {
  const max = hf["max_position_embeddings"];
  if (typeof max !== "number" || hf["model_type"] === "modernbert") return undefined; // RoPE has no table
  const roberta = hf["model_type"] === "roberta" || hf["model_type"] === "xlm-roberta";
  return roberta ? max - (Number(hf["pad_token_id"] ?? 1) + 1) : max;
}

function checkLengths(dir: string, config: OnnxConfig): void {
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) return;
  const limit = maxInputLength(readJson<Record<string, unknown>>(file, "config.json"));
  for (const [name, value] of [["query_length", config.query_length], ["document_length", config.document_length]] as const) {
    if (limit !== undefined && value > limit) throw new UserError(`${name} ${value} exceeds the ${limit} positions this model supports; use a smaller length`);
  }
}

export class ColbertEncoder {
  private next = 0;
  private constructor(
    readonly dir: string,
    readonly config: OnnxConfig,
    readonly tokenizer: ColbertTokenizer,
    private readonly sessions: ort.InferenceSession[],
    readonly batchSize: number,
    readonly modelFile: string,
  ) {}

  static async load(dir: string, opts: EncoderOptions = {}): Promise<ColbertEncoder> {
    const config = readOnnxConfig(dir);
    if (opts.queryLength) config.query_length = opts.queryLength;
    if (opts.documentLength) config.document_length = opts.documentLength;
    checkLengths(dir, config);
    const tokenizer = await ColbertTokenizer.fromFolder(dir, config, { onWarning: opts.onWarning });
    const modelFile = path.join(dir, opts.int8 ? "model_int8.onnx" : "model.onnx");
    if (!fs.existsSync(modelFile)) {
      throw new UserError(opts.int8 ? `No model_int8.onnx in ${dir}: run colbert-quantize ${dir} first` : `No model.onnx in ${dir}: pass a folder written by pylate-onnx-export`);
    }
    if (opts.int8) {
      const warning = int8SaturationWarning(modelFile, cpuFlags());
      if (warning) (opts.onWarning ?? ((m: string) => process.emitWarning(m)))(warning);
    }
    const provider = opts.executionProvider ?? "cpu";
    const count = Math.max(1, opts.sessions ?? 1);
    const threads = opts.threads ?? Math.max(1, Math.floor(os.availableParallelism() / count));
    let sessions: ort.InferenceSession[];
    try {
      // Through a view, the sessions map the weights from the file and share them (model-view.ts).
      sessions = await withModelView(modelFile, async (file) => {
        const created: ort.InferenceSession[] = [];
        try {
          for (let i = 0; i < count; i++) {
            created.push(await ort.InferenceSession.create(file, { executionProviders: [provider], graphOptimizationLevel: "all", intraOpNumThreads: threads }));
          }
          return created;
        } catch (e) {
          await Promise.all(created.map((s) => s.release()));
          throw e;
        }
      });
    } catch (e) {
      const message = (e as Error).message.split("\n")[0];
      if (provider !== "cpu") throw new UserError(`Execution provider "${provider}" is not available here (${message}); use the default cpu provider`);
      throw new UserError(`onnxruntime cannot load ${modelFile} (${message}); re-export the model`);
    }
    return new ColbertEncoder(dir, config, tokenizer, sessions, Math.max(1, opts.batchSize ?? 32), modelFile);
  }

  get embeddingDim(): number {
    return this.config.embedding_dim;
  }

  get sessionCount(): number {
    return this.sessions.length;
  }

  encodeQueries(texts: string[], opts: EncodeOptions = {}): Promise<Embedding[]> {
    return this.encode(texts, "query", opts);
  }

  encodeDocuments(texts: string[], opts: EncodeOptions = {}): Promise<Embedding[]> {
    return this.encode(texts, "document", opts);
  }

  async encode(texts: string[], type: InputType, opts: EncodeOptions = {}): Promise<Embedding[]> {
    const tokenized = await this.tokenizer.encodeBatch(texts, type);
    // Longest first, so each batch pads to similar lengths; results go back to input order.
    const order = tokenized.map((_, i) => i).sort((a, b) => tokenized[b]!.ids.length - tokenized[a]!.ids.length);
    const batches: number[][] = [];
    for (let i = 0; i < order.length; i += this.batchSize) batches.push(order.slice(i, i + this.batchSize));
    const results: Embedding[] = new Array(texts.length);
    let done = 0;
    let cursor = 0;
    // One worker per session pulls batches until none are left.
    const worker = async (session: ort.InferenceSession) => {
      while (cursor < batches.length) {
        const batch = batches[cursor++]!;
        const out = await this.run(session, batch.map((i) => tokenized[i]!));
        batch.forEach((textIndex, b) => {
          let e = this.rowsOf(out, b, tokenized[textIndex]!, type);
          if (type === "document" && opts.poolFactor && opts.poolFactor > 1) {
            const pooled = poolDocument(e.data, e.rows, e.dim, opts.poolFactor);
            e = { rows: pooled.rows, dim: e.dim, data: pooled.data };
          }
          results[textIndex] = e;
        });
        done += batch.length;
        opts.onProgress?.(done, texts.length);
      }
    };
    const start = this.next;
    this.next = (this.next + 1) % this.sessions.length;
    const n = Math.min(this.sessions.length, batches.length);
    await Promise.all(Array.from({ length: n }, (_, i) => worker(this.sessions[(start + i) % this.sessions.length]!)));
    return results;
  }

  /** Runs one padded batch; returns output [batch, seq, dim] and seq. */
  private async run(session: ort.InferenceSession, items: TokenizedText[]): Promise<{ data: Float32Array; seq: number }> {
    const seq = Math.max(...items.map((t) => t.ids.length));
    const b = items.length;
    const ids = new BigInt64Array(b * seq).fill(BigInt(this.config.pad_token_id));
    const mask = new BigInt64Array(b * seq);
    items.forEach((t, i) => {
      for (let j = 0; j < t.ids.length; j++) {
        ids[i * seq + j] = BigInt(t.ids[j]!);
        mask[i * seq + j] = BigInt(t.mask[j]!);
      }
    });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", ids, [b, seq]),
      attention_mask: new ort.Tensor("int64", mask, [b, seq]),
    };
    if (this.config.uses_token_type_ids) feeds["token_type_ids"] = new ort.Tensor("int64", new BigInt64Array(b * seq), [b, seq]);
    const out = (await session.run(feeds))["output"]!;
    return { data: out.data as Float32Array, seq };
  }

  private rowsOf(out: { data: Float32Array; seq: number }, b: number, t: TokenizedText, type: InputType): Embedding {
    const dim = this.config.embedding_dim;
    const keep: number[] = [];
    for (let j = 0; j < t.ids.length; j++) if (this.tokenizer.keepRow(type, t.ids[j]!, t.mask[j]!)) keep.push(j);
    const data = new Float32Array(keep.length * dim);
    keep.forEach((j, r) => data.set(out.data.subarray((b * out.seq + j) * dim, (b * out.seq + j + 1) * dim), r * dim));
    return { rows: keep.length, dim, data };
  }

  async close(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release()));
  }
}

/** ColBERT late-interaction score: sum over query rows of the best dot product with a document row. */
export function maxSim(query: Embedding, doc: Embedding): number {
  let total = 0;
  for (let q = 0; q < query.rows; q++) {
    let best = -Infinity;
    for (let d = 0; d < doc.rows; d++) {
      let dot = 0;
      for (let c = 0; c < query.dim; c++) dot += query.data[q * query.dim + c]! * doc.data[d * doc.dim + c]!;
      if (dot > best) best = dot;
    }
    total += doc.rows > 0 ? best : 0;
  }
  return total;
}
