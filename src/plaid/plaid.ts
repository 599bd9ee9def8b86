/**
 * The PLAID index in memory (NextPlaid index.rs / update.rs / delete.rs / search.rs): an immutable
 * snapshot of codec + compressed tokens + IVF, and the operations that derive a new snapshot from
 * an old one (build, append, delete) or read it (search). Persistence is store.ts's job.
 */
import { byteLookup, compressResiduals, decompress, packedBytes, quantileSorted, trainBuckets, type Codec } from "./codec.js";
import { buildIvf, distinctCodes, type DocCodes, type Ivf } from "./ivf.js";
import { Kernels, transpose } from "./kernels.js";
import { kmeans, kmeansSampleSize, numCentroids } from "./kmeans.js";
import { Rng } from "./rng.js";

export interface PlaidSnapshot {
  codec: Codec;
  clusterThreshold: number;
  /** Tokens per document. */
  doclens: Int32Array;
  /** [numDocs + 1] first token of each document. */
  offsets: Int32Array;
  /** Centroid id per token. */
  codes: Int32Array;
  /** Packed residuals, packedBytes(dim, nbits) per token. */
  residuals: Uint8Array;
  /** Derived on load. */
  ivf: Ivf;
  docCodes: DocCodes;
  lut: Float32Array;
  centroidsT: Float32Array;
}

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

export interface BuildOptions {
  nbits: 2 | 4;
  seed: number;
  kmeansIterations?: number;
  maxPointsPerCentroid?: number;
  /** append(): add centroids for outlier tokens (default true; off for buffered small updates). */
  expand?: boolean;
  progress?: (stage: string, message: string) => Promise<void> | void;
}

/** Tokens compressed between two chances for other work (searches) on this thread. */
const SLICE_TOKENS = 65_536;
const yieldToEvents = () => new Promise<void>((resolve) => setImmediate(resolve));

/** compressResiduals over many tokens, in slices, letting queued work (searches) run in between. */
async function compressAll(codec: Codec, embeddings: Float32Array, codes: Int32Array, rows: number): Promise<{ packed: Uint8Array; norms: Float32Array }> {
  const bytes = packedBytes(codec.dim, codec.nbits);
  const packed = new Uint8Array(rows * bytes);
  const norms = new Float32Array(rows);
  for (let start = 0; start < rows; start += SLICE_TOKENS) {
    const end = Math.min(rows, start + SLICE_TOKENS);
    const part = compressResiduals(codec, embeddings.subarray(start * codec.dim, end * codec.dim), codes.subarray(start, end), end - start);
    packed.set(part.packed, start * bytes);
    norms.set(part.norms, start);
    if (end < rows) await yieldToEvents();
  }
  return { packed, norms };
}

/**
 * Reusable buffers for the decompressed candidates (tens of MB per search): allocating and
 * zero-filling them each time cost as much as filling them. A buffer is held by one search from
 * take() to give(), so searches interleaved on this thread never share one.
 */
const scratch: Float32Array[] = [];
function takeScratch(n: number): Float32Array {
  const i = scratch.findIndex((b) => b.length >= n);
  return i >= 0 ? scratch.splice(i, 1)[0]! : new Float32Array(Math.max(n, 1 << 16));
}
function giveScratch(b: Float32Array): void {
  if (scratch.length < 4) scratch.push(b);
}

export const numDocs = (s: PlaidSnapshot) => s.doclens.length;
export const numTokens = (s: PlaidSnapshot) => s.codes.length;

export function offsetsOf(doclens: Int32Array): Int32Array {
  const o = new Int32Array(doclens.length + 1);
  for (let i = 0; i < doclens.length; i++) o[i + 1] = o[i]! + doclens[i]!;
  return o;
}

/** Completes a snapshot from its stored parts (IVF, decompression table, transposed centroids). */
export function assemble(parts: Omit<PlaidSnapshot, "ivf" | "docCodes" | "lut" | "centroidsT" | "offsets">): PlaidSnapshot {
  const offsets = offsetsOf(parts.doclens);
  const { codec } = parts;
  const docCodes = distinctCodes(parts.codes, offsets, parts.doclens.length, codec.k);
  return {
    ...parts,
    offsets,
    ivf: buildIvf(docCodes, codec.k),
    docCodes,
    lut: byteLookup(codec),
    centroidsT: transpose(codec.centroids, codec.k, codec.dim),
  };
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

/** The token embeddings of documents `ids` (in that order), concatenated. */
function gatherDocs(docs: DocSource, ids: ArrayLike<number>): { data: Float32Array; tokens: number } {
  const n = docs.doclens.length;
  // Every document: the tokens as they are (k-means does not depend on their order).
  if (ids.length === n) return { data: docs.read(0, n), tokens: docs.offsets[n]! };
  let tokens = 0;
  for (let i = 0; i < ids.length; i++) tokens += docs.doclens[ids[i]!]!;
  const data = new Float32Array(tokens * docs.dim);
  let at = 0;
  for (let i = 0; i < ids.length; i++) {
    const part = docs.read(ids[i]!, ids[i]! + 1);
    data.set(part, at);
    at += part.length;
  }
  return { data, tokens };
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

/** Builds an index from scratch (NextPlaid create_index_files), reading `docs` a slice at a time. */
export async function build(kernels: Kernels, docs: DocSource, opts: BuildOptions): Promise<PlaidSnapshot> {
  const { dim, offsets } = docs;
  const n = docs.doclens.length;
  const total = offsets[n]!;
  if (n === 0 || total === 0) throw new Error("No embeddings to index");
  // 1. Centroids from a seeded sample of documents.
  const order = shuffled(n, new Rng(opts.seed));
  const sampleDocs = order.subarray(0, kmeansSampleSize(n));
  const sample = gatherDocs(docs, sampleDocs);
  const k = Math.min(numCentroids((sample.tokens / sampleDocs.length) * n), sample.tokens);
  await opts.progress?.("kmeans", `computing ${k} centroids from ${sample.tokens} embeddings`);
  const centroids = await kmeans(kernels, sample.data, sample.tokens, dim, {
    k,
    iterations: opts.kmeansIterations ?? 4,
    maxPointsPerCentroid: opts.maxPointsPerCentroid ?? 256,
    seed: opts.seed,
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
  }
  const centroidsT = transpose(centroids, k, dim);
  const held = await kernels.nearest(heldout, got, dim, centroidsT, k);
  const residuals = new Float32Array(got * dim);
  for (let r = 0; r < got; r++) {
    const c = held.codes[r]! * dim;
    for (let j = 0; j < dim; j++) residuals[r * dim + j] = heldout[r * dim + j]! - centroids[c + j]!;
  }
  const buckets = trainBuckets(residuals, got, dim, opts.nbits);
  const codec: Codec = { dim, nbits: opts.nbits, k, centroids, cutoffs: buckets.cutoffs, weights: buckets.weights, avgResidual: buckets.avgResidual };
  // 3. Every token: nearest centroid + packed residual, read and encoded a slice of documents at a time.
  await opts.progress?.("index_write", `compressing ${total} embeddings`);
  const codes = new Int32Array(total);
  const packed = new Uint8Array(total * packedBytes(dim, opts.nbits));
  for (let from = 0; from < n; ) {
    let to = from + 1;
    while (to < n && offsets[to + 1]! - offsets[from]! <= SLICE_TOKENS) to++;
    const t0 = offsets[from]!;
    const rows = offsets[to]! - t0;
    const data = docs.read(from, to);
    const part = await kernels.nearest(data, rows, dim, centroidsT, k);
    codes.set(part.codes, t0);
    packed.set((await compressAll(codec, data, part.codes, rows)).packed, t0 * packedBytes(dim, opts.nbits));
    from = to;
    if (from < n) await yieldToEvents();
  }
  return assemble({ codec, clusterThreshold: buckets.clusterThreshold, doclens: docs.doclens.slice(), codes, residuals: packed });
}

/**
 * Appends documents with the existing codec (NextPlaid update_index), first adding centroids for
 * the new tokens that lie farther than the cluster threshold from every centroid (update_centroids).
 */
export async function append(kernels: Kernels, base: PlaidSnapshot, docs: Documents, opts: BuildOptions): Promise<PlaidSnapshot> {
  let codec = base.codec;
  const { dim } = codec;
  const tokens = docs.data.length / dim;
  let centroidsT = base.centroidsT;
  let { codes } = await kernels.nearest(docs.data, tokens, dim, centroidsT, codec.k);
  let compressed = await compressAll(codec, docs.data, codes, tokens);
  let norms = compressed.norms;
  // Outliers get new centroids: k-means over them, ⌈outliers/256⌉·4 centroids.
  const outliers: number[] = [];
  for (let t = 0; t < tokens; t++) if (norms[t]! > base.clusterThreshold) outliers.push(t);
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
    codec = { ...codec, k: codec.k + kNew, centroids };
    centroidsT = transpose(centroids, codec.k, dim);
    codes = (await kernels.nearest(docs.data, tokens, dim, centroidsT, codec.k)).codes;
    compressed = await compressAll(codec, docs.data, codes, tokens);
    norms = compressed.norms;
  }
  // The threshold follows the new residuals (weighted by token counts).
  const sortedNorms = norms.slice().sort();
  const oldTokens = numTokens(base);
  // (buffered small updates leave it alone, as NextPlaid's update_index without update_threshold)
  const threshold =
    opts.expand === false ? base.clusterThreshold : (base.clusterThreshold * oldTokens + quantileSorted(sortedNorms, 0.75) * tokens) / (oldTokens + tokens);
  const cat = <T extends Int32Array | Uint8Array | Float32Array>(a: T, b: T): T => {
    const out = new (a.constructor as new (n: number) => T)(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  };
  return assemble({
    codec,
    clusterThreshold: threshold,
    doclens: cat(base.doclens, docs.doclens),
    codes: cat(base.codes, codes),
    residuals: cat(base.residuals, compressed.packed),
  });
}

/** Removes documents (ascending unique ids); survivors keep their order, ids stay 0..N−1. */
export function remove(base: PlaidSnapshot, ids: Int32Array): PlaidSnapshot {
  const n = numDocs(base);
  const drop = new Uint8Array(n);
  for (const id of ids) if (id >= 0 && id < n) drop[id] = 1;
  const { dim, nbits } = base.codec;
  const bytes = packedBytes(dim, nbits);
  let keptDocs = 0;
  let keptTokens = 0;
  for (let d = 0; d < n; d++) {
    if (!drop[d]) {
      keptDocs++;
      keptTokens += base.doclens[d]!;
    }
  }
  const doclens = new Int32Array(keptDocs);
  const codes = new Int32Array(keptTokens);
  const residuals = new Uint8Array(keptTokens * bytes);
  let di = 0;
  let ti = 0;
  for (let d = 0; d < n; d++) {
    if (drop[d]) continue;
    const from = base.offsets[d]!;
    const to = base.offsets[d + 1]!;
    doclens[di++] = to - from;
    codes.set(base.codes.subarray(from, to), ti);
    residuals.set(base.residuals.subarray(from * bytes, to * bytes), ti * bytes);
    ti += to - from;
  }
  return assemble({ codec: base.codec, clusterThreshold: base.clusterThreshold, doclens, codes, residuals });
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
}

/** Indices of the `p` largest values of row `row` of `s` ([rows, k]) among `allowed` (all when absent). */
function topCentroids(s: Float32Array, row: number, k: number, p: number, allowed: Uint8Array | undefined, out: Set<number>): void {
  const base = row * k;
  if (p <= 0) return;
  const bestIdx = new Int32Array(p).fill(-1);
  const bestVal = new Float32Array(p).fill(-Infinity);
  let filled = 0;
  for (let c = 0; c < k; c++) {
    if (allowed && !allowed[c]) continue;
    const v = s[base + c]!;
    if (filled === p && !(v > bestVal[p - 1]!)) continue;
    let i = filled < p ? filled++ : p - 1;
    while (i > 0 && bestVal[i - 1]! < v) {
      bestVal[i] = bestVal[i - 1]!;
      bestIdx[i] = bestIdx[i - 1]!;
      i--;
    }
    bestVal[i] = v;
    bestIdx[i] = c;
  }
  for (let i = 0; i < filled; i++) out.add(bestIdx[i]!);
}

/**
 * PLAID search for one query ([nq, dim], used as given): centroid scores → probed cells →
 * candidates from the IVF (∩ subset) → approximate scores from centroid scores → the best
 * decompressed and scored exactly (MaxSim). Scores are raw MaxSim sums.
 */
export async function search(kernels: Kernels, snap: PlaidSnapshot, query: Float32Array, nq: number, params: SearchParams, subset?: Int32Array): Promise<Hits> {
  const { codec } = snap;
  const { dim, k } = codec;
  const n = numDocs(snap);
  if (n === 0 || nq === 0 || params.topK <= 0) return { ids: [], scores: [] };
  const s = await kernels.matmul(query, nq, dim, snap.centroidsT, k);

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
      for (let u = snap.docCodes.offsets[id]!; u < snap.docCodes.offsets[id + 1]!; u++) {
        const c = snap.docCodes.codes[u]!;
        if (!allowed[c]) {
          allowed[c] = 1;
          eligible++;
        }
      }
    }
    if (members === 0) return { ids: [], scores: [] };
    probe = Math.min(Math.max(Math.floor((params.nIvfProbe * n) / members), params.nIvfProbe), eligible);
  }
  const probed = new Set<number>();
  for (let q = 0; q < nq; q++) topCentroids(s, q, k, probe, allowed, probed);
  if (params.centroidScoreThreshold !== undefined) {
    const thr = params.centroidScoreThreshold;
    for (const c of [...probed]) {
      let best = -Infinity;
      for (let q = 0; q < nq; q++) best = Math.max(best, s[q * k + c]!);
      if (!(best >= thr)) probed.delete(c);
    }
  }
  const mark = new Uint8Array(n);
  for (const c of probed) {
    for (let i = snap.ivf.offsets[c]!; i < snap.ivf.offsets[c + 1]!; i++) mark[snap.ivf.docs[i]!] = 1;
  }
  const candidates: number[] = [];
  for (let d = 0; d < n; d++) if (mark[d] && (!inSubset || inSubset[d])) candidates.push(d);
  if (candidates.length === 0) return { ids: [], scores: [] };

  // Approximate scores: Σ_q max over the document's (distinct) codes of S[q, code] (S transposed
  // for locality).
  const st = transpose(s, nq, k);
  const approx = new Float32Array(candidates.length);
  const best = new Float32Array(nq);
  const { offsets: uo, codes: uc } = snap.docCodes;
  for (let i = 0; i < candidates.length; i++) {
    const d = candidates[i]!;
    best.fill(-Infinity);
    for (let u = uo[d]!; u < uo[d + 1]!; u++) {
      const base = uc[u]! * nq;
      for (let q = 0; q < nq; q++) {
        const v = st[base + q]!;
        if (v > best[q]!) best[q] = v;
      }
    }
    let sum = 0;
    for (let q = 0; q < nq; q++) if (best[q]! > -Infinity) sum += best[q]!;
    approx[i] = sum;
  }
  const order = Int32Array.from(candidates.keys()).sort((a, b) => approx[b]! - approx[a]! || a - b);
  const nFull = Math.min(params.nFullScores, order.length);
  const nDecompress = Math.min(Math.max(Math.floor(params.nFullScores / 4), params.topK), nFull);
  const chosen = Array.from(order.subarray(0, nDecompress), (i) => candidates[i]!);

  // Exact MaxSim on the decompressed documents: one GEMM for all of them; rows are normalised by
  // scaling their scores (nq multiplies per token instead of dim).
  let tokens = 0;
  for (const d of chosen) tokens += snap.doclens[d]!;
  const emb = takeScratch(tokens * dim);
  const inv = new Float32Array(tokens);
  let at = 0;
  for (const d of chosen) {
    decompress(codec, snap.lut, snap.codes, snap.residuals, snap.offsets[d]!, snap.offsets[d + 1]!, emb, at * dim, inv, at);
    at += snap.doclens[d]!;
  }
  let sim: Float32Array;
  try {
    sim = await kernels.matmul(emb, tokens, dim, transpose(query, nq, dim), nq);
  } finally {
    giveScratch(emb);
  }
  const exact = new Float64Array(chosen.length);
  at = 0;
  for (let i = 0; i < chosen.length; i++) {
    const len = snap.doclens[chosen[i]!]!;
    best.fill(-Infinity);
    for (let t = at; t < at + len; t++) {
      const scale = inv[t]!;
      for (let q = 0; q < nq; q++) {
        const v = sim[t * nq + q]! * scale;
        if (v > best[q]!) best[q] = v;
      }
    }
    let sum = 0;
    for (let q = 0; q < nq; q++) if (best[q]! > -Infinity) sum += best[q]!;
    exact[i] = sum;
    at += len;
  }
  const ranked = Array.from(chosen.keys()).sort((a, b) => exact[b]! - exact[a]! || chosen[a]! - chosen[b]!);
  const top = ranked.slice(0, params.topK);
  return { ids: top.map((i) => chosen[i]!), scores: top.map((i) => Math.fround(exact[i]!)) };
}
