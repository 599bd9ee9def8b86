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
import { Kernels, transpose, type KernelGate } from "./kernels.js";
import { indexNames, invalidIndexName } from "./names.js";
import { loadSqlite } from "./sqlite.js";
import { MetadataDb, MetadataError, type FtsTokenizer } from "./metadata.js";
import { expand, joinDocs, memoryDocs, retrainDue, search, train, type DocSource, type Documents, type Hits, type Trained } from "./plaid.js";
import { RetrainJob } from "./retrain.js";
import { numDocs, numTokens, segmentBytes, type PlaidSnapshot, type Segment } from "./snapshot.js";
import {
  appendChunks,
  deleteFromChunks,
  encodedSlices,
  hasRaw,
  loadSnapshot,
  loadSnapshotAsync,
  manifestOf,
  memorySlices,
  rawDocs,
  readBuffer,
  readManifest,
  recodeChunks,
  retiredSegments,
  sweep,
  trainedAt,
  writeCentroids,
  writeDocs,
  type ChunkRef,
  type FreshDocs,
  type Manifest,
  type UpdateBuffer,
} from "./store.js";
import { DEFAULT_START_FROM_SCRATCH, IndexError, type MetadataRow, type IndexConfig, type IndexEngine, type IndexInfo, type IndexSummary, type Progress, type QueryResult, type SearchRequest } from "./types.js";

export { IndexError };

/** Appends smaller than this (with the documents already buffered) wait in the buffer before centroid expansion (NextPlaid's buffer_size). */
const BUFFER_SIZE = 100;

/**
 * An index past start_from_scratch is retrained (codec trained again on all its documents, every
 * chunk re-encoded) when a bulk build of it would train on this multiple of the points its codec
 * was trained on (retrainDue in plaid.ts: while an index is small, every document is in the sample,
 * so this is the index's own growth): centroids trained on the first documents only miss what later
 * ones bring (issue #20). Up to 1 − 1/GROWTH of an index is encoded with centroids not trained on
 * it: on the spread corpus (BENCHMARKS.md, #20) 1.5 left recall@10 0.02 below a bulk build, 1.25
 * within 0.01. Geometric while the sample grows (about GROWTH / (GROWTH − 1) = 5 bulk builds of
 * that size in all); past it, only when K changes or the index grew RESAMPLE_GROWTH×. Also when
 * outlier centroids added by updates have doubled the trained K (EXPANSION_GROWTH) and the index
 * grew GROWTH× since.
 * PYLATE_INDEX_RETRAIN_GROWTH overrides it (0: never retrain, NextPlaid's behaviour).
 */
export const DEFAULT_RETRAIN_GROWTH = 1.25;

function retrainGrowth(option: number | undefined): number {
  const env = process.env["PYLATE_INDEX_RETRAIN_GROWTH"];
  const v = option ?? (env === undefined || env === "" ? NaN : Number(env));
  return Number.isFinite(v) && (v === 0 || v > 1) ? v : DEFAULT_RETRAIN_GROWTH;
}

export interface EngineOptions {
  /** See retrainGrowth (default: PYLATE_INDEX_RETRAIN_GROWTH, else DEFAULT_RETRAIN_GROWTH). */
  retrainGrowth?: number;
  /** Hold residuals in memory instead of reading them from disk per candidate (for comparison; default false). */
  residentResiduals?: boolean;
  /** Decompress past n_full_scores / 4 while a candidate could still reach the top k (default true; false: NextPlaid's rule, for comparison). See search. */
  widenRescoring?: boolean;
  /** Told when an index's background retrain starts (true) and ends (false): its thread must not be stopped as idle meanwhile. */
  onBackground?: (index: string, busy: boolean, error?: string) => void;
  /**
   * Awaited by a background retrain once its codec is trained, before writes can encode with it
   * ("trained"), and once it has encoded the chunks it started from, before it catches up with the
   * writes made meanwhile ("recoded"). Tests hold it there.
   */
  retrainPause?: (stage: "trained" | "recoded") => Promise<void>;
  /** Tokens of chunks written meanwhile that a retrain may leave to encode under the write lock (default RETRAIN_LOCKED_TOKENS; tests). */
  retrainLockedTokens?: number;
  /** Told the tokens a retrain encoded under the write lock, as it commits (tests). */
  onRetrainLocked?: (tokens: number) => void;
  /**
   * Upper bound on K when a codec is trained (default: PYLATE_INDEX_MAX_CENTROIDS, else none —
   * NextPlaid's 2^⌊log2(16·√embeddings)⌋). Encoding costs embeddings × K × dim: a lower K makes
   * building and retraining large indices on a few CPU cores proportionally cheaper, at the price of
   * longer inverted lists (more candidates per probed centroid).
   */
  maxCentroids?: number;
}

/**
 * A retrain catches up with the chunks written while its codec was being trained in rounds outside
 * the write lock (updates go on), until at most this many tokens are left; those are encoded under
 * the lock with the commit (~1 s at K 16 384 on two cores). Writes made once the codec is trained
 * have their own documents encoded with it (keepRetrainCurrent): what the rounds and the commit
 * find is mostly what was written while the codec was being trained.
 */
export const RETRAIN_LOCKED_TOKENS = 1 << 17;
/** Catch-up rounds at most (each encodes what the previous one's duration let in). */
const CATCH_UP_ROUNDS = 4;

interface OpenIndex {
  name: string;
  dir: string;
  config: IndexConfig;
  db?: MetadataDb;
  manifest?: Manifest;
  snap?: PlaidSnapshot;
  /** Serialises writers. */
  lock: Promise<unknown>;
  /** The codec being trained again in the background, if it is. */
  job?: RetrainJob;
  /** Why the last background retrain failed (it is tried again after the next update). */
  jobError?: string;
}

export class PlaidEngine implements IndexEngine {
  private readonly open = new Map<string, OpenIndex>();

  /** close() has begun: no retrain starts. */
  private closing = false;

  private readonly growth: number;

  private readonly resident: boolean;

  private readonly widen: boolean;

  /** Searches running now, and segments replaced while they ran (their files close when none runs). */
  private searching = 0;

  private retired: Segment[] = [];

  private constructor(
    readonly root: string,
    private readonly kernels: Kernels,
    options: EngineOptions,
  ) {
    this.growth = retrainGrowth(options.retrainGrowth);
    this.resident = options.residentResiduals ?? false;
    this.widen = options.widenRescoring ?? true;
    this.onBackground = options.onBackground;
    this.retrainPause = options.retrainPause;
    this.retrainLockedTokens = options.retrainLockedTokens ?? RETRAIN_LOCKED_TOKENS;
    this.onRetrainLocked = options.onRetrainLocked;
    const envMax = Number(process.env["PYLATE_INDEX_MAX_CENTROIDS"]);
    this.maxCentroids = options.maxCentroids ?? (Number.isInteger(envMax) && envMax > 0 ? envMax : undefined);
  }

  private readonly maxCentroids?: number;

  private readonly retrainPause?: (stage: "trained" | "recoded") => Promise<void>;
  private readonly retrainLockedTokens: number;
  private readonly onRetrainLocked?: (tokens: number) => void;

  private readonly onBackground?: (index: string, busy: boolean, error?: string) => void;

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
      try {
        ix.manifest = readManifest(ix.db);
        // The state read may be a commit of a killed process not yet on disk: sync it before
        // removing what it replaced (a power loss must not bring back a state whose files are gone).
        ix.db.durableSync();
        sweep(dir, ix.manifest);
        if (ix.manifest) ix.snap = loadSnapshot(dir, ix.manifest, undefined, { resident: this.resident });
      } catch (e) {
        // Not opened: the next call tries again (and says the same), without a handle left behind.
        ix.db.close();
        throw new Error(`index '${name}' cannot be loaded: ${(e as Error).message}`);
      }
    }
    this.open.set(name, ix);
    // A retrain that was due when the process stopped (killed while it ran, say) resumes now rather
    // than at the next write: an index only searched from now on would keep its older codec forever.
    if (ix.snap) this.maybeRetrain(ix, false, true);
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
      await this.cancelJob(ix);
      await ix.lock.catch(() => undefined);
      ix.db?.close();
      this.retire(ix.snap, undefined);
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

  /** What a loaded index holds in memory (segments: one per chunk file; residuals are read from disk unless resident). */
  memory(name: string): { segments: number; bytes: number; residualBytes: number; embeddings: number } {
    const ix = this.built(name);
    const { segments, codec, numTokens: embeddings } = ix.snap;
    return {
      segments: segments.length,
      bytes: segments.reduce((a, s) => a + segmentBytes(s), 0) + codec.centroids.byteLength * 2,
      residualBytes: segments.reduce((a, s) => a + s.residuals.resident, 0),
      embeddings,
    };
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
      const opts = { nbits: cfg.nbits, seed: cfg.seed ?? 42, maxCentroids: this.maxCentroids, progress };
      const before = ix.snap ? numDocs(ix.snap) : 0;
      const added = memoryDocs(docs, dim);
      const prev = ix.manifest;
      const old = ix.snap;
      // The originals of the documents already in the index, read from disk as a write needs them.
      const stored = old && before > 0 && hasRaw(prev) ? rawDocs(ix.dir, prev!) : undefined;
      let manifest: Manifest;
      let codec: Trained["codec"];
      let centroidsT: Float32Array;
      try {
        if (!old || before === 0 || !prev || (stored && before <= cfg.start_from_scratch)) {
          // Small indices are rebuilt at every update (NextPlaid's start_from_scratch): a codec
          // trained on every document, then every document encoded with it.
          const all = stored ? joinDocs(stored, added) : added;
          const trained = await train(this.kernels, all, opts);
          codec = trained.codec;
          progress?.("index_write", `compressing ${all.offsets[all.doclens.length]} embeddings`);
          centroidsT = transposeOf(trained);
          const recoded = stored ? await recodeChunks(ix.dir, prev!, this.kernels, codec, centroidsT, stored) : [];
          const fresh = await writeDocs(ix.dir, codec, this.encodedFresh(trained, added, true, centroidsT), cfg.batch_size);
          const chunks = [...recoded, ...fresh];
          manifest = await manifestOf(codec, trained.clusterThreshold, await writeCentroids(ix.dir, codec), chunks, { documents: all.doclens.length, embeddings: sumTokens(chunks), partitions: codec.k });
        } else {
          const withRaw = stored !== undefined;
          const pending = readBuffer(ix.dir, prev);
          const buffered = pending?.documents ?? 0;
          let keep: number;
          let fresh: Documents;
          let buffer: UpdateBuffer | undefined;
          let indexTokens = old.numTokens;
          const small = buffered + docs.doclens.length < BUFFER_SIZE;
          if (small) {
            // A small update: indexed now with the current centroids, remembered for a later expansion.
            keep = before;
            fresh = docs;
            buffer = { documents: buffered + docs.doclens.length, raw: pending ? concatF32(pending.raw, docs.data) : docs.data };
          } else {
            // Enough documents: the buffered ones are re-indexed with the new ones, after centroid expansion.
            keep = before - buffered;
            fresh = buffered > 0 ? concatDocs({ data: pending!.raw, doclens: bufferedDoclens(old, buffered) }, docs) : docs;
            indexTokens -= pending ? pending.raw.length / dim : 0;
          }
          const grown = await expand(this.kernels, { codec: old.codec, clusterThreshold: old.clusterThreshold, centroidsT: old.centroidsT }, indexTokens, fresh, { ...opts, expand: !small });
          codec = grown.codec;
          centroidsT = grown.centroidsT;
          progress?.("index_write", "writing index chunks");
          const freshDocs: FreshDocs = {
            doclens: fresh.doclens,
            slices: (from, to) => memorySlices(fresh.doclens, grown.encoded.codes, grown.encoded.packed, fresh.data, dim, from, to),
          };
          const chunks = await appendChunks(ix.dir, prev, keep, freshDocs, cfg.batch_size, withRaw, ix.job?.derived);
          const centroidsId = codec.k === prev.numPartitions ? prev.centroids : await writeCentroids(ix.dir, codec);
          manifest = await manifestOf(codec, grown.clusterThreshold, centroidsId, chunks, trainedAt(prev), buffer, ix.dir);
        }
      } catch (e) {
        this.sweep(ix);
        throw e;
      } finally {
        stored?.close();
      }
      const snap = await loadSnapshotAsync(ix.dir, manifest, old, { resident: this.resident, codec, centroidsT });
      progress?.("metadata_write", "writing metadata database");
      try {
        this.kernels.checkStop();
        db.transaction(() => {
          db.insert(metadata, before);
          db.setState("manifest", JSON.stringify(manifest));
        });
      } catch (e) {
        this.retire(snap, old);
        this.sweep(ix);
        if (e instanceof MetadataError) throw new IndexError("BAD_REQUEST", e.message);
        throw e;
      }
      await this.swap(ix, snap, manifest);
      // Oldest documents go first when the index is over its limit (what that rewrites is encoded for a retrain below, with the append's chunks).
      const max = ix.config.max_documents;
      if (max !== null && numDocs(snap) > max) await this.removeIds(ix, Int32Array.from({ length: numDocs(snap) - max }, (_, i) => i));
      this.writeInfo(ix);
      await this.keepRetrainCurrent(ix, prev, progress);
      this.maybeRetrain(ix);
      return { first: before, count: docs.doclens.length };
    });
  }

  /**
   * While a background retrain whose codec is trained runs, a write (after its commit: searches
   * already see it) has its new documents encoded with that codec too (RetrainJob.afterWrite:
   * outside the write lock, beside the next write) — the work the retrain would otherwise do at
   * its commit, under the lock, while updates wait (seconds at 20 000 documents, see
   * BENCHMARKS.md).
   */
  private async keepRetrainCurrent(ix: OpenIndex, before: Manifest | undefined, progress?: Progress): Promise<void> {
    const job = ix.job;
    const m = ix.manifest;
    if (!job?.ready || !m || !hasRaw(m)) return;
    progress?.("index_write", "encoding for the background retrain");
    await job.afterWrite(m, before);
  }

  /** Documents encoded with a trained codec, as chunk slices. */
  private encodedFresh(trained: Trained, docs: DocSource, withRaw: boolean, centroidsT = transposeOf(trained)): FreshDocs {
    return { doclens: docs.doclens, slices: (from, to) => encodedSlices(this.kernels, trained.codec, centroidsT, docs, from, to, withRaw) };
  }

  /**
   * Makes `snap` (committed as `manifest`) the index's state; the files of replaced segments close
   * once no search reads them, and are removed once the commit is durable (synced: a power loss
   * must not roll the database back to a state whose files are gone).
   */
  private async swap(ix: OpenIndex, snap: PlaidSnapshot, manifest: Manifest): Promise<void> {
    const old = ix.snap;
    ix.snap = snap;
    ix.manifest = manifest;
    this.retire(old, snap);
    try {
      await ix.db!.durable();
    } catch {
      return; // not known durable: the replaced files stay until a later sweep
    }
    // A newer commit meanwhile sweeps for itself once it is durable.
    if (ix.manifest === manifest) this.sweep(ix);
  }

  /** Removes files no manifest names (but those a background retrain reads or writes); the manifest must be durable (see swap). */
  private sweep(ix: OpenIndex): void {
    sweep(ix.dir, ix.manifest, ix.job?.inUse);
  }

  /** Closes the residual files of `before`'s segments that `after` does not hold, now or after the searches running now. */
  private retire(before: PlaidSnapshot | undefined, after: PlaidSnapshot | undefined): void {
    this.retired.push(...retiredSegments(before, after));
    if (this.searching === 0) this.closeRetired();
  }

  private closeRetired(): void {
    for (const s of this.retired.splice(0)) s.residuals.close();
  }

  /** Starts a background retrain when the index has grown by the retrain factor since its codec was trained (see DEFAULT_RETRAIN_GROWTH). */
  private maybeRetrain(ix: OpenIndex, force = false, deferred = false): void {
    const m = ix.manifest;
    if (this.closing || ix.job || !m || !hasRaw(m) || m.numDocuments <= ix.config.start_from_scratch) return;
    if (!force && !retrainDue(trainedAt(m), { documents: m.numDocuments, embeddings: m.numEmbeddings, partitions: m.numPartitions }, m.dim, this.growth, { maxCentroids: this.maxCentroids })) return;
    const job = new RetrainJob();
    ix.job = job;
    this.onBackground?.(ix.name, true);
    // Deferred (an index just opened): the call that opened it goes first.
    const started = deferred ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve();
    job.done = started.then(() => (job.cancelled ? undefined : this.runRetrain(ix, job))).then(
      () => {
        ix.jobError = undefined;
      },
      (e: unknown) => {
        if (!job.cancelled) ix.jobError = (e as Error)?.message ?? String(e);
      },
    ).finally(() => {
      ix.job = undefined;
      this.onBackground?.(ix.name, false, ix.jobError);
      if (!job.cancelled) {
        this.sweep(ix);
        // Grown enough meanwhile for another; after a failure, not before the next write (no retry loop).
        if (!ix.jobError) this.maybeRetrain(ix);
      }
    });
  }

  /**
   * Trains the codec again on every document of the index as it is now, and re-encodes each chunk
   * into new files (the originals stay), while updates, deletes and searches go on with the current
   * codec (writes made once the new codec is trained encode what they write with it too). Then, as
   * one write: whatever chunks written meanwhile are left are encoded with the new codec, and the
   * manifest naming the new files is committed; searches move to it at once. A kill at any point
   * leaves the state before or after (the new files are swept unless a manifest names them).
   */
  private async runRetrain(ix: OpenIndex, job: RetrainJob): Promise<void> {
    try {
      await this.retrainAndCommit(ix, job);
    } finally {
      // Writes' encodings for it end before its files are swept.
      await job.idle();
    }
  }

  private async retrainAndCommit(ix: OpenIndex, job: RetrainJob): Promise<void> {
    const m0 = ix.manifest!;
    job.inUse.manifests = [m0];
    const cfg = ix.config;
    const opts = { nbits: cfg.nbits, seed: cfg.seed ?? 42, maxCentroids: this.maxCentroids, checkCancel: job.check };
    const stored = rawDocs(ix.dir, m0);
    const trained = await train(this.kernels, stored, opts).finally(() => stored.close());
    const centroidsT = transposeOf(trained);
    await this.retrainPause?.("trained");
    job.trained(ix.dir, this.kernels, trained.codec, centroidsT);
    // From here, writes encode what they write with the new codec too (keepRetrainCurrent).
    await job.recodeMissing(m0);
    await this.retrainPause?.("recoded");
    // Chunks written before that (appends, merges, deletes), in rounds while writes go on: each
    // round's manifest is kept from sweeps while its files are read.
    for (let round = 0; round < CATCH_UP_ROUNDS; round++) {
      job.check();
      const m = ix.manifest;
      if (!m || !hasRaw(m) || job.left(m) <= this.retrainLockedTokens) break;
      job.inUse.manifests.push(m);
      await job.recodeMissing(m);
    }
    job.check();
    await this.exclusive(ix, async () => {
      job.check();
      const m1 = ix.manifest;
      const old = ix.snap;
      if (!m1 || !old || !hasRaw(m1)) return;
      // What is left (writes that could not encode theirs), encoded under the lock with the commit.
      await job.idle();
      const locked = await job.recodeMissing(m1);
      const chunks = await job.recodedChunks(m1);
      this.onRetrainLocked?.(locked);
      const manifest = await manifestOf(trained.codec, trained.clusterThreshold, await writeCentroids(ix.dir, trained.codec), chunks, { documents: m0.numDocuments, embeddings: m0.numEmbeddings, partitions: trained.codec.k });
      const snap = await loadSnapshotAsync(ix.dir, manifest, old, { resident: this.resident, codec: trained.codec, centroidsT });
      try {
        job.check();
        this.kernels.checkStop();
        ix.db!.transaction(() => ix.db!.setState("manifest", JSON.stringify(manifest)));
      } catch (e) {
        this.retire(snap, old);
        throw e;
      }
      await this.swap(ix, snap, manifest);
      this.writeInfo(ix);
    });
  }

  private async cancelJob(ix: OpenIndex): Promise<void> {
    const job = ix.job;
    if (!job) return;
    job.cancelled = true;
    await job.done;
  }

  /**
   * Trains the index's codec again on every document it holds now and re-encodes them — the codec a
   * bulk build of these documents would have — as a due retrain does (in the background: searches
   * and updates go on); resolves once it is committed. Small indices (≤ start_from_scratch) are
   * already trained on every document.
   */
  async retrain(name: string): Promise<void> {
    const ix = this.get(name);
    if (!ix) throw new IndexError("INDEX_NOT_FOUND", name);
    await this.settle(name);
    if (ix.manifest && !hasRaw(ix.manifest)) throw new IndexError("BAD_REQUEST", `Index '${name}' keeps no original embeddings to train on (written by an older version): rebuild it from its documents`);
    this.maybeRetrain(ix, true);
    await this.settle(name);
    if (ix.jobError) throw new Error(`Retraining index '${name}' failed: ${ix.jobError}`);
  }

  /** Resolves once no background retrain runs on the index (and none is due). */
  async settle(name: string): Promise<void> {
    const ix = this.get(name);
    while (ix?.job) await ix.job.done;
  }

  /** Whether a background retrain runs on the index now, and why the last one failed. */
  background(name: string): { retraining: boolean; error?: string } {
    const ix = this.get(name);
    return { retraining: ix?.job !== undefined, error: ix?.jobError };
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
    const prev = ix.manifest;
    const old = ix.snap;
    if (!old || !prev || !ix.db || ids.length === 0) return 0;
    let manifest: Manifest;
    try {
      // Chunks holding a deleted document are rewritten with their survivors (originals included).
      const chunks = await deleteFromChunks(ix.dir, prev, ids, hasRaw(prev), ix.job?.derived);
      manifest = { ...prev, chunks, numDocuments: chunks.reduce((a, c) => a + c.documents, 0), numEmbeddings: sumTokens(chunks) };
      if (prev.buffer) {
        // Deleted buffered documents leave the buffer (it holds the trailing documents' originals).
        const firstBuffered = prev.numDocuments - prev.buffer.documents;
        const pending = readBuffer(ix.dir, prev)!;
        const lens = bufferedDoclens(old, prev.buffer.documents);
        const keepRows: Float32Array[] = [];
        let at = 0;
        let documents = 0;
        const gone = new Set(ids);
        lens.forEach((len, i) => {
          if (!gone.has(firstBuffered + i)) {
            keepRows.push(pending.raw.subarray(at * old.codec.dim, (at + len) * old.codec.dim));
            documents++;
          }
          at += len;
        });
        const raw = new Float32Array(keepRows.reduce((a, r) => a + r.length, 0));
        let o = 0;
        for (const r of keepRows) {
          raw.set(r, o);
          o += r.length;
        }
        manifest = await manifestOf(old.codec, prev.clusterThreshold, prev.centroids, chunks, trainedAt(prev), { documents, raw }, ix.dir);
      }
    } catch (e) {
      this.sweep(ix);
      throw e;
    }
    const snap = await loadSnapshotAsync(ix.dir, manifest, old, { resident: this.resident, codec: old.codec, centroidsT: old.centroidsT });
    const db = ix.db;
    try {
      this.kernels.checkStop();
      db.transaction(() => {
        db.deleteAndRenumber(ids);
        db.setState("manifest", JSON.stringify(manifest));
      });
    } catch (e) {
      this.retire(snap, old);
      this.sweep(ix);
      throw e;
    }
    await this.swap(ix, snap, manifest);
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
      const before = ix.manifest;
      const removed = await this.removeIds(ix, Int32Array.from(ids));
      await this.keepRetrainCurrent(ix, before);
      return removed;
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
      let hits: Hits[];
      this.searching++;
      try {
        hits = await this.kernels.foreground(() => this.searchSnapshot(name, ix, snap, r));
      } finally {
        if (--this.searching === 0) this.closeRetired();
      }
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
        semantic = await search(this.kernels, snap!, q.data, q.data.length / q.dim, { ...r.params, topK: fetchK }, subsetIds, { widen: this.widen });
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
    this.closing = true;
    for (const ix of this.open.values()) {
      await this.cancelJob(ix);
      await ix.lock.catch(() => undefined);
      ix.db?.close();
      this.retire(ix.snap, undefined);
    }
    this.open.clear();
    this.closeRetired();
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

function sumTokens(chunks: ChunkRef[]): number {
  return chunks.reduce((a, c) => a + c.tokens, 0);
}

function transposeOf(t: Trained): Float32Array {
  return transpose(t.codec.centroids, t.codec.k, t.codec.dim);
}

/** Lengths of the last `count` documents of `snap` (the buffered ones). */
function bufferedDoclens(snap: PlaidSnapshot, count: number): Int32Array {
  const out = new Int32Array(count);
  let i = count;
  for (let si = snap.segments.length - 1; si >= 0 && i > 0; si--) {
    const lens = snap.segments[si]!.doclens;
    for (let d = lens.length - 1; d >= 0 && i > 0; d--) out[--i] = lens[d]!;
  }
  return out;
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
