/**
 * Asynchronous index writes, as next-plaid-api runs them: one queue per index; updates arriving
 * within 100 ms (up to 300 documents) are merged into one batch; deletes keep their place in the
 * queue; a full queue answers 503. Progress is reported in /health `updates` (one entry per index,
 * finished entries kept 10 minutes).
 */
import type { RemoteEngine } from "../plaid/client.js";
import { HttpError } from "./http.js";
import { handOver } from "../util/handover.js";

export interface UpdateEntry {
  index: string;
  status: "queued" | "running" | "complete" | "failed";
  stage: string;
  queued_documents?: number;
  processed_documents?: number;
  started_at: string;
  updated_at: string;
  elapsed_ms: number;
  message?: string;
  error?: string;
}

const KEEP_FINISHED_MS = 10 * 60_000;
const iso = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");

export class UpdateTracker {
  private entries = new Map<string, { e: Omit<UpdateEntry, "elapsed_ms" | "started_at" | "updated_at">; started: number; updated: number }>();

  queued(index: string, documents: number, message: string): void {
    const now = Date.now();
    const cur = this.entries.get(index);
    if (cur && cur.e.status === "running") {
      cur.e.queued_documents = (cur.e.queued_documents ?? 0) + documents;
      cur.updated = now;
      return;
    }
    const queuedBefore = cur && cur.e.status === "queued" ? (cur.e.queued_documents ?? 0) : 0;
    this.entries.set(index, { e: { index, status: "queued", stage: "queued", queued_documents: queuedBefore + documents, message }, started: cur?.e.status === "queued" ? cur.started : now, updated: now });
  }

  stage(index: string, stage: string, message: string): void {
    const cur = this.entries.get(index);
    const now = Date.now();
    if (!cur) this.entries.set(index, { e: { index, status: "running", stage, message }, started: now, updated: now });
    else {
      Object.assign(cur.e, { status: "running", stage, message });
      delete cur.e.error;
      cur.updated = now;
    }
  }

  complete(index: string, processed: number, message: string): void {
    this.finish(index, { status: "complete", stage: "complete", processed_documents: processed, message });
  }

  failed(index: string, error: string): void {
    this.finish(index, { status: "failed", stage: "failed", message: "update failed", error });
  }

  private finish(index: string, patch: Partial<UpdateEntry>): void {
    const now = Date.now();
    const cur = this.entries.get(index) ?? { e: { index, status: "running" as const, stage: "" }, started: now, updated: now };
    Object.assign(cur.e, patch);
    cur.updated = now;
    this.entries.set(index, cur);
  }

  forget(index: string): void {
    this.entries.delete(index);
  }

  list(): UpdateEntry[] {
    const now = Date.now();
    const out: UpdateEntry[] = [];
    for (const [name, { e, started, updated }] of [...this.entries].sort((a, b) => a[0].localeCompare(b[0]))) {
      const finished = e.status === "complete" || e.status === "failed";
      if (finished && now - updated > KEEP_FINISHED_MS) {
        this.entries.delete(name);
        continue;
      }
      out.push({ ...e, started_at: iso(started), updated_at: iso(updated), elapsed_ms: (finished ? updated : now) - started });
    }
    return out;
  }
}

interface AddItem {
  kind: "add";
  docs: { data: Float32Array; rows: number; dim: number }[];
  metadata: unknown[];
}
interface DeleteItem {
  kind: "delete";
  condition: string;
  parameters: unknown[];
}
type Item = AddItem | DeleteItem;

const itemBytes = (item: Pick<AddItem, "docs">) => item.docs.reduce((a, d) => a + d.rows * d.dim * 4, 0);

export interface QueueOptions {
  /** Documents merged into one update batch (default 300). */
  maxBatchDocuments?: number;
  /** How long the first update waits for others to join its batch (default 100 ms). */
  batchWindowMs?: number;
  /** Requests waiting per index before 503 (default 100). */
  capacity?: number;
  /**
   * Bytes of embeddings (float32) waiting per index before 503 (default 256 MiB): a client sending
   * faster than the index writes (during a retrain, say) gets 503 and retries, instead of the
   * server holding its corpus in memory. A request alone in the queue is always taken.
   */
  maxPendingBytes?: number;
}

/** Default of QueueOptions.maxPendingBytes. */
export const MAX_PENDING_BYTES = 256 * 2 ** 20;

export class UpdateQueues {
  private queues = new Map<string, { items: Item[]; bytes: number; running: Promise<void> | undefined }>();
  private readonly maxDocs: number;
  private readonly windowMs: number;
  readonly capacity: number;
  readonly maxPendingBytes: number;

  constructor(
    private readonly engine: RemoteEngine,
    readonly tracker: UpdateTracker,
    opts: QueueOptions = {},
  ) {
    this.maxDocs = opts.maxBatchDocuments ?? 300;
    this.windowMs = opts.batchWindowMs ?? 100;
    this.capacity = opts.capacity ?? 100;
    this.maxPendingBytes = opts.maxPendingBytes ?? MAX_PENDING_BYTES;
  }

  private queue(name: string) {
    let q = this.queues.get(name);
    if (!q) this.queues.set(name, (q = { items: [], bytes: 0, running: undefined }));
    return q;
  }

  /** Queues an update; 503 when the index's queue is full. */
  add(name: string, item: Omit<AddItem, "kind">, message = "update queued for batching"): void {
    const q = this.queue(name);
    if (q.items.length >= this.capacity) throw new HttpError(503, "SERVICE_UNAVAILABLE", `Update queue full for index '${name}'. Max ${this.capacity} pending items. Retry later.`);
    const bytes = itemBytes(item);
    if (q.items.length > 0 && q.bytes + bytes > this.maxPendingBytes) {
      throw new HttpError(503, "SERVICE_UNAVAILABLE", `Update queue full for index '${name}': ${Math.round(q.bytes / 2 ** 20)} MB of embeddings waiting (max ${Math.round(this.maxPendingBytes / 2 ** 20)} MB). Retry later.`);
    }
    q.items.push({ kind: "add", ...item });
    q.bytes += bytes;
    this.tracker.queued(name, item.docs.length, message);
    this.kick(name);
  }

  delete(name: string, condition: string, parameters: unknown[]): void {
    const q = this.queue(name);
    if (q.items.length >= this.capacity) throw new HttpError(503, "SERVICE_UNAVAILABLE", `Delete queue full for index '${name}'. Max ${this.capacity} pending items. Retry later.`);
    q.items.push({ kind: "delete", condition, parameters });
    this.kick(name);
  }

  /** Pending requests for `name` (queued, not yet running). */
  pending(name: string): number {
    return this.queues.get(name)?.items.length ?? 0;
  }

  /** Drops what is queued for `name` and waits for the batch in progress. */
  async cancel(name: string): Promise<void> {
    const q = this.queues.get(name);
    if (!q) return;
    q.items.length = 0;
    q.bytes = 0;
    await q.running;
    this.queues.delete(name);
    this.tracker.forget(name);
  }

  /** Resolves when every queue is empty and idle. */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.queues.values()].map((q) => q.running).filter(Boolean);
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  private kick(name: string): void {
    const q = this.queue(name);
    if (q.running) return;
    q.running = this.drain(name).finally(() => {
      q.running = undefined;
      if (q.items.length > 0) this.kick(name);
    });
  }

  private async drain(name: string): Promise<void> {
    const q = this.queue(name);
    while (q.items.length > 0) {
      const first = q.items[0]!;
      if (first.kind === "delete") {
        q.items.shift();
        try {
          await this.engine.deleteWhere(name, first.condition, first.parameters);
        } catch (e) {
          // The condition was valid when queued; a delete that fails now is reported, not retried.
          this.tracker.failed(name, `delete failed: ${(e as Error).message}`);
        }
        continue;
      }
      // Let other updates join the batch for a moment.
      if (this.windowMs > 0) await new Promise((r) => setTimeout(r, this.windowMs));
      const batch: AddItem[] = [];
      let docs = 0;
      while (q.items.length > 0 && q.items[0]!.kind === "add" && (batch.length === 0 || docs + (q.items[0] as AddItem).docs.length <= this.maxDocs)) {
        const item = q.items.shift() as AddItem;
        q.bytes -= itemBytes(item);
        batch.push(item);
        docs += item.docs.length;
      }
      await this.runBatch(name, batch, docs);
    }
  }

  private async runBatch(name: string, batch: AddItem[], count: number): Promise<void> {
    const all = batch.flatMap((b) => b.docs);
    const metadata = batch.flatMap((b) => b.metadata);
    const dim = all[0]!.dim;
    try {
      if (all.some((d) => d.dim !== dim)) throw new Error(`Dimension mismatch: documents of dimension ${dim} and ${all.find((d) => d.dim !== dim)!.dim} in one batch`);
      const tokens = all.reduce((s, d) => s + d.rows, 0);
      const data = new Float32Array(tokens * dim);
      let at = 0;
      let sinceYield = 0;
      for (const d of all) {
        data.set(d.data.subarray(0, d.rows * dim), at);
        at += d.rows * dim;
        // Several queued updates make one batch of up to hundreds of MB: other requests run between
        // its copies (one copy of all of it held this thread for 100+ ms).
        if ((sinceYield += d.rows * dim) >= 1 << 20) {
          sinceYield = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
      const doclens = Int32Array.from(all, (d) => d.rows);
      this.tracker.stage(name, "batching", "processing queued update batch");
      // The batch is ours alone: its memory moves to the index thread rather than being copied.
      await this.engine.add(name, { data: handOver(data), doclens: handOver(doclens) }, dim, metadata, (stage, message) => this.tracker.stage(name, stage, message));
      this.tracker.complete(name, count, "update complete");
    } catch (e) {
      this.tracker.failed(name, (e as Error).message);
    }
  }
}
