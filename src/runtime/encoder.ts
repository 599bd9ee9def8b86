/**
 * ColBERT encoder over an exported folder: PyLate-exact tokenization, length-sorted batches run
 * on one or more onnxruntime sessions, per-text token embeddings in input order, optional
 * hierarchical pooling for documents.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ColbertTokenizer, type InputType } from "./tokenizer.js";
import { SessionPool, type Embedding, type WorkItem } from "./session-pool.js";
import { cpuFlags, int8SaturationWarning } from "../quantize/saturation.js";
import { readOnnxConfig, type OnnxConfig } from "../colbert/onnx-config.js";
import { environmentError, UserError } from "../errors.js";

/** One text's token embeddings: `rows` × `dim`, row-major, each row L2-normalised. */
export type { Embedding };

export interface EncoderOptions {
  /** Use model_int8.onnx instead of model.onnx. */
  int8?: boolean;
  /** Parallel onnxruntime sessions, each on its own thread (default 1). */
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
  /** Called as batches finish with (texts done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Aborting drops the texts not yet running and rejects the promise. */
  signal?: AbortSignal;
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
  private constructor(
    readonly dir: string,
    readonly config: OnnxConfig,
    readonly tokenizer: ColbertTokenizer,
    private readonly pool: SessionPool,
    readonly batchSize: number,
    readonly modelFile: string,
    /** onnxruntime threads per session. */
    readonly threads: number,
    readonly executionProvider: string,
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
    const sessions = Math.max(1, opts.sessions ?? 1);
    const threads = opts.threads ?? Math.max(1, Math.floor(os.availableParallelism() / sessions));
    const batchSize = Math.max(1, opts.batchSize ?? 32);
    let pool: SessionPool;
    try {
      pool = await SessionPool.create(modelFile, {
        sessions,
        batchSize,
        padId: config.pad_token_id,
        dim: config.embedding_dim,
        withTokenTypes: config.uses_token_type_ids,
        sessionOptions: { executionProviders: [provider], graphOptimizationLevel: "all", intraOpNumThreads: threads, interOpNumThreads: 1 },
      });
    } catch (e) {
      const known = environmentError(e);
      if (known) throw known;
      const message = (e as Error).message.split("\n")[0];
      if (provider !== "cpu") throw new UserError(`Execution provider "${provider}" is not available here (${message}); use the default cpu provider`);
      throw new UserError(`onnxruntime cannot load ${modelFile} (${message}); re-export the model`);
    }
    return new ColbertEncoder(dir, config, tokenizer, pool, batchSize, modelFile, threads, provider);
  }

  get embeddingDim(): number {
    return this.config.embedding_dim;
  }

  get sessionCount(): number {
    return this.pool.size;
  }

  /** Texts waiting for an inference thread (the server's backpressure reads this). */
  get queuedTexts(): number {
    return this.pool.queued;
  }

  encodeQueries(texts: string[], opts: EncodeOptions = {}): Promise<Embedding[]> {
    return this.encode(texts, "query", opts);
  }

  encodeDocuments(texts: string[], opts: EncodeOptions = {}): Promise<Embedding[]> {
    return this.encode(texts, "document", opts);
  }

  /**
   * Encodes on the inference threads. Texts are queued longest first, so batches pad to similar
   * lengths; results come back in input order. An aborted `signal` drops the texts still queued.
   */
  async encode(texts: string[], type: InputType, opts: EncodeOptions = {}): Promise<Embedding[]> {
    if (texts.length === 0) return [];
    const tokenized = await this.tokenizer.encodeBatch(texts, type);
    opts.signal?.throwIfAborted();
    const order = tokenized.map((_, i) => i).sort((a, b) => tokenized[b]!.ids.length - tokenized[a]!.ids.length);
    const poolFactor = type === "document" && opts.poolFactor && opts.poolFactor > 1 ? opts.poolFactor : 0;
    let done = 0;
    const results: Embedding[] = new Array(texts.length);
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      const items: WorkItem[] = order.map((i) => {
        const t = tokenized[i]!;
        const keep: number[] = [];
        for (let j = 0; j < t.ids.length; j++) if (this.tokenizer.keepRow(type, t.ids[j]!, t.mask[j]!)) keep.push(j);
        return {
          type,
          tokens: t,
          keep: Int32Array.from(keep),
          poolFactor,
          signal: opts.signal,
          resolve: (e) => {
            results[i] = e;
            done++;
            if (opts.onProgress && (done % this.batchSize === 0 || done === texts.length)) opts.onProgress(done, texts.length);
            if (done === texts.length) resolve();
          },
          reject: (err) => {
            if (failed) return;
            failed = true;
            reject(err);
          },
        };
      });
      this.pool.enqueue(items);
    });
    return results;
  }

  async close(): Promise<void> {
    await this.pool.close();
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
