/**
 * Micro-batching across HTTP clients: texts of concurrent requests with the same input type are
 * gathered for a short window (or until a batch is full) and encoded in one call.
 */
import type { ColbertEncoder, Embedding } from "../runtime/encoder.js";
import type { InputType } from "../runtime/tokenizer.js";

interface Pending {
  texts: string[];
  resolve: (e: Embedding[]) => void;
  reject: (err: unknown) => void;
}

export class MicroBatcher {
  private readonly queues: Record<InputType, Pending[]> = { query: [], document: [] };
  private readonly timers: Partial<Record<InputType, NodeJS.Timeout>> = {};

  constructor(
    private readonly encoder: ColbertEncoder,
    private readonly maxTexts: number,
    private readonly waitMs = 2,
  ) {}

  encode(texts: string[], type: InputType): Promise<Embedding[]> {
    return new Promise((resolve, reject) => {
      const queue = this.queues[type];
      queue.push({ texts, resolve, reject });
      const queued = queue.reduce((n, p) => n + p.texts.length, 0);
      if (queued >= this.maxTexts) this.flush(type);
      else this.timers[type] ??= setTimeout(() => this.flush(type), this.waitMs);
    });
  }

  private flush(type: InputType): void {
    clearTimeout(this.timers[type]);
    delete this.timers[type];
    const batch = this.queues[type].splice(0);
    if (batch.length === 0) return;
    this.encoder.encode(batch.flatMap((p) => p.texts), type).then(
      (all) => {
        let offset = 0;
        for (const p of batch) {
          p.resolve(all.slice(offset, offset + p.texts.length));
          offset += p.texts.length;
        }
      },
      (err) => batch.forEach((p) => p.reject(err)),
    );
  }
}
