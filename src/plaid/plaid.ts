/**
 * The PLAID algorithms (NextPlaid index.rs / update.rs / search.rs): training a codec on documents
 * (k-means centroids, residual buckets), encoding tokens with it, adding centroids for outliers of
 * an update, and searching a snapshot. They read documents through DocSource a slice at a time and
 * return what they computed; files are store.ts's job, the snapshot's layout snapshot.ts's.
 */
import { compressResiduals, decompress, packedBytes, quantileSorted, trainBuckets, type Codec } from "./codec.js";
import { ivfList } from "./ivf.js";
import { ApproxScorer } from "./approx.js";
import { Unpacker } from "./unpack.js";
import { Kernels, transpose, transposeAppended } from "./kernels.js";
import { kmeans, kmeansSampleSize, numCentroids } from "./kmeans.js";
import { Rng } from "./rng.js";
import { makeSegment, memoryResiduals, offsetsOf, segmentOf, snapshotOf, type PlaidSnapshot } from "./snapshot.js";

export { offsetsOf };

export interface Documents {
  /** Token embeddings of all documents, concatenated ([tokens, dim]). */
  data: Float32Array;
  doclens: Int32Array;
}

/**
 * Documents a build reads as it goes: in memory (memoryDocs), or the original embeddings an index
 * keeps on disk (store.ts), joined with new ones (joinDocs). A build never needs them all at once.
 */
export interface DocSource {
  dim: number;
  doclens: Int32Array;
  /** [numDocs + 1] first token of each document. */
  offsets: Int32Array;
  /** The token embeddings of documents [from, to), [tokens, dim] (may be a view: do not modify). */
  read(from: number, to: number): Float32Array;
}

export function memoryDocs(docs: Documents, dim: number): DocSource {
  const offsets = offsetsOf(docs.doclens);
  return { dim, doclens: docs.doclens, offsets, read: (from, to) => docs.data.subarray(offsets[from]! * dim, offsets[to]! * dim) };
}

/** `a`'s documents followed by `b`'s. */
export function joinDocs(a: DocSource, b: DocSource): DocSource {
  const na = a.doclens.length;
  const doclens = new Int32Array(na + b.doclens.length);
  doclens.set(a.doclens);
  doclens.set(b.doclens, na);
  const offsets = offsetsOf(doclens);
  const read = (from: number, to: number): Float32Array => {
    if (to <= na) return a.read(from, to);
    if (from >= na) return b.read(from - na, to - na);
    const left = a.read(from, na);
    const right = b.read(0, to - na);
    const out = new Float32Array(left.length + right.length);
    out.set(left);
    out.set(right, left.length);
    return out;
  };
  return { dim: a.dim, doclens, offsets, read };
}

/** Documents `ids` of `src`, in that order (runs of consecutive ids are read at once). */
export function pickDocs(src: DocSource, ids: Int32Array): DocSource {
  const doclens = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) doclens[i] = src.doclens[ids[i]!]!;
  const offsets = offsetsOf(doclens);
  const read = (from: number, to: number): Float32Array => {
    const out = new Float32Array((offsets[to]! - offsets[from]!) * src.dim);
    let at = 0;
    for (let i = from; i < to; ) {
      let j = i + 1;
      while (j < to && ids[j] === ids[j - 1]! + 1) j++;
      const part = src.read(ids[i]!, ids[j - 1]! + 1);
      out.set(part, at);
      at += part.length;
      i = j;
    }
    return out;
  };
  return { dim: src.dim, doclens, offsets, read };
}

export interface BuildOptions {
  nbits: 2 | 4;
  seed: number;
  kmeansIterations?: number;
  maxPointsPerCentroid?: number;
  /** Upper bound on K (default: NextPlaid's formula alone, see kmeans.ts). */
  maxCentroids?: number;
  /** Upper bound on the points k-means trains on (memory: 4·dim bytes each; default MAX_TRAIN_BYTES of them). */
  maxTrainPoints?: number;
  progress?: (stage: string, message: string) => Promise<void> | void;
  /** Called between k-means iterations: throws to abandon the work (a background retrain being cancelled). */
  checkCancel?: () => void;
}

/** Tokens read, encoded or written as one slice (1 MiB of float16 originals at dim 128: converting them is a few ms). */
export const SLICE_TOKENS = 4_096;
/**
 * Tokens compressed between two chances for other work (searches) on this thread: ~5–10 ms of
 * residual bucketing (4 096 was the largest share of the stalls a profile of ingestion showed,
 * bench/stalls.ts).
 */
const COMPRESS_TOKENS = 1_024;
/** k-means trains on at most this many bytes of points by default: 2^20 points at dim 128 (NextPlaid's whole sample up to ~1 M embeddings). */
export const MAX_TRAIN_BYTES = 2 ** 29;
export const yieldToEvents = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Gap (in tokens) between two documents of a chunk below which search reads both at once. */
const GAP_TOKENS = 64;

/** This thread's approximate-score kernel (created at the first search). */
let scorer: ApproxScorer | undefined;

/** This thread's decompression kernel (created at the first search). */
let unpacker: Unpacker | undefined;

/** Residuals read from disk land here (read and decompressed with no await in between: one buffer serves every search). */
let readBuffer = new Uint8Array(1 << 20);

/**
 * Exact scoring's blocks (see planBlocks): at most `rows` token rows once padded (8 MiB of
 * decompressed vectors at dim 128) and `docs` documents (the [docs, nq] maxima stay small),
 * whatever n_full_scores asks; a document longer than `rows` is a block of its own.
 */
export const exactBlock: Readonly<BlockLimits> = Object.freeze({ rows: 16_384, docs: 512 });

/** Limits of one exact-scoring block: padded token rows, documents. */
export interface BlockLimits {
  rows: number;
  docs: number;
}

/**
 * Blocks for exact scoring of documents of lengths `lens`: `order` sorts them by length (then
 * position), each block is order[from, to), padded to `width` (its longest, at least 1), so blocks
 * hold similar lengths and padding stays small.
 */
export function planBlocks(lens: Int32Array, limits: Readonly<BlockLimits> = exactBlock): { order: Int32Array; blocks: { from: number; to: number; width: number }[] } {
  const order = Int32Array.from(lens.keys()).sort((a, b) => lens[a]! - lens[b]! || a - b);
  const blocks: { from: number; to: number; width: number }[] = [];
  for (let from = 0; from < order.length; ) {
    let to = from + 1;
    while (to < order.length && to - from < limits.docs && (to + 1 - from) * lens[order[to]!]! <= limits.rows) to++;
    blocks.push({ from, to, width: Math.max(1, lens[order[to - 1]!]!) });
    from = to;
  }
  return { order, blocks };
}

/**
 * Reusable buffers for exact scoring (see search): one per search in flight on this thread, each
 * sized for a full block, so searches after the first allocate nothing large (fresh pages cost
 * ~15 µs each in faults on this kind of VM: 100+ ms for a 27 MB buffer).
 */
const scratch: Float32Array[] = [];
function takeScratch(n: number): Float32Array {
  let pick = -1;
  for (let i = 0; i < scratch.length; i++) if (scratch[i]!.length >= n && (pick < 0 || scratch[i]!.length < scratch[pick]!.length)) pick = i;
  return pick >= 0 ? scratch.splice(pick, 1)[0]! : new Float32Array(n);
}
function giveScratch(b: Float32Array): void {
  scratch.push(b);
  // Keep the four largest.
  if (scratch.length > 4) scratch.splice(scratch.reduce((m, x, i) => (x.length < scratch[m]!.length ? i : m), 0), 1);
}

/** Shuffles [0, n) with `rng` (Fisher–Yates). */
function shuffled(n: number, rng: Rng): Int32Array {
  const a = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/**
 * The k-means training points: the tokens of documents `ids` (in that order), or — when they are
 * more than `cap` — `cap` of them drawn at random, read document by document (never the whole
 * sample at once).
 */
async function trainingPoints(docs: DocSource, ids: Int32Array, cap: number, seed: number): Promise<{ data: Float32Array; rows: number }> {
  const { dim } = docs;
  let tokens = 0;
  for (const id of ids) tokens += docs.doclens[id]!;
  const take = Math.min(tokens, cap);
  const data = new Float32Array(take * dim);
  if (take === tokens) {
    let at = 0;
    let lastYield = 0;
    for (let i = 0; i < ids.length; ) {
      // Runs of consecutive ids are read at once (all of them for a sample of every document).
      let j = i + 1;
      while (j < ids.length && ids[j] === ids[j - 1]! + 1 && docs.offsets[ids[j]! + 1]! - docs.offsets[ids[i]!]! <= COMPRESS_TOKENS) j++;
      const part = docs.read(ids[i]!, ids[j - 1]! + 1);
      data.set(part, at);
      at += part.length;
      i = j;
      if (at - lastYield >= COMPRESS_TOKENS * dim) {
        lastYield = at;
        await yieldToEvents();
      }
    }
    return { data, rows: take };
  }
  const picked = new Rng(seed ^ 0x5eed).sample(tokens, take).sort();
  let p = 0;
  let before = 0;
  for (let i = 0; i < ids.length && p < take; i++) {
    const len = docs.doclens[ids[i]!]!;
    if (picked[p]! < before + len) {
      const doc = docs.read(ids[i]!, ids[i]! + 1);
      for (; p < take && picked[p]! < before + len; p++) data.set(doc.subarray((picked[p]! - before) * dim, (picked[p]! - before + 1) * dim), p * dim);
    }
    before += len;
    if ((i & 255) === 255) await yieldToEvents();
  }
  return { data, rows: take };
}

/**
 * What train() draws for an index of `documents` documents holding `embeddings` embeddings
 * (estimated from the counts, documents of average length): K, and the number of points k-means
 * trains on. Both stop growing with the index: the points at MAX_TRAIN_BYTES (or K·256), K at
 * `maxCentroids` or slowly (K doubles when the index grows 4×).
 */
export function trainingSize(documents: number, embeddings: number, dim: number, opts: Pick<BuildOptions, "maxCentroids" | "maxPointsPerCentroid" | "maxTrainPoints"> = {}): { k: number; points: number } {
  if (documents <= 0 || embeddings <= 0) return { k: 0, points: 0 };
  const sampleTokens = Math.round((embeddings / documents) * kmeansSampleSize(documents));
  const k = Math.max(1, Math.min(numCentroids(embeddings), sampleTokens, opts.maxCentroids ?? Infinity));
  const points = Math.min(sampleTokens, k * (opts.maxPointsPerCentroid ?? 256), opts.maxTrainPoints ?? Math.floor(MAX_TRAIN_BYTES / (4 * dim)));
  return { k, points };
}

/**
 * Past the size where k-means' sample stops growing, a codec is still trained again each time the
 * index grows this many times: documents that did not arrive in random order (a new collection, a
 * new language) are then in the sample (outlier centroids cover them in between).
 */
export const RESAMPLE_GROWTH = 4;

/**
 * A codec whose outlier centroids (added by updates: NextPlaid's threshold is the 75th percentile
 * of residual norms, so about a quarter of every update's tokens are outliers) have brought K to
 * this multiple of its trained K is trained again — once the index has also grown by the retrain
 * factor since: encoding and search cost grow with K, but updates add outlier centroids at a rate
 * that does not depend on the index's size (~50–120 per 300 documents at K 16 384), so K alone
 * would retrain a 10 M-embedding index every ~40 000 documents (work quadratic in the corpus);
 * with growth too, the retrains' work stays a geometric series.
 */
export const EXPANSION_GROWTH = 2;

/** An index's size: documents, embeddings, and (when known) its K. */
export interface IndexSize {
  documents: number;
  embeddings: number;
  partitions?: number;
}

/**
 * Whether an index trained at `then` and now at `now` should train its codec again: a bulk build of
 * it would train on `growth`× more points, or pick another K, or it grew RESAMPLE_GROWTH×, or
 * outlier centroids doubled its K (EXPANSION_GROWTH) and it grew `growth`×
 * (`growth` ≤ 0: never). For a small index (every document in the sample) this is growth of the
 * index itself; past MAX_TRAIN_BYTES of points, a retrain would draw a sample like the last one's
 * and only K changes (every 4×) or RESAMPLE_GROWTH call for one — so retrains cost about 1.33 bulk
 * builds at scale instead of growth / (growth − 1).
 */
export function retrainDue(then: IndexSize, now: IndexSize, dim: number, growth: number, opts: Pick<BuildOptions, "maxCentroids"> = {}): boolean {
  if (growth <= 0 || now.embeddings <= then.embeddings) return false;
  if (then.partitions && now.partitions && now.partitions >= EXPANSION_GROWTH * then.partitions && now.embeddings >= growth * then.embeddings) return true;
  const a = trainingSize(then.documents, then.embeddings, dim, opts);
  const b = trainingSize(now.documents, now.embeddings, dim, opts);
  return b.k !== a.k || b.points >= growth * a.points || now.embeddings >= Math.max(growth, RESAMPLE_GROWTH) * then.embeddings;
}

export interface Trained {
  codec: Codec;
  clusterThreshold: number;
}

/**
 * Trains a codec on documents (NextPlaid create_index_files): centroids by k-means over a seeded
 * sample of documents, residual buckets from held-out tokens. Reads `docs` a document or a slice at
 * a time: memory is bounded by the training sample, not the corpus.
 */
export async function train(kernels: Kernels, docs: DocSource, opts: BuildOptions): Promise<Trained> {
  const { dim, offsets } = docs;
  const n = docs.doclens.length;
  const total = offsets[n]!;
  if (n === 0 || total === 0) throw new Error("No embeddings to index");
  // 1. Centroids from a seeded sample of documents.
  const order = shuffled(n, new Rng(opts.seed));
  // Every document (small indices): in id order, as NextPlaid reads them.
  const sampleDocs = kmeansSampleSize(n) >= n ? Int32Array.from({ length: n }, (_, i) => i) : order.subarray(0, kmeansSampleSize(n));
  let sampleTokens = 0;
  for (const id of sampleDocs) sampleTokens += docs.doclens[id]!;
  const k = Math.min(numCentroids((sampleTokens / sampleDocs.length) * n), sampleTokens, opts.maxCentroids ?? Infinity);
  const perCentroid = opts.maxPointsPerCentroid ?? 256;
  const sample = await trainingPoints(docs, sampleDocs, Math.min(k * perCentroid, opts.maxTrainPoints ?? Math.floor(MAX_TRAIN_BYTES / (4 * dim))), opts.seed);
  await opts.progress?.("kmeans", `computing ${k} centroids from ${sample.rows} embeddings`);
  const centroids = await kmeans(kernels, sample.data, sample.rows, dim, {
    k,
    iterations: opts.kmeansIterations ?? 4,
    maxPointsPerCentroid: perCentroid,
    seed: opts.seed,
    onIteration: opts.checkCancel,
  });
  // 2. Codec: buckets from held-out residuals (the first tokens of the last sampled documents).
  const codecOrder = shuffled(n, new Rng(opts.seed));
  const codecDocs = codecOrder.subarray(0, Math.max(1, Math.min(Math.floor(16 * Math.sqrt(120 * n)), n)));
  const heldoutSize = Math.floor(Math.min(0.05 * total, 50_000));
  const heldout = new Float32Array(heldoutSize * dim);
  let got = 0;
  for (let i = codecDocs.length - 1; i >= 0 && got < heldoutSize; i--) {
    const id = codecDocs[i]!;
    const take = Math.min(heldoutSize - got, docs.doclens[id]!);
    heldout.set(docs.read(id, id + 1).subarray(0, take * dim), got * dim);
    got += take;
    if ((i & 255) === 0) await yieldToEvents();
  }
  const centroidsT = transpose(centroids, k, dim);
  const held = await kernels.nearest(heldout, got, dim, centroidsT, k);
  const residuals = new Float32Array(got * dim);
  for (let r = 0; r < got; r++) {
    const c = held.codes[r]! * dim;
    for (let j = 0; j < dim; j++) residuals[r * dim + j] = heldout[r * dim + j]! - centroids[c + j]!;
  }
  const buckets = await trainBuckets(residuals, got, dim, opts.nbits, yieldToEvents);
  return {
    codec: { dim, nbits: opts.nbits, k, centroids, cutoffs: buckets.cutoffs, weights: buckets.weights, avgResidual: buckets.avgResidual },
    clusterThreshold: buckets.clusterThreshold,
  };
}

export interface Encoded {
  /** Nearest centroid per token. */
  codes: Int32Array;
  /** Its dot product with the token. */
  scores: Float32Array;
  /** Packed residuals, packedBytes(dim, nbits) per token. */
  packed: Uint8Array;
  /** Residual norm per token. */
  norms: Float32Array;
}

/**
 * Encodes `rows` tokens with `codec` (nearest centroid, packed residual), a slice at a time,
 * letting queued work (searches) run in between. `centroidsT` is the codec's centroids transposed.
 */
export async function encodeTokens(kernels: Kernels, codec: Codec, centroidsT: Float32Array, data: Float32Array, rows: number): Promise<Encoded> {
  const bytes = packedBytes(codec.dim, codec.nbits);
  const codes = new Int32Array(rows);
  const scores = new Float32Array(rows);
  const packed = new Uint8Array(rows * bytes);
  const norms = new Float32Array(rows);
  for (let start = 0; start < rows; start += COMPRESS_TOKENS) {
    const end = Math.min(rows, start + COMPRESS_TOKENS);
    const part = data.subarray(start * codec.dim, end * codec.dim);
    const near = await kernels.nearest(part, end - start, codec.dim, centroidsT, codec.k);
    codes.set(near.codes, start);
    scores.set(near.scores, start);
    const c = compressResiduals(codec, part, near.codes, end - start);
    packed.set(c.packed, start * bytes);
    norms.set(c.norms, start);
    await yieldToEvents();
  }
  return { codes, scores, packed, norms };
}

/**
 * `encoded` (tokens `data` encoded with the first `kOld` centroids of `codec`) as encoding them with
 * all of `codec`'s centroids would give: each token is compared with the added ones only
 * (`addedT`, centroids kOld.. transposed) and moves to one when it scores higher (ties stay, as
 * an argmax over all would keep the first). The GEMM work is the added centroids', not K's.
 */
export async function reassignToAdded(kernels: Kernels, codec: Codec, kOld: number, addedT: Float32Array, data: Float32Array, encoded: Encoded): Promise<Encoded> {
  const { dim } = codec;
  const rows = encoded.codes.length;
  const bytes = packedBytes(dim, codec.nbits);
  const codes = encoded.codes.slice();
  const scores = encoded.scores.slice();
  const packed = encoded.packed.slice();
  const norms = encoded.norms.slice();
  for (let start = 0; start < rows; start += COMPRESS_TOKENS) {
    const end = Math.min(rows, start + COMPRESS_TOKENS);
    const part = data.subarray(start * dim, end * dim);
    const near = await kernels.nearest(part, end - start, dim, addedT, codec.k - kOld);
    let moved = false;
    for (let i = 0; i < end - start; i++) {
      if (near.scores[i]! > scores[start + i]!) {
        codes[start + i] = kOld + near.codes[i]!;
        scores[start + i] = near.scores[i]!;
        moved = true;
      }
    }
    if (moved) {
      const c = compressResiduals(codec, part, codes.subarray(start, end), end - start);
      packed.set(c.packed, start * bytes);
      norms.set(c.norms, start);
    }
    await yieldToEvents();
  }
  return { codes, scores, packed, norms };
}

/** Documents [from, to) (given their token offsets) in slices of about SLICE_TOKENS tokens: [from, to) document ranges. */
export function* slices(docs: { offsets: Int32Array }, from: number, to: number): Generator<[number, number]> {
  for (let a = from; a < to; ) {
    let b = a + 1;
    while (b < to && docs.offsets[b + 1]! - docs.offsets[a]! <= SLICE_TOKENS) b++;
    yield [a, b];
    a = b;
  }
}

/** A codec trained on `docs` and every document encoded into one in-memory segment (tests; an engine writes chunks instead). */
export async function buildInMemory(kernels: Kernels, docs: DocSource, opts: BuildOptions): Promise<PlaidSnapshot> {
  const trained = await train(kernels, docs, opts);
  const { codec } = trained;
  const n = docs.doclens.length;
  const e = await encodeTokens(kernels, codec, transpose(codec.centroids, codec.k, codec.dim), docs.read(0, n), docs.offsets[n]!);
  return snapshotOf(codec, trained.clusterThreshold, [makeSegment("memory", docs.doclens.slice(), e.codes, memoryResiduals(e.packed, packedBytes(codec.dim, codec.nbits)))]);
}

export interface Expanded extends Trained {
  /** The new documents' tokens, encoded with the (possibly grown) codec. */
  encoded: Encoded;
  /** The codec's centroids transposed. */
  centroidsT: Float32Array;
}

/**
 * Encodes an update's documents with an index's codec (NextPlaid update_index), first adding
 * centroids for the new tokens that lie farther than the cluster threshold from every centroid
 * (update_centroids). `indexTokens`: embeddings already in the index (the threshold is their
 * token-weighted mean with the update's).
 */
export async function expand(kernels: Kernels, base: Trained & { centroidsT: Float32Array }, indexTokens: number, docs: Documents, opts: BuildOptions & { expand?: boolean }): Promise<Expanded> {
  let codec = base.codec;
  let centroidsT = base.centroidsT;
  const { dim } = codec;
  const tokens = docs.data.length / dim;
  let encoded = await encodeTokens(kernels, codec, base.centroidsT, docs.data, tokens);
  // Outliers get new centroids: k-means over them, ⌈outliers/256⌉·4 centroids.
  const outliers: number[] = [];
  for (let t = 0; t < tokens; t++) if (encoded.norms[t]! > base.clusterThreshold) outliers.push(t);
  if (outliers.length > 0 && opts.expand !== false) {
    await opts.progress?.("centroid_expansion", `${outliers.length} embeddings outside the existing centroids`);
    const kNew = Math.min(Math.max(1, Math.ceil(outliers.length / (opts.maxPointsPerCentroid ?? 256))) * 4, outliers.length);
    const points = new Float32Array(outliers.length * dim);
    outliers.forEach((t, i) => points.set(docs.data.subarray(t * dim, (t + 1) * dim), i * dim));
    await opts.progress?.("kmeans", `clustering ${outliers.length} outlier embeddings into ${kNew} centroids`);
    const added = await kmeans(kernels, points, outliers.length, dim, {
      k: kNew,
      iterations: opts.kmeansIterations ?? 4,
      maxPointsPerCentroid: opts.maxPointsPerCentroid ?? 256,
      seed: opts.seed,
    });
    const centroids = new Float32Array((codec.k + kNew) * dim);
    centroids.set(codec.centroids);
    centroids.set(added, codec.k * dim);
    const kOld = codec.k;
    centroidsT = transposeAppended(centroidsT, kOld, dim, added, kNew);
    codec = { ...codec, k: kOld + kNew, centroids };
    encoded = await reassignToAdded(kernels, codec, kOld, transpose(added, kNew, dim), docs.data, encoded);
  }
  // The threshold follows the new residuals (weighted by token counts); buffered small updates
  // leave it alone, as NextPlaid's update_index without update_threshold.
  const threshold =
    opts.expand === false
      ? base.clusterThreshold
      : (base.clusterThreshold * indexTokens + quantileSorted(encoded.norms.slice().sort(), 0.75) * tokens) / (indexTokens + tokens);
  return { codec, clusterThreshold: threshold, encoded, centroidsT };
}

export interface SearchParams {
  topK: number;
  nIvfProbe: number;
  nFullScores: number;
  /** Centroids whose best score over the query tokens is below this are not probed (absent: off). */
  centroidScoreThreshold?: number;
}

export interface Hits {
  ids: number[];
  scores: number[];
  /** Documents decompressed and scored exactly to find them (search only; benches and tests read it). */
  scored?: number;
}

/**
 * For each query token, the `p` centroids with the largest scores among `allowed` (all when
 * absent), added to `out`. `st` is [k, nq] (centroid × query token): one pass over it in memory
 * order, each token's best kept sorted (ties: the lower centroid, as a scan of its row would).
 */
export function topCentroids(st: Float32Array, nq: number, k: number, p: number, allowed: Uint8Array | undefined, out: Set<number>): void {
  if (p <= 0) return;
  const bestIdx = new Int32Array(nq * p).fill(-1);
  const bestVal = new Float32Array(nq * p).fill(-Infinity);
  const filled = new Int32Array(nq);
  // The p-th best so far per token (−∞ until p are held): most scores stop at this comparison.
  const floor = new Float32Array(nq).fill(-Infinity);
  for (let c = 0; c < k; c++) {
    if (allowed && !allowed[c]) continue;
    const row = c * nq;
    for (let q = 0; q < nq; q++) {
      const v = st[row + q]!;
      const full = filled[q] === p;
      if (full && !(v > floor[q]!)) continue;
      const base = q * p;
      let i = full ? p - 1 : filled[q]!++;
      while (i > 0 && bestVal[base + i - 1]! < v) {
        bestVal[base + i] = bestVal[base + i - 1]!;
        bestIdx[base + i] = bestIdx[base + i - 1]!;
        i--;
      }
      bestVal[base + i] = v;
      bestIdx[base + i] = c;
      if (filled[q] === p) floor[q] = bestVal[base + p - 1]!;
    }
  }
  for (let q = 0; q < nq; q++) for (let i = 0; i < filled[q]!; i++) out.add(bestIdx[q * p + i]!);
}

/**
 * Indices of the `m` largest of `values`, ordered by value (descending), then index: what sorting
 * every index would give first, in O(n) (a selection finds the m-th value) + O(m log m).
 */
export function bestOf(values: Float32Array | Float64Array, m: number): Int32Array {
  const n = values.length;
  m = Math.min(m, n);
  if (m <= 0) return new Int32Array(0);
  // The m-th largest value (quickselect on a copy, descending).
  const a = values.slice();
  let lo = 0;
  let hi = n - 1;
  const want = m - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else break;
  }
  const threshold = a[want]!;
  // Every index above it, then those equal to it in index order until m.
  const out = new Int32Array(m);
  let got = 0;
  for (let i = 0; i < n; i++) if (values[i]! > threshold) out[got++] = i;
  for (let i = 0; i < n && got < m; i++) if (values[i] === threshold) out[got++] = i;
  return out.sort((x, y) => values[y]! - values[x]! || x - y);
}

/** How search goes past NextPlaid's fixed quarter of n_full_scores (see search). */
export interface RescoreOptions {
  /** Exact scoring's block limits (default exactBlock; tests make them tiny). */
  blocks?: Readonly<BlockLimits>;
  /**
   * Decompress further candidates while one could still reach the top k (default true); false
   * keeps NextPlaid's rule exactly: the best max(n_full_scores / 4, top_k) by approximate score.
   */
  widen?: boolean;
}

/**
 * PLAID search for one query ([nq, dim], used as given): centroid scores → probed cells →
 * candidates from each segment's inverted lists (∩ subset) → approximate scores from centroid
 * scores → the n_full_scores best kept → the best of those decompressed (their residuals read from
 * disk) and scored exactly (MaxSim). Scores are raw MaxSim sums.
 *
 * NextPlaid decompresses the best max(n_full_scores / 4, top_k) by approximate score. Where token
 * vectors spread far from their centroids, the approximate score misranks: on the spread corpus
 * at 50 000 documents the true top 10 sat up to ~2 500th by approximate score, and recall@10 was
 * 0.81 at 8 / 4 096 against 0.92 exhaustive (BENCHMARKS.md, #20). So search widens: after each
 * round it takes the largest gain exact − approximate seen so far as an estimate of what an
 * unseen candidate can gain, and decompresses the next candidates (a round the size of the first,
 * from the n_full_scores kept) whose approximate score plus that gain reaches the k-th exact score
 * so far; it stops when none does. Where approximate scores rank well (a tight corpus) nothing
 * qualifies and the cost is NextPlaid's; the answers are the exact top k of a superset of
 * NextPlaid's decompressed documents, never worse by exact score. On that corpus: 0.90 at 8 / 4 096
 * (~1 760 documents decompressed on average instead of 1 024).
 */
export async function search(kernels: Kernels, snap: PlaidSnapshot, query: Float32Array, nq: number, params: SearchParams, subset?: Int32Array, opts: RescoreOptions = {}): Promise<Hits> {
  const { codec } = snap;
  const { dim, k } = codec;
  const n = snap.numDocs;
  if (n === 0 || nq === 0 || params.topK <= 0) return { ids: [], scores: [] };
  // Centroid × query-token scores, [k, nq]: the layout the approximate scores read (a row per code).
  const queryT = transpose(query, nq, dim);
  const stBuffer = takeScratch(k * nq);
  let found: { candidates: Int32Array; approx: Float32Array } | undefined;
  try {
    const st = await kernels.matmul(codec.centroids, k, dim, queryT, nq, stBuffer);
    found = approximate(snap, st, nq, params, subset);
  } finally {
    giveScratch(stBuffer);
  }
  return found ? rescore(kernels, snap, queryT, nq, found.candidates, found.approx, params, opts) : { ids: [], scores: [] };
}

/**
 * Stages 1–2 of search, from the centroid scores `st` ([k, nq]): the probed cells' documents
 * (∩ subset), and their approximate scores (undefined when there is none).
 */
function approximate(snap: PlaidSnapshot, st: Float32Array, nq: number, params: SearchParams, subset: Int32Array | undefined): { candidates: Int32Array; approx: Float32Array } | undefined {
  const { segments, firstDoc } = snap;
  const { k } = snap.codec;
  const n = snap.numDocs;

  // Subsets restrict the probe to the centroids their documents use, probing proportionally more.
  let allowed: Uint8Array | undefined;
  let inSubset: Uint8Array | undefined;
  let probe = Math.min(params.nIvfProbe, k);
  if (subset) {
    inSubset = new Uint8Array(n);
    allowed = new Uint8Array(k);
    let eligible = 0;
    let members = 0;
    for (const id of subset) {
      if (id < 0 || id >= n || inSubset[id]) continue;
      inSubset[id] = 1;
      members++;
      const si = segmentOf(snap, id);
      const { offsets, codes } = segments[si]!.docCodes;
      const local = id - firstDoc[si]!;
      for (let u = offsets[local]!; u < offsets[local + 1]!; u++) {
        const c = codes[u]!;
        if (!allowed[c]) {
          allowed[c] = 1;
          eligible++;
        }
      }
    }
    if (members === 0) return undefined;
    probe = Math.min(Math.max(Math.floor((params.nIvfProbe * n) / members), params.nIvfProbe), eligible);
  }
  const probed = new Set<number>();
  topCentroids(st, nq, k, probe, allowed, probed);
  if (params.centroidScoreThreshold !== undefined) {
    const thr = params.centroidScoreThreshold;
    for (const c of [...probed]) {
      let best = -Infinity;
      for (let q = 0; q < nq; q++) best = Math.max(best, st[c * nq + q]!);
      if (!(best >= thr)) probed.delete(c);
    }
  }
  const mark = new Uint8Array(n);
  segments.forEach((seg, si) => {
    const first = firstDoc[si]!;
    for (const c of probed) {
      const [from, to] = ivfList(seg.ivf, c);
      for (let i = from; i < to; i++) mark[first + seg.ivf.docs[i]!] = 1;
    }
  });

  // Approximate scores: Σ_q max over the document's (distinct) codes of S[q, code] (approx.ts).
  let count = 0;
  for (let d = 0; d < n; d++) if (mark[d] && (!inSubset || inSubset[d])) count++;
  if (count === 0) return undefined;
  const candidates = new Int32Array(count);
  const list = new Int32Array(count);
  const local = new Int32Array(count);
  count = 0;
  segments.forEach((seg, si) => {
    const first = firstDoc[si]!;
    for (let l = 0; l < seg.doclens.length; l++) {
      const d = first + l;
      if (!mark[d] || (inSubset && !inSubset[d])) continue;
      candidates[count] = d;
      list[count] = si;
      local[count++] = l;
    }
  });
  const approx = (scorer ??= new ApproxScorer()).score(st, nq, k, segments.map((g) => g.docCodes), list, local, count);
  return { candidates, approx };
}

/**
 * Stage 3 of search: the n_full_scores best candidates by approximate score kept, decompressed and
 * scored exactly in rounds (the first NextPlaid's quarter, then while one could still reach the top
 * k: see search).
 */
async function rescore(kernels: Kernels, snap: PlaidSnapshot, queryT: Float32Array, nq: number, candidates: Int32Array, approx: Float32Array, params: SearchParams, opts: RescoreOptions): Promise<Hits> {
  const count = candidates.length;
  const nFull = Math.min(params.nFullScores, count);
  const ranked = bestOf(approx, nFull);
  const round = Math.min(Math.max(Math.floor(params.nFullScores / 4), params.topK), nFull);
  const exact = new Float64Array(nFull);
  let gain = -Infinity;
  let done = 0;
  for (let take = round; take > 0; ) {
    const docs = Int32Array.from(ranked.subarray(done, done + take), (i) => candidates[i]!);
    const scores = await scoreExact(kernels, snap, queryT, nq, docs, opts.blocks ?? exactBlock);
    for (let j = 0; j < take; j++) {
      exact[done + j] = scores[j]!;
      gain = Math.max(gain, scores[j]! - approx[ranked[done + j]!]!);
    }
    done += take;
    if (opts.widen === false || done === nFull) break;
    // The k-th best exact score so far; the next candidates (best approximate first) that could reach it.
    const seen = exact.subarray(0, done);
    const kth = done < params.topK ? -Infinity : seen[bestOf(seen, params.topK)[params.topK - 1]!]!;
    let next = done;
    while (next < nFull && next - done < round && approx[ranked[next]!]! + gain >= kth) next++;
    take = next - done;
  }
  const order = Array.from({ length: done }, (_, i) => i).sort((a, b) => exact[b]! - exact[a]! || candidates[ranked[a]!]! - candidates[ranked[b]!]!);
  const top = order.slice(0, params.topK);
  return { ids: top.map((i) => candidates[ranked[i]!]!), scores: top.map((i) => Math.fround(exact[i]!)), scored: done };
}

/**
 * Exact MaxSim of documents `chosen` (ids) against the query ([dim, nq] transposed), a block at a
 * time (planBlocks): each block is decompressed into one buffer, padded to its longest document,
 * and scored in one onnxruntime run that returns each document's best score per query token.
 * Within a block, residuals are read in id order (sequential reads within each chunk file;
 * documents close together in a chunk with one positional read: a small gap is cheaper to read
 * than a second call). Scores in `chosen` order.
 */
async function scoreExact(kernels: Kernels, snap: PlaidSnapshot, queryT: Float32Array, nq: number, chosen: Int32Array, blocks: Readonly<BlockLimits>): Promise<Float64Array> {
  const { codec, segments, firstDoc } = snap;
  const { dim } = codec;
  const where = Array.from(chosen, (d) => segmentOf(snap, d));
  const lens = Int32Array.from(chosen, (d, i) => segments[where[i]!]!.doclens[d - firstDoc[where[i]!]!]!);
  const span = (i: number): [number, number] => {
    const seg = segments[where[i]!]!;
    const local = chosen[i]! - firstDoc[where[i]!]!;
    return [seg.offsets[local]!, seg.offsets[local + 1]!];
  };
  const plan = planBlocks(lens, blocks);
  const { order } = plan;
  const capacity = Math.max(blocks.rows, ...plan.blocks.map((b) => (b.to - b.from) * b.width));
  const buffer = takeScratch(capacity * (dim + 2));
  const bytes = packedBytes(dim, codec.nbits);
  const kernel = Unpacker.supports(codec) ? (unpacker ??= new Unpacker()) : undefined;
  const exact = new Float64Array(chosen.length);
  try {
    for (const { from, to, width } of plan.blocks) {
      const count = to - from;
      const rows = count * width;
      const emb = buffer.subarray(0, rows * dim);
      const scale = buffer.subarray(capacity * dim, capacity * dim + rows);
      const mask = buffer.subarray(capacity * (dim + 1), capacity * (dim + 1) + rows);
      scale.fill(0);
      mask.fill(-Infinity);
      // Slot s of the block holds document doc(s); the slots are read in document id order.
      const doc = (s: number) => order[from + s]!;
      const byId = Array.from({ length: count }, (_, s) => s).sort((a, b) => chosen[doc(a)]! - chosen[doc(b)]!);
      for (let x = 0; x < count; ) {
        const first = doc(byId[x]!);
        const seg = segments[where[first]!]!;
        let [start, end] = span(first);
        let y = x + 1;
        while (y < count && where[doc(byId[y]!)] === where[first] && span(doc(byId[y]!))[0] - end <= GAP_TOKENS) end = span(doc(byId[y++]!))[1];
        if (readBuffer.length < (end - start) * bytes) readBuffer = new Uint8Array(Math.max((end - start) * bytes, 2 * readBuffer.length));
        const packed = seg.residuals.read(start, end, readBuffer);
        for (let z = x; z < y; z++) {
          const slot = byId[z]!;
          const [a, b] = span(doc(slot));
          const row = slot * width;
          const [codes, residuals] = [seg.codes.subarray(a, b), packed.subarray((a - start) * bytes, (b - start) * bytes)];
          if (kernel) kernel.run(codec, snap.lut, codes, residuals, b - a, emb, row * dim, scale, row);
          else decompress(codec, snap.lut, codes, residuals, b - a, emb, row * dim, scale, row);
          mask.fill(0, row, row + b - a);
          // Padding rows are zeroed (scale 0 and mask −∞ drop them; zeros keep them finite).
          emb.fill(0, (row + b - a) * dim, (row + width) * dim);
        }
        x = y;
      }
      const best = await kernels.maxSim(emb, count, width, dim, queryT, nq, scale, mask);
      for (let slot = 0; slot < count; slot++) {
        let sum = 0;
        for (let q = 0; q < nq; q++) {
          const v = best[slot * nq + q]!;
          if (v > -Infinity) sum += v;
        }
        exact[doc(slot)] = sum;
      }
    }
  } finally {
    giveScratch(buffer);
  }
  return exact;
}
