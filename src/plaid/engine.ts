/**
 * The PLAID implementation of IndexEngine (types.ts): a folder of indices, each declared with a
 * config, built by its first update, then appended to, deleted from, searched (semantic, filtered,
 * keyword, hybrid) and queried for metadata. The HTTP server talks to it through a worker thread
 * (worker.ts, client.ts); another engine could implement the same interface.
 */
import fs from "node:fs";
import path from "node:path";
import { writeJsonAtomic } from "../util/fs.js";
import { FilterError } from "./filter.js";
import { fuseRelative, fuseRrf } from "./fusion.js";
import { Kernels, type KernelGate } from "./kernels.js";
import { indexNames, invalidIndexName } from "./names.js";
import { loadSqlite } from "./sqlite.js";
import { MetadataDb, MetadataError, type FtsTokenizer } from "./metadata.js";
import { append, build, joinDocs, memoryDocs, numDocs, numTokens, pickDocs, remove, search, type DocSource, type Documents, type Hits, type PlaidSnapshot } from "./plaid.js";
import { hasRaw, loadSnapshot, rawDocs, readBuffer, readManifest, sweep, writeSnapshot, type UpdateBuffer, type Manifest, type Reuse } from "./store.js";
import { DEFAULT_START_FROM_SCRATCH, IndexError, type MetadataRow, type IndexConfig, type IndexEngine, type IndexInfo, type IndexSummary, type Progress, type QueryResult, type SearchRequest } from "./types.js";

export { IndexError };

/** Appends smaller than this (with the documents already buffered) wait in the buffer before centroid expansion (NextPlaid's buffer_size). */
const BUFFER_SIZE = 100;

/**
 * An index past start_from_scratch is retrained (codec trained again on all its documents, every
 * chunk re-encoded) when its embeddings reach this multiple of those it was trained on: centroids
 * trained on the first documents only miss what later ones bring (issue #20). Geometric, so all
 * retrains together cost about GROWTH / (GROWTH − 1) bulk builds of the final index (3 at 1.5).
 * 1.5 keeps recall@10 within 0.01 of a bulk build in BENCHMARKS.md; 2 left up to half the index
 * on centroids trained without it, 0.02 below. PYLATE_INDEX_RETRAIN_GROWTH overrides it (0: never
 * retrain, NextPlaid's behaviour).
 */
export const DEFAULT_RETRAIN_GROWTH = 1.5;

function retrainGrowth(option: number | undefined): number {
  const env = process.env["PYLATE_INDEX_RETRAIN_GROWTH"];
  const v = option ?? (env === undefined || env === "" ? NaN : Number(env));
  return Number.isFinite(v) && (v === 0 || v > 1) ? v : DEFAULT_RETRAIN_GROWTH;
}

export interface EngineOptions {
  /** See retrainGrowth (default: PYLATE_INDEX_RETRAIN_GROWTH, else DEFAULT_RETRAIN_GROWTH). */
  retrainGrowth?: number;
}

interface OpenIndex {
  name: string;
  dir: string;
  config: IndexConfig;
  db?: MetadataDb;
  manifest?: Manifest;
  snap?: PlaidSnapshot;
  /** Serialises writers. */
  lock: Promise<unknown>;
}

export class PlaidEngine implements IndexEngine {
  private readonly open = new Map<string, OpenIndex>();

  private readonly growth: number;

  private constructor(
    readonly root: string,
    private readonly kernels: Kernels,
    options: EngineOptions,
  ) {
    this.growth = retrainGrowth(options.retrainGrowth);
  }

  static async create(root: string, threads?: number, gate?: KernelGate, options: EngineOptions = {}): Promise<PlaidEngine> {
    await loadSqlite();
    fs.mkdirSync(root, { recursive: true });
    return new PlaidEngine(root, await Kernels.create(threads, gate), options);
  }

  private checkName(name: string): void {
    const invalid = invalidIndexName(name);
    if (invalid) throw new IndexError("BAD_REQUEST", invalid);
  }

  /** The index `name` as on disk now (undefined when there is no such folder with a config). */
  private get(name: string): OpenIndex | undefined {
    this.checkName(name);
    const known = this.open.get(name);
    if (known) return known;
    const dir = path.join(this.root, name);
    const configFile = path.join(dir, "config.json");
    if (!fs.existsSync(configFile)) return undefined;
    const stored = JSON.parse(fs.readFileSync(configFile, "utf8")) as Partial<IndexConfig>;
    const ix: OpenIndex = { name, dir, config: withDefaults(stored), lock: Promise.resolve() };
    if (fs.existsSync(path.join(dir, "metadata.db"))) {
      ix.db = new MetadataDb(path.join(dir, "metadata.db"), ftsTokenizer(ix.config.fts_tokenizer));
      ix.manifest = readManifest(ix.db);
      sweep(dir, ix.manifest);
      if (ix.manifest) ix.snap = loadSnapshot(dir, ix.manifest);
    }
    this.open.set(name, ix);
    return ix;
  }

  private built(name: string): OpenIndex & { snap: PlaidSnapshot; manifest: Manifest; db: MetadataDb } {
    const ix = this.get(name);
    if (!ix?.snap || !ix.manifest || !ix.db) throw new IndexError("INDEX_NOT_FOUND", name);
    return ix as OpenIndex & { snap: PlaidSnapshot; manifest: Manifest; db: MetadataDb };
  }

  private withDb(name: string): MetadataDb {
    const ix = this.built(name);
    return ix.db;
  }

  list(): string[] {
    return this.names().filter((n) => this.get(n)?.snap);
  }

  private names(): string[] {
    return indexNames(this.root);
  }

  overview(): IndexInfo[] {
    const out: IndexInfo[] = [];
    for (const name of this.names()) {
      try {
        const s = this.summary(name);
        if (s) out.push(s.info);
      } catch {
        /* an unreadable index is left out, as NextPlaid does */
      }
    }
    return out;
  }

  summary(name: string): IndexSummary | undefined {
    const ix = this.get(name);
    if (!ix) return undefined;
    return ix.snap ? { info: this.info(name), built: true } : { info: emptyInfo(name, ix.config), built: false };
  }

  declare(name: string, config: Partial<IndexConfig>): IndexConfig {
    this.checkName(name);
    if (this.get(name)) throw new IndexError("INDEX_ALREADY_EXISTS", name);
    const dir = path.join(this.root, name);
    fs.mkdirSync(dir, { recursive: true });
    const full = withDefaults(config);
    writeJsonAtomic(path.join(dir, "config.json"), full);
    this.open.delete(name);
    return full;
  }

  config(name: string): IndexConfig | undefined {
    return this.get(name)?.config;
  }

  setMaxDocuments(name: string, max: number | null): IndexConfig {
    const ix = this.get(name);
    if (!ix) throw new IndexError("INDEX_NOT_FOUND", name);
    ix.config = { ...ix.config, max_documents: max };
    writeJsonAtomic(path.join(ix.dir, "config.json"), ix.config);
    return ix.config;
  }

  async drop(name: string): Promise<void> {
    this.checkName(name);
    const ix = this.open.get(name);
    if (ix) {
      await ix.lock.catch(() => undefined);
      ix.db?.close();
      this.open.delete(name);
    }
    fs.rmSync(path.join(this.root, name), { recursive: true, force: true });
  }

  info(name: string): IndexInfo {
    const ix = this.built(name);
    const n = numDocs(ix.snap);
    const t = numTokens(ix.snap);
    const info: IndexInfo = {
      name,
      num_documents: n,
      num_embeddings: t,
      num_partitions: ix.snap.codec.k,
      avg_doclen: n > 0 ? t / n : 0,
      dimension: ix.snap.codec.dim,
      nbits: ix.snap.codec.nbits,
      has_metadata: true,
      metadata_count: ix.db.count(),
    };
    if (ix.config.max_documents !== null) info.max_documents = ix.config.max_documents;
    return info;
  }

  /** Runs `fn` after the index's earlier writes (one writer at a time per index). */
  private exclusive<T>(ix: OpenIndex, fn: () => Promise<T>): Promise<T> {
    const run = ix.lock.then(fn, fn);
    ix.lock = run.catch(() => undefined);
    return run;
  }

  async add(name: string, docs: Documents, dim: number, metadata: unknown[], progress?: Progress): Promise<{ first: number; count: number }> {
    const ix = this.get(name);
    if (!ix) throw new IndexError("INDEX_NOT_DECLARED", `Index '${name}' not declared. Call POST /indices first to declare the index.`);
    if (metadata.length !== docs.doclens.length) throw new IndexError("BAD_REQUEST", `Metadata length (${metadata.length}) must match documents length (${docs.doclens.length})`);
    return this.exclusive(ix, async () => {
      if (ix.snap && ix.snap.codec.dim !== dim) throw new IndexError("DIMENSION_MISMATCH", `Expected dimension ${ix.snap.codec.dim}, got ${dim}`);
      const db = (ix.db ??= new MetadataDb(path.join(ix.dir, "metadata.db"), ftsTokenizer(ix.config.fts_tokenizer)));
      const cfg = ix.config;
      const opts = { nbits: cfg.nbits, seed: cfg.seed ?? 42, progress };
      const before = ix.snap ? numDocs(ix.snap) : 0;
      const added = memoryDocs(docs, dim);
      const prev = ix.manifest;
      // The originals of the documents already in the index, read from disk as a write needs them.
      const stored = ix.snap && before > 0 && hasRaw(prev) ? rawDocs(ix.dir, prev!) : undefined;
      let snap: PlaidSnapshot;
      let manifest: Manifest;
      try {
        let reuse: Reuse;
        let buffer: UpdateBuffer | undefined;
        let raw: DocSource | undefined;
        let trained: number;
        if (!ix.snap || before === 0) {
          snap = await build(this.kernels, added, opts);
          reuse = "none";
          raw = added;
          trained = numTokens(snap);
        } else if (stored && this.retrainDue(cfg, ix.snap, prev!, before, added)) {
          // Small indices are rebuilt at every update (NextPlaid's start_from_scratch); larger ones
          // when they have grown by RETRAIN_GROWTH since the codec was trained: fresh centroids and
          // buckets from every document, as a bulk build of the same documents would have.
          const all = joinDocs(stored, added);
          progress?.("retrain", `training the codec again on ${all.doclens.length} documents`);
          snap = await build(this.kernels, all, opts);
          reuse = { recoded: before };
          raw = all;
          trained = numTokens(snap);
        } else {
          const pending = prev ? readBuffer(ix.dir, prev) : undefined;
          const buffered = pending?.documents ?? 0;
          let unchanged: number;
          let fresh: Documents;
          if (buffered + docs.doclens.length < BUFFER_SIZE) {
            // A small update: indexed now with the current centroids, remembered for a later expansion.
            snap = await append(this.kernels, ix.snap, docs, { ...opts, expand: false });
            buffer = { documents: buffered + docs.doclens.length, raw: pending ? concatF32(pending.raw, docs.data) : docs.data };
            unchanged = before;
            fresh = docs;
          } else {
            // Enough documents: the buffered ones are re-indexed with the new ones, after centroid expansion.
            const base = buffered > 0 ? remove(ix.snap, Int32Array.from({ length: buffered }, (_, i) => before - buffered + i)) : ix.snap;
            fresh = buffered > 0 ? concatDocs({ data: pending!.raw, doclens: ix.snap.doclens.slice(before - buffered) }, docs) : docs;
            snap = await append(this.kernels, base, fresh, opts);
            unchanged = before - buffered;
          }
          reuse = { unchanged };
          raw = stored ? joinDocs(pickDocs(stored, Int32Array.from({ length: unchanged }, (_, i) => i)), memoryDocs(fresh, dim)) : undefined;
          trained = prev?.trainedEmbeddings ?? prev?.numEmbeddings ?? numTokens(snap);
        }
        progress?.("index_write", "writing index chunks");
        manifest = writeSnapshot(ix.dir, snap, { prev, reuse, batchSize: cfg.batch_size, raw, buffer, trainedEmbeddings: trained });
      } finally {
        stored?.close();
      }
      progress?.("metadata_write", "writing metadata database");
      try {
        this.kernels.checkStop();
        db.transaction(() => {
          db.insert(metadata, before);
          db.setState("manifest", JSON.stringify(manifest));
        });
      } catch (e) {
        sweep(ix.dir, ix.manifest);
        if (e instanceof MetadataError) throw new IndexError("BAD_REQUEST", e.message);
        throw e;
      }
      ix.snap = snap;
      ix.manifest = manifest;
      sweep(ix.dir, manifest);
      // Oldest documents go first when the index is over its limit.
      const max = ix.config.max_documents;
      if (max !== null && numDocs(snap) > max) await this.removeIds(ix, Int32Array.from({ length: numDocs(snap) - max }, (_, i) => i));
      this.writeInfo(ix);
      return { first: before, count: docs.doclens.length };
    });
  }

  /** Whether adding `added` to an index of `before` documents retrains its codec (see retrainGrowth). */
  private retrainDue(cfg: IndexConfig, snap: PlaidSnapshot, m: Manifest, before: number, added: DocSource): boolean {
    if (before <= cfg.start_from_scratch) return true;
    const growth = this.growth;
    const trained = m.trainedEmbeddings ?? m.numEmbeddings;
    return growth > 0 && numTokens(snap) + added.offsets[added.doclens.length]! >= growth * trained;
  }

  /** NextPlaid's metadata.json (informational: the manifest in metadata.db is what loads). */
  private writeInfo(ix: OpenIndex): void {
    if (!ix.snap) return;
    const n = numDocs(ix.snap);
    writeJsonAtomic(path.join(ix.dir, "metadata.json"), {
      num_chunks: ix.manifest?.chunks.length ?? 0,
      nbits: ix.snap.codec.nbits,
      num_partitions: ix.snap.codec.k,
      num_embeddings: numTokens(ix.snap),
      avg_doclen: n > 0 ? numTokens(ix.snap) / n : 0,
      num_documents: n,
      embedding_dim: ix.snap.codec.dim,
    });
  }

  private async removeIds(ix: OpenIndex, ids: Int32Array): Promise<number> {
    if (!ix.snap || !ix.db || ids.length === 0) return 0;
    const snap = remove(ix.snap, ids);
    const prev = ix.manifest;
    const stored = hasRaw(prev) ? rawDocs(ix.dir, prev!) : undefined;
    let manifest: Manifest;
    try {
      // The survivors' originals move with them into the rewritten chunks.
      const drop = new Uint8Array(numDocs(ix.snap));
      for (const id of ids) drop[id] = 1;
      const survivors = Int32Array.from(drop.keys()).filter((d) => !drop[d]);
      const raw = stored ? pickDocs(stored, survivors) : undefined;
      manifest = writeSnapshot(ix.dir, snap, { prev, reuse: { deleted: ids }, batchSize: ix.config.batch_size, raw, trainedEmbeddings: prev?.trainedEmbeddings ?? prev?.numEmbeddings ?? numTokens(snap) });
    } finally {
      stored?.close();
    }
    const db = ix.db;
    this.kernels.checkStop();
    db.transaction(() => {
      db.deleteAndRenumber(ids);
      db.setState("manifest", JSON.stringify(manifest));
    });
    ix.snap = snap;
    ix.manifest = manifest;
    sweep(ix.dir, manifest);
    this.writeInfo(ix);
    return ids.length;
  }

  matching(name: string, condition: string, parameters: unknown[]): number[] {
    const db = this.withDb(name);
    try {
      return db.where(condition, parameters);
    } catch (e) {
      if (e instanceof FilterError) throw new IndexError("BAD_REQUEST", `Invalid condition: ${e.message}`);
      throw e;
    }
  }

  async deleteWhere(name: string, condition: string, parameters: unknown[]): Promise<number> {
    const ix = this.built(name);
    return this.exclusive(ix, async () => {
      const ids = this.matching(name, condition, parameters);
      return this.removeIds(ix, Int32Array.from(ids));
    });
  }

  /**
   * Searches one snapshot; the ids it found are joined with their metadata only if no write
   * committed meanwhile (a delete renumbers ids) — otherwise it searches again, on the new state.
   */
  async search(name: string, r: SearchRequest): Promise<QueryResult[]> {
    const keywordOnly = r.queries.length === 0;
    const ix = keywordOnly ? this.get(name) : this.built(name);
    for (let attempt = 0; ; attempt++) {
      const snap = ix?.snap;
      const hits = await this.searchSnapshot(name, ix, snap, r);
      if (ix?.snap !== snap && attempt < 3) continue;
      return hits.map((h, i) => {
        const rows = ix?.db ? new Map(ix.db.getByIds(h.ids).map((row) => [Number(row["_subset_"]), row])) : new Map<number, MetadataRow>();
        return { query_id: i, document_ids: h.ids, scores: h.scores, metadata: h.ids.map((id) => rows.get(id) ?? null) };
      });
    }
  }

  private async searchSnapshot(name: string, ix: OpenIndex | undefined, snap: PlaidSnapshot | undefined, r: SearchRequest): Promise<Hits[]> {
    // The filter's ids and `snap` are read together (no await between): they agree.
    let subset = r.subset;
    if (r.filterCondition !== undefined) {
      if (!ix?.db) throw new IndexError("METADATA_NOT_FOUND", name);
      try {
        subset = ix.db.where(r.filterCondition, r.filterParameters);
      } catch (e) {
        if (e instanceof FilterError) throw new IndexError("BAD_REQUEST", `Invalid filter condition: ${e.message}`);
        throw e;
      }
    }
    const keywordOnly = r.queries.length === 0;
    const hybrid = !keywordOnly && r.textQuery !== undefined && r.textQuery.length > 0;
    const fetchK = hybrid ? r.params.topK * 3 : r.params.topK;
    const subsetIds = subset ? Int32Array.from(subset) : undefined;
    const n = keywordOnly ? r.textQuery!.length : r.queries.length;
    if (!keywordOnly) {
      for (const q of r.queries) if (q.dim !== snap!.codec.dim) throw new IndexError("DIMENSION_MISMATCH", `Expected dimension ${snap!.codec.dim}, got ${q.dim}`);
    }
    const out: Hits[] = [];
    for (let i = 0; i < n; i++) {
      let semantic: Hits | undefined;
      if (!keywordOnly) {
        const q = r.queries[i]!;
        semantic = await search(this.kernels, snap!, q.data, q.data.length / q.dim, { ...r.params, topK: fetchK }, subsetIds);
      }
      let keyword: Hits | undefined;
      const text = r.textQuery?.[i];
      if (text !== undefined && ix?.db) {
        try {
          keyword = ix.db.keyword(text, fetchK, subset);
        } catch {
          keyword = undefined; // FTS5 syntax errors mean "no keyword result", as NextPlaid
        }
      }
      if (semantic && keyword) out.push(r.fusion === "rrf" ? fuseRrf(semantic, keyword, r.alpha, r.params.topK) : fuseRelative(semantic, keyword, r.alpha, r.params.topK));
      else {
        const h = semantic ?? keyword ?? { ids: [], scores: [] };
        out.push({ ids: h.ids.slice(0, r.params.topK), scores: h.scores.slice(0, r.params.topK) });
      }
    }
    return out;
  }

  metadataAll(name: string): MetadataRow[] {
    return this.withDb(name).getWhere(undefined, []);
  }

  metadataCount(name: string): { count: number; has_metadata: boolean } {
    const ix = this.built(name);
    return { count: ix.db.count(), has_metadata: true };
  }

  metadataGet(name: string, ids: number[] | undefined, condition: string | undefined, parameters: unknown[], limit: number | undefined): MetadataRow[] {
    const db = this.withDb(name);
    let rows: MetadataRow[];
    try {
      rows = ids ? db.getByIds(ids) : db.getWhere(condition, parameters, limit);
    } catch (e) {
      if (e instanceof FilterError) throw new IndexError("BAD_REQUEST", `Invalid condition: ${e.message}`);
      throw e;
    }
    return limit !== undefined ? rows.slice(0, limit) : rows;
  }

  metadataUpdate(name: string, condition: string, parameters: unknown[], updates: Record<string, unknown>): number {
    const db = this.withDb(name);
    try {
      return db.update(condition, parameters, updates);
    } catch (e) {
      if (e instanceof FilterError || e instanceof MetadataError) throw new IndexError("BAD_REQUEST", `Update failed: ${e.message}`);
      throw e;
    }
  }

  async close(): Promise<void> {
    for (const ix of this.open.values()) {
      await ix.lock.catch(() => undefined);
      ix.db?.close();
    }
    this.open.clear();
    await this.kernels.release();
  }
}

function ftsTokenizer(t: string): FtsTokenizer {
  return t === "trigram" ? "trigram" : "unicode61";
}

export function withDefaults(c: Partial<IndexConfig>): IndexConfig {
  const envDefault = Number(process.env["INDEX_DEFAULT_START_FROM_SCRATCH"]);
  return {
    nbits: c.nbits ?? 4,
    batch_size: c.batch_size ?? 50_000,
    seed: c.seed ?? null,
    start_from_scratch: c.start_from_scratch ?? (Number.isInteger(envDefault) && envDefault >= 0 ? envDefault : DEFAULT_START_FROM_SCRATCH),
    max_documents: c.max_documents ?? null,
    fts_tokenizer: c.fts_tokenizer ?? "unicode61",
  };
}

function emptyInfo(name: string, config: IndexConfig): IndexInfo {
  const info: IndexInfo = { name, num_documents: 0, num_embeddings: 0, num_partitions: 0, avg_doclen: 0, dimension: 0, nbits: config.nbits, has_metadata: false, metadata_count: null };
  if (config.max_documents !== null) info.max_documents = config.max_documents;
  return info;
}

function concatF32(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function concatDocs(a: Documents, b: Documents): Documents {
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data);
  data.set(b.data, a.data.length);
  const doclens = new Int32Array(a.doclens.length + b.doclens.length);
  doclens.set(a.doclens);
  doclens.set(b.doclens, a.doclens.length);
  return { data, doclens };
}
