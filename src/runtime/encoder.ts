/**
 * ColBERT encoder over an exported folder: PyLate-exact tokenization on this thread, length-sorted
 * batches run by onnxruntime sessions on their own threads (session-pool.ts), per-text token
 * embeddings in input order, optional hierarchical pooling for documents.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ColbertTokenizer, type InputType } from "./tokenizer.js";
import { SessionPool, type WorkItem } from "./session-pool.js";
import { cpuFlags, int8SaturationWarning } from "../quantize/saturation.js";
import { readOnnxConfig, type OnnxConfig } from "../colbert/onnx-config.js";
import { environmentError, UserError } from "../errors.js";
import { isExportFolder, resolveModel } from "./model-source.js";
import type { Logger } from "../util/log.js";
import { createRequire } from "node:module";
import { readExportJson } from "../util/fs.js";

/** One text's token embeddings: `rows` × `dim`, row-major, each row L2-normalised. */
export interface Embedding {
  rows: number;
  dim: number;
  data: Float32Array;
}

export interface EncoderOptions {
  /** model_int8.onnx (true), model.onnx (false, the default), or model_int8.onnx when the folder has it ("auto"). */
  int8?: boolean | "auto";
  /** Parallel onnxruntime sessions, each on its own thread (default: see defaultParallelism). */
  sessions?: number;
  /** Texts per model call (default 32). */
  batchSize?: number;
  /** onnxruntime execution provider: "cpu" (default), "cuda", "coreml", "dml", …, or "auto" (CUDA when its libraries load, else CPU). */
  executionProvider?: string;
  /** Threads per session (default: cores / sessions). */
  threads?: number;
  /** Hub revision when `model` is a Hub id. */
  revision?: string;
  /** Progress of downloads / on-the-fly exports when `model` is not an export folder. */
  logger?: Logger;
  queryLength?: number;
  documentLength?: number;
  /** Receives warnings about the model (default: process.emitWarning). */
  onWarning?: (message: string) => void;
  /**
   * On CPU, a plain graph's batches run in pieces of about this many tokens (default 1024: faster,
   * BENCHMARKS.md; 0: whole batches). Models that chunk in their graph, and GPU providers, run whole batches.
   */
  chunkTokens?: number;
}

export interface EncodeOptions {
  /** Documents only: hierarchical token pooling factor (> 1 reduces the rows). */
  poolFactor?: number;
  /** Called as batches finish with (texts done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Aborting drops the texts not yet running and rejects the promise. */
  signal?: AbortSignal;
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
  const limit = maxInputLength(readExportJson<Record<string, unknown>>(file));
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
    /** Where the model came from (an export folder, a Hub export, an on-the-fly export). */
    readonly source: string,
  ) {}

  /**
   * `model`: an export folder, a Hub id of a published export, or a PyLate checkpoint (folder or
   * Hub id), exported on the fly into a cache (runtime/model-source.ts).
   */
  static async load(model: string, opts: EncoderOptions = {}): Promise<ColbertEncoder> {
    const resolved = isExportFolder(model)
      ? { dir: model, description: `export folder ${path.resolve(model)}` }
      : await resolveModel(model, { revision: opts.revision, precision: opts.int8 === true ? "int8" : opts.int8 === "auto" ? "auto" : "fp32", logger: opts.logger });
    const dir = resolved.dir;
    const config = readOnnxConfig(dir);
    if (opts.queryLength) config.query_length = opts.queryLength;
    if (opts.documentLength) config.document_length = opts.documentLength;
    checkLengths(dir, config);
    const tokenizer = await ColbertTokenizer.fromFolder(dir, config, { onWarning: opts.onWarning });
    const int8 = opts.int8 === "auto" ? fs.existsSync(path.join(dir, "model_int8.onnx")) : !!opts.int8;
    const modelFile = path.join(dir, int8 ? "model_int8.onnx" : "model.onnx");
    if (!fs.existsSync(modelFile)) {
      throw new UserError(int8 ? `No model_int8.onnx in ${dir}: run colbert-quantize ${dir} first` : `No model.onnx in ${dir}: pass a folder written by pylate-onnx-export`);
    }
    if (int8) {
      const warning = int8SaturationWarning(modelFile, cpuFlags());
      if (warning) (opts.onWarning ?? ((m: string) => process.emitWarning(m)))(warning);
    }
    const parallel = defaultParallelism(opts.sessions, opts.threads);
    const batchSize = Math.max(1, opts.batchSize ?? 32);
    const requested = opts.executionProvider ?? "cpu";
    const candidates = requested === "auto" ? [...(cudaLibrariesPresent() ? ["cuda"] : []), "cpu"] : [requested];
    let lastError: unknown;
    for (const provider of candidates) {
      try {
        const pool = await SessionPool.create(modelFile, {
          sessions: parallel.sessions,
          batchSize,
          padId: config.pad_token_id,
          dim: config.embedding_dim,
          withTokenTypes: config.uses_token_type_ids,
          chunkTokens: opts.chunkTokens,
          sessionOptions: { executionProviders: [provider], graphOptimizationLevel: "all", intraOpNumThreads: parallel.threads, interOpNumThreads: 1 },
        });
        return new ColbertEncoder(dir, config, tokenizer, pool, batchSize, modelFile, parallel.threads, provider, resolved.description);
      } catch (e) {
        lastError = e;
      }
    }
    const known = environmentError(lastError);
    if (known) throw known;
    const message = (lastError as Error).message.split("\n")[0];
    if (requested !== "cpu" && requested !== "auto") throw new UserError(`Execution provider "${requested}" is not available here (${message}); use the default cpu provider`);
    throw new UserError(`onnxruntime cannot load ${modelFile} (${message}); re-export the model`);
  }

  /** Tokens per piece a batch is split into before the model (0: whole batches: a GPU provider, or a model that chunks in its graph). */
  get chunkTokens(): number {
    return this.pool.chunkTokens;
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

  /** Model calls made, and texts they carried, since loading. */
  get stats(): { batches: number; texts: number } {
    return { ...this.pool.stats };
  }

  /** Batches being run right now. */
  get runningBatches(): number {
    return this.pool.running;
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

/**
 * Sessions × threads per session. Default: one session per two cores, each with two threads (at
 * least one session): measured on 2 cores (BENCHMARKS.md), 1 × 2 and 2 × 1 give the same
 * throughput under load while 1 × 2 answers a lone request twice as fast.
 */
export function defaultParallelism(sessions?: number, threads?: number): { sessions: number; threads: number } {
  const cores = os.availableParallelism();
  const s = Math.max(1, sessions ?? (threads ? Math.floor(cores / threads) : Math.floor(cores / 2)));
  return { sessions: s, threads: Math.max(1, threads ?? Math.floor(cores / s)) };
}

/** onnxruntime-node's CUDA provider libraries are installed (its install script downloads them on Linux x64). */
function cudaLibrariesPresent(): boolean {
  if (process.platform !== "linux" || process.arch !== "x64") return false;
  try {
    const pkg = path.dirname(createRequire(import.meta.url).resolve("onnxruntime-node/package.json"));
    return fs.existsSync(path.join(pkg, "bin", "napi-v6", "linux", "x64", "libonnxruntime_providers_cuda.so"));
  } catch {
    return false;
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
