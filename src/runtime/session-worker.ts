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

async function init(msg: InitMessage): Promise<void> {
  let last: unknown;
  for (const file of msg.files) {
    try {
      session = await ort.InferenceSession.create(file, msg.options);
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
    const dims = [msg.batch, msg.seq];
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", msg.ids, dims),
      attention_mask: new ort.Tensor("int64", msg.mask, dims),
    };
    if (msg.withTokenTypes) feeds["token_type_ids"] = new ort.Tensor("int64", new BigInt64Array(msg.batch * msg.seq), dims);
    const out = (await session!.run(feeds))["output"]!;
    const dim = (out.dims as number[])[2]!;
    const data = out.data as Float32Array;
    const results = msg.items.map((item, b): RunResult => {
      const rows = new Float32Array(item.keep.length * dim);
      item.keep.forEach((j, r) => rows.set(data.subarray((b * msg.seq + j) * dim, (b * msg.seq + j + 1) * dim), r * dim));
      if (item.poolFactor > 1) return poolDocument(rows, item.keep.length, dim, item.poolFactor);
      return { rows: item.keep.length, data: rows };
    });
    out.dispose?.();
    port.postMessage({ type: "done", id: msg.id, results } satisfies WorkerReply, results.map((r) => r.data.buffer as ArrayBuffer));
  } catch (e) {
    port.postMessage({ type: "error", id: msg.id, message: String((e as Error)?.message ?? e) } satisfies WorkerReply);
  }
}

port.on("message", (msg: InitMessage | RunMessage | { type: "close" }) => {
  if (msg.type === "init") void init(msg);
  else if (msg.type === "run") void run(msg);
  else if (msg.type === "close") void session?.release().finally(() => process.exit(0));
});
