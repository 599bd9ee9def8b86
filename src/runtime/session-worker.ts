/**
 * One onnxruntime session on its own thread (worker_threads). onnxruntime-node runs
 * `session.run` on the calling JavaScript thread, so inference on the main thread would stall a
 * server's event loop; here it only stalls this worker. The worker also picks each text's rows and
 * pools documents, so the main thread only tokenizes, batches and answers.
 *
 * Protocol (see session-pool.ts): "init" → "ready" | "init-error"; "run" → "done" | "error".
 */
import { parentPort } from "node:worker_threads";
import * as ort from "onnxruntime-node";
import { poolDocument } from "./pooling.js";

export interface InitMessage {
  type: "init";
  /** Model files to try in order (a view of the model first, the model itself as fallback). */
  files: string[];
  options: ort.InferenceSession.SessionOptions;
  /**
   * Run each batch in pieces of about this many tokens (0: whole). On CPUs a transformer is faster
   * on ~1000 tokens at a time (activations stay in cache): what a chunked export does in its graph,
   * done here for a plain graph (export/chunks.ts; rows are computed exactly as in one pass).
   */
  chunkTokens: number;
}

export interface RunMessage {
  type: "run";
  id: number;
  batch: number;
  seq: number;
  ids: BigInt64Array;
  mask: BigInt64Array;
  /** Present when the model takes token_type_ids (all zeros). */
  withTokenTypes: boolean;
  /** Per text: the sequence positions whose rows it returns, and its pooling factor (≤ 1: none). */
  items: { keep: Int32Array; poolFactor: number }[];
}

export interface RunResult {
  rows: number;
  data: Float32Array;
}

export type WorkerReply =
  | { type: "ready" }
  | { type: "init-error"; message: string }
  | { type: "done"; id: number; results: RunResult[] }
  | { type: "error"; id: number; message: string };

ort.env.logLevel = "fatal";
const port = parentPort!;
let session: ort.InferenceSession | undefined;
let chunkTokens = 0;

async function init(msg: InitMessage): Promise<void> {
  let last: unknown;
  for (const file of msg.files) {
    try {
      session = await ort.InferenceSession.create(file, msg.options);
      chunkTokens = msg.chunkTokens;
      port.postMessage({ type: "ready" } satisfies WorkerReply);
      return;
    } catch (e) {
      last = e;
    }
  }
  port.postMessage({ type: "init-error", message: String((last as Error)?.message ?? last) } satisfies WorkerReply);
}

async function run(msg: RunMessage): Promise<void> {
  try {
    const { seq } = msg;
    const per = chunkTokens > 0 ? Math.max(1, Math.floor(chunkTokens / Math.max(1, seq))) : msg.batch;
    const results: RunResult[] = [];
    for (let first = 0; first < msg.batch; first += per) {
      const n = Math.min(per, msg.batch - first);
      const part = (a: BigInt64Array) => (n === msg.batch ? a : a.slice(first * seq, (first + n) * seq));
      const dims = [n, seq];
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor("int64", part(msg.ids), dims),
        attention_mask: new ort.Tensor("int64", part(msg.mask), dims),
      };
      if (msg.withTokenTypes) feeds["token_type_ids"] = new ort.Tensor("int64", new BigInt64Array(n * seq), dims);
      const out = (await session!.run(feeds))["output"]!;
      const dim = (out.dims as number[])[2]!;
      const data = out.data as Float32Array;
      for (let b = 0; b < n; b++) {
        const item = msg.items[first + b]!;
        const rows = new Float32Array(item.keep.length * dim);
        item.keep.forEach((j, r) => rows.set(data.subarray((b * seq + j) * dim, (b * seq + j + 1) * dim), r * dim));
        results.push(item.poolFactor > 1 ? poolDocument(rows, item.keep.length, dim, item.poolFactor) : { rows: item.keep.length, data: rows });
      }
      out.dispose?.();
    }
    port.postMessage({ type: "done", id: msg.id, results } satisfies WorkerReply, results.map((r) => r.data.buffer as ArrayBuffer));
  } catch (e) {
    port.postMessage({ type: "error", id: msg.id, message: String((e as Error)?.message ?? e) } satisfies WorkerReply);
  }
}

/** Runs in flight: a close waits for them (releasing a session under a running graph is not safe). */
const running = new Set<Promise<void>>();

port.on("message", (msg: InitMessage | RunMessage | { type: "close" }) => {
  if (msg.type === "init") void init(msg);
  else if (msg.type === "run") {
    const p = run(msg).finally(() => running.delete(p));
    running.add(p);
  } else if (msg.type === "close") void Promise.allSettled([...running]).then(() => session?.release()).finally(() => process.exit(0));
});
