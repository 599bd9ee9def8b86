/** What the handlers share: the model (if any), limits, and the request's own state. */
import type http from "node:http";
import type { ColbertEncoder, Embedding } from "../runtime/encoder.js";
import type { InputType } from "../runtime/tokenizer.js";
import { HttpError } from "./http.js";
import type { RemoteEngine } from "../plaid/client.js";
import type { IndexInfo } from "../plaid/types.js";
import { UpdateQueues, UpdateTracker, type QueueOptions } from "./updates.js";

export interface ServerOptions {
  /** The model for /encode, /rerank_with_encoding and the *_with_encoding routes; without one they answer MODEL_NOT_LOADED. */
  encoder?: ColbertEncoder;
  /** Largest accepted request body in bytes (default 100 MiB, as NextPlaid). */
  maxBodyBytes?: number;
  /** Most texts in one request (default 10 000). */
  maxTexts?: number;
  /** Texts allowed to wait for the model across all requests before new ones get 503 (default 4096). */
  maxQueuedTexts?: number;
  modelName?: string;
  quantized?: boolean;
  /** The index engine (started with startIndexEngine) for the /indices routes; without one they answer 404. */
  indexEngine?: RemoteEngine;
  /** Shown in /health. */
  indexDir?: string;
  /** Update batching and queue limits (NextPlaid's defaults). */
  updateQueue?: QueueOptions;
}

export interface RequestContext {
  req: http.IncomingMessage;
  body: Record<string, unknown>;
  params: Record<string, string>;
  /** Aborted when the client goes away before the answer. */
  signal: AbortSignal;
}

export class ServerContext {
  readonly maxBody: number;
  readonly maxTexts: number;
  readonly maxQueued: number;
  readonly tracker = new UpdateTracker();
  private readonly queues?: UpdateQueues;
  constructor(readonly opts: ServerOptions) {
    this.maxBody = opts.maxBodyBytes ?? 100 * 2 ** 20;
    this.maxTexts = opts.maxTexts ?? 10_000;
    this.maxQueued = opts.maxQueuedTexts ?? 4096;
    if (opts.indexEngine) {
      this.queues = new UpdateQueues(opts.indexEngine, this.tracker, opts.updateQueue);
      void this.indexOverview(); // warm: the first /health need not wait for the engine
    }
  }

  indices(): RemoteEngine {
    if (!this.opts.indexEngine) throw new HttpError(404, "INDEX_NOT_FOUND", "This server serves no indices; start colbert-serve with --index-dir DIR to enable the index API");
    return this.opts.indexEngine;
  }

  updates(): UpdateQueues {
    this.indices();
    return this.queues!;
  }

  private overviewCache?: IndexInfo[];
  private overviewPending?: Promise<IndexInfo[]>;

  /**
   * Every index's summary for /health. The engine answers between its work slices; when it is
   * busy for longer than 100 ms, /health answers with the last summary instead of waiting.
   */
  async indexOverview(): Promise<IndexInfo[]> {
    const engine = this.opts.indexEngine;
    if (!engine) return [];
    // An engine that fails (its thread restarting) must not fail /health: the last summary stands.
    this.overviewPending ??= engine
      .overview()
      .then((v) => (this.overviewCache = v))
      .catch(() => this.overviewCache ?? [])
      .finally(() => (this.overviewPending = undefined));
    if (this.overviewCache === undefined) return this.overviewPending;
    let timer: NodeJS.Timeout | undefined;
    const stale = new Promise<IndexInfo[]>((resolve) => (timer = setTimeout(() => resolve(this.overviewCache!), 100)));
    try {
      return await Promise.race([this.overviewPending, stale]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves when queued index writes are done (graceful shutdown). */
  async idle(): Promise<void> {
    await this.queues?.idle();
  }

  model(): ColbertEncoder {
    if (!this.opts.encoder) throw new HttpError(400, "MODEL_NOT_LOADED", "No model loaded. Start the server with --model <path> to enable encoding.");
    return this.opts.encoder;
  }

  /** Encodes on the model's threads; 503 when the queue is full, MODEL_ERROR when inference fails. */
  async encode(texts: string[], type: InputType, poolFactor: number | undefined, signal: AbortSignal): Promise<Embedding[]> {
    const encoder = this.model();
    if (encoder.queuedTexts + texts.length > this.maxQueued) {
      throw new HttpError(503, "SERVICE_UNAVAILABLE", "Encode queue full. Too many concurrent requests. Retry later.");
    }
    try {
      return await encoder.encode(texts, type, { poolFactor, signal });
    } catch (e) {
      if (signal.aborted) throw e;
      throw new HttpError(500, "MODEL_ERROR", (e as Error).message);
    }
  }
}
