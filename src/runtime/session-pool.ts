/**
 * A pool of onnxruntime sessions, each on its own worker thread (session-worker.ts), fed from one
 * queue of tokenized texts. A free worker takes the next batch: queries before documents (a query
 * is cheap and someone is waiting on it), otherwise in arrival order, up to `batchSize` texts of
 * one type. Texts of different requests therefore share batches, a request's texts that are
 * still queued can be cancelled, and the JavaScript thread never runs the model.
 *
 * The sessions are created from a view of the model (model-view.ts): they map the weights from the
 * model file and share those pages, so N sessions cost far less than N copies.
 */
import type { Worker } from "node:worker_threads";
import { startWorker } from "../util/worker.js";
import type * as ort from "onnxruntime-node";
import type { InitMessage, RunMessage, WorkerReply } from "./session-worker.js";
import { withModelView } from "./model-view.js";
import { DEFAULT_CHUNK_TOKENS } from "../export/chunks.js";
import type { Embedding } from "./encoder.js";
import type { InputType, TokenizedText } from "./tokenizer.js";
import { padBatch } from "./batch.js";

export interface WorkItem {
  type: InputType;
  tokens: TokenizedText;
  /** Sequence positions whose rows the text returns. */
  keep: Int32Array;
  poolFactor: number;
  signal?: AbortSignal;
  resolve(e: Embedding): void;
  reject(err: unknown): void;
}

export interface PoolOptions {
  sessions: number;
  batchSize: number;
  padId: number;
  dim: number;
  withTokenTypes: boolean;
  sessionOptions: ort.InferenceSession.SessionOptions;
  /** Tokens per piece when a plain graph's batches run in pieces on CPU (default DEFAULT_CHUNK_TOKENS; 0: whole batches). */
  chunkTokens?: number;
}

function startSessionWorker(): Worker {
  return startWorker(import.meta.url, "session-worker");
}

/**
 * One worker and its one outstanding request. The worker holds the process open only while it
 * works (ref'd during a request, unref'd when idle): a script that forgets close() still exits.
 */
class SessionWorker {
  private pending?: { resolve(r: WorkerReply): void };
  busy = false;
  exited = false;
  constructor(readonly worker: Worker) {
    worker.unref();
    worker.on("message", (reply: WorkerReply) => {
      const p = this.pending;
      this.pending = undefined;
      worker.unref();
      p?.resolve(reply);
    });
    worker.on("error", (e) => {
      const p = this.pending;
      this.pending = undefined;
      p?.resolve({ type: "error", id: -1, message: e.message });
    });
    worker.on("exit", (code) => {
      this.exited = true;
      const p = this.pending;
      this.pending = undefined;
      p?.resolve({ type: "error", id: -1, message: `the inference thread exited (code ${code})` });
    });
  }

  request(msg: InitMessage | RunMessage, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    if (this.exited) return Promise.resolve({ type: "error", id: -1, message: "the inference thread is gone" });
    return new Promise((resolve) => {
      this.pending = { resolve };
      this.worker.ref();
      this.worker.postMessage(msg, transfer);
    });
  }
}

export class SessionPool {
  private readonly queues: Record<InputType, WorkItem[]> = { query: [], document: [] };
  private nextId = 0;
  private closed = false;
  /** Model calls made and texts they carried, since the start. */
  readonly stats = { batches: 0, texts: 0 };

  private constructor(
    private readonly workers: SessionWorker[],
    private readonly opts: PoolOptions,
    private readonly modelFile: string,
    /** Tokens per piece of a batch in the workers (0: whole batches). */
    readonly chunkTokens: number,
  ) {}

  /** Starts `opts.sessions` workers, each with a session of `modelFile`; throws the first load error. */
  static async create(modelFile: string, opts: PoolOptions): Promise<SessionPool> {
    const workers: SessionWorker[] = [];
    // Chunked batches suit CPUs; GPU-like providers get whole batches (export/chunks.ts).
    const providers = opts.sessionOptions.executionProviders ?? ["cpu"];
    const wholeBatches = providers.some((p) => (typeof p === "string" ? p : p.name) !== "cpu");
    let chunkTokens = 0;
    try {
      await withModelView(modelFile, async (file, model) => {
        // On CPUs a plain graph's batches are run in chunks here, as a chunked export runs them in its graph.
        chunkTokens = wholeBatches || model.batchLoop ? 0 : (opts.chunkTokens ?? DEFAULT_CHUNK_TOKENS);
        const files = file === modelFile ? [modelFile] : [file, modelFile];
        await Promise.all(
          Array.from({ length: opts.sessions }, async () => {
            const w = new SessionWorker(startSessionWorker());
            workers.push(w);
            const reply = await w.request({ type: "init", files, options: opts.sessionOptions, chunkTokens });
            if (reply.type !== "ready") throw new Error(reply.type === "init-error" || reply.type === "error" ? reply.message : "unexpected reply");
          }),
        );
      }, { wholeBatches });
    } catch (e) {
      await Promise.all(workers.map((w) => w.worker.terminate()));
      throw e;
    }
    return new SessionPool(workers, opts, modelFile, chunkTokens);
  }

  get size(): number {
    return this.workers.length;
  }

  /** Texts waiting for a worker (not yet running). */
  get queued(): number {
    return this.queues.query.length + this.queues.document.length;
  }

  /** Texts being run right now. */
  get running(): number {
    return this.workers.filter((w) => w.busy).length;
  }

  private gather?: NodeJS.Timeout;

  enqueue(items: WorkItem[]): void {
    if (this.closed) {
      for (const item of items) item.reject(new Error("the encoder is closed"));
      return;
    }
    for (const item of items) this.queues[item.type].push(item);
    // Less than a batch queued: give other requests a moment (2 ms) to join it, as NextPlaid's
    // batch window does; under load a worker finds full batches waiting anyway.
    if (this.queued >= this.opts.batchSize) this.pump();
    else this.gather ??= setTimeout(() => {
      this.gather = undefined;
      this.pump();
    }, 2);
  }

  /** Next batch: queries first, then documents, skipping cancelled texts. */
  private take(): WorkItem[] {
    for (const type of ["query", "document"] as const) {
      const queue = this.queues[type];
      const batch: WorkItem[] = [];
      while (batch.length < this.opts.batchSize && queue.length > 0) {
        const item = queue.shift()!;
        if (item.signal?.aborted) item.reject(item.signal.reason ?? new Error("cancelled"));
        else batch.push(item);
      }
      if (batch.length > 0) return batch;
    }
    return [];
  }

  private pump(): void {
    for (const w of this.workers) {
      if (w.busy) continue;
      const batch = this.take();
      if (batch.length === 0) return;
      w.busy = true;
      void this.runOn(w, batch).finally(() => {
        w.busy = false;
        if (!this.closed) this.pump();
      });
    }
  }

  private async runOn(w: SessionWorker, batch: WorkItem[]): Promise<void> {
    const { batch: b, seq, ids, mask } = padBatch(
      batch.map((i) => i.tokens),
      this.opts.padId,
    );
    const msg: RunMessage = {
      type: "run",
      id: this.nextId++,
      batch: b,
      seq,
      ids,
      mask,
      withTokenTypes: this.opts.withTokenTypes,
      items: batch.map((i) => ({ keep: i.keep, poolFactor: i.poolFactor })),
    };
    this.stats.batches++;
    this.stats.texts += b;
    const reply = await w.request(msg, [ids.buffer as ArrayBuffer, mask.buffer as ArrayBuffer]);
    if (reply.type === "done") {
      batch.forEach((item, i) => item.resolve({ rows: reply.results[i]!.rows, dim: this.opts.dim, data: reply.results[i]!.data }));
      return;
    }
    const error = new Error(`inference failed: ${reply.type === "error" || reply.type === "init-error" ? reply.message : "unexpected reply"}`);
    for (const item of batch) item.reject(error);
    // A worker that died is replaced (from the model file itself; the view is gone).
    if (reply.type === "error" && reply.id === -1 && !this.closed) await this.replace(w);
  }

  private async replace(dead: SessionWorker): Promise<void> {
    const index = this.workers.indexOf(dead);
    await dead.worker.terminate();
    const w = new SessionWorker(startSessionWorker());
    const reply = await w.request({ type: "init", files: [this.modelFile], options: this.opts.sessionOptions, chunkTokens: this.chunkTokens });
    if (reply.type === "ready") {
      this.workers[index] = w;
      return;
    }
    await w.worker.terminate();
    this.workers.splice(index, 1);
    if (this.workers.length === 0) {
      this.closed = true;
      const error = new Error(`inference failed: no inference thread could be restarted (${reply.type === "init-error" ? reply.message : "unknown"})`);
      for (const q of Object.values(this.queues)) for (const item of q.splice(0)) item.reject(error);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.gather);
    const error = new Error("the encoder is closed");
    for (const q of Object.values(this.queues)) for (const item of q.splice(0)) item.reject(error);
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.exited) return resolve();
            w.worker.ref(); // the close is awaited: the worker holds the process until it has exited
            w.worker.once("exit", () => resolve());
            w.worker.postMessage({ type: "close" });
            setTimeout(() => void w.worker.terminate(), 5000).unref();
          }),
      ),
    );
  }
}
