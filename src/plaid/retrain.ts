/**
 * A background retrain's state (engine.ts runs it: see PlaidEngine.runRetrain). Once its codec is
 * trained, every chunk of the index is encoded again with it into new files — by the retrain itself
 * for the chunks it started from and, for the chunks written while it runs, by whichever comes
 * first: its catch-up rounds, or the write that made them (started after the write's commit, run
 * beside the next write), so that the retrain's commit has nothing left to encode while it holds
 * the lock that updates wait for. A chunk is encoded once, whoever asks.
 */
import type { Codec } from "./codec.js";
import type { Kernels } from "./kernels.js";
import { chunkRawDocs, recodeChunk, type ChunkRef, type ChunkRun, type InUse, type Manifest } from "./store.js";

export class RetrainJob {
  done: Promise<void> = Promise.resolve();
  cancelled = false;
  /** What it reads and writes: writes committing meanwhile sweep around it. */
  readonly inUse: InUse = { manifests: [], chunks: new Set() };
  /** Chunks written since it began whose first documents are copies of older chunks' (see Lineage). */
  private readonly lineage = new Map<string, ChunkRun[]>();
  /** Chunks encoded with the new codec (or being encoded), by the id of the chunk they encode again. */
  private readonly recoded = new Map<string, Promise<ChunkRef>>();
  private codec?: { dir: string; kernels: Kernels; codec: Codec; centroidsT: Float32Array };
  /** The last write's chunks being encoded, outside the write lock (see afterWrite). */
  private pending: Promise<void> = Promise.resolve();
  /** Documents copied from chunks already encoded again rather than encoded (see recodeOne). */
  copiedDocuments = 0;

  /** Throws once the retrain is cancelled. */
  readonly check = (): void => {
    if (this.cancelled) throw new Error("retrain cancelled");
  };

  /** A Lineage (store.ts) for the writes made while it runs. */
  readonly derived = (c: ChunkRef, runs: ChunkRun[]): void => {
    this.lineage.set(c.id, runs);
  };

  /** The new codec is trained: chunks can be encoded with it. */
  trained(dir: string, kernels: Kernels, codec: Codec, centroidsT: Float32Array): void {
    this.codec = { dir, kernels, codec, centroidsT };
  }

  get ready(): boolean {
    return this.codec !== undefined && !this.cancelled;
  }

  /** Tokens of `m`'s chunks nobody has encoded with the new codec, nor is encoding. */
  left(m: Manifest): number {
    return m.chunks.reduce((a, c) => a + (this.recoded.has(c.id) ? 0 : c.tokens), 0);
  }

  /**
   * Encodes with the new codec the chunks of `m` nobody has encoded nor is encoding (those `only`
   * names, if given), one at a time; resolves with their tokens once they are written (not waiting
   * for chunks others are encoding). `m`'s files must stay meanwhile (its current manifest under
   * the write lock, or one in inUse).
   */
  async recodeMissing(m: Manifest, only?: (c: ChunkRef) => boolean): Promise<number> {
    let tokens = 0;
    for (const c of m.chunks) {
      this.check();
      if (this.recoded.has(c.id) || (only && !only(c))) continue;
      const p = this.recodeOne(m, c);
      this.recoded.set(c.id, p);
      // A failed chunk is tried again by the next caller.
      p.catch(() => this.recoded.get(c.id) === p && this.recoded.delete(c.id));
      await p;
      tokens += c.tokens;
    }
    return tokens;
  }

  /**
   * What a write has encoded for it (see afterWrite): the chunks of `m` that `before` does not
   * name (the ones it wrote) and whose copied documents (their Lineage runs) come from chunks
   * already encoded with the new codec — so it encodes only its own new documents (an append's, or
   * none for a delete) and copies the rest. A chunk copying from one not encoded yet is left to the
   * retrain's catch-up (encoding the documents carried over would cost far more than the write's
   * own). Resolves with the tokens of the chunks it wrote.
   */
  recodeWritten(m: Manifest, before: Manifest | undefined): Promise<number> {
    const known = new Set(before?.chunks.map((c) => c.id));
    const copiesEncoded = (c: ChunkRef) => (this.lineage.get(c.id) ?? []).every((r) => this.recoded.has(r.chunk.id));
    return this.recodeMissing(m, (c) => !known.has(c.id) && copiesEncoded(c));
  }

  /**
   * Called by a write under the write lock, after its commit: waits for the previous write's
   * encoding (which ran meanwhile, beside this write's own work), then starts encoding this one's
   * (recodeWritten) and returns — the write lock is not held for it. `m`'s files are kept from
   * sweeps until it is done. One write's encoding at a time: writes arriving faster than they can
   * be encoded wait here, not at the retrain's commit.
   */
  async afterWrite(m: Manifest, before: Manifest | undefined): Promise<void> {
    await this.pending;
    if (!this.ready) return;
    this.inUse.manifests.push(m);
    this.pending = this.recodeWritten(m, before)
      .then(
        () => undefined,
        () => undefined, // the retrain encodes it itself
      )
      .finally(() => {
        const i = this.inUse.manifests.indexOf(m);
        if (i >= 0) this.inUse.manifests.splice(i, 1);
      });
  }

  /** Resolves once no write's encoding runs (the retrain awaits it before it commits, or ends). */
  idle(): Promise<void> {
    return this.pending;
  }

  /** `m`'s chunks encoded with the new codec (after recodeMissing(m): waits for any still being encoded). */
  recodedChunks(m: Manifest): Promise<ChunkRef[]> {
    return Promise.all(m.chunks.map((c) => this.recoded.get(c.id) ?? Promise.reject(new Error(`chunk ${c.id} was not encoded again`))));
  }

  /** Chunk `c`: the runs it copies from chunks already encoded again are copied from those, the rest is encoded from its originals. */
  private async recodeOne(m: Manifest, c: ChunkRef): Promise<ChunkRef> {
    const { dir, kernels, codec, centroidsT } = this.codec!;
    const lead: ChunkRun[] = [];
    for (const run of this.lineage.get(c.id) ?? []) {
      const source = this.recoded.get(run.chunk.id);
      if (!source) break;
      try {
        lead.push({ chunk: await source, from: run.from, to: run.to });
      } catch {
        break;
      }
    }
    const docs = chunkRawDocs(dir, m, c);
    try {
      this.copiedDocuments += lead.reduce((a, r) => a + r.to - r.from, 0);
      return await recodeChunk(dir, kernels, codec, centroidsT, docs, 0, c, { check: this.check, reserve: (id) => this.inUse.chunks.add(id), lead });
    } finally {
      docs.close();
    }
  }
}
