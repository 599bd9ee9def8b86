/**
 * The residual codec (NextPlaid codec.rs / index.rs): each token embedding is stored as the id of
 * its nearest centroid plus its residual quantised to `nbits` per dimension. Buckets come from
 * quantiles of all held-out residual values; decompression is centroid + bucket weight,
 * L2-normalised.
 */

export interface Codec {
  dim: number;
  nbits: 2 | 4;
  /** Number of centroids. */
  k: number;
  /** [k, dim], unit rows. */
  centroids: Float32Array;
  /** 2^nbits − 1 increasing bucket boundaries. */
  cutoffs: Float32Array;
  /** 2^nbits bucket values. */
  weights: Float32Array;
  /** Mean |residual| per dimension (kept for the file format; not used to decompress). */
  avgResidual: Float32Array;
}

/**
 * Ids in memory (centroid ids of tokens, documents of a chunk): 16 bits while every id fits —
 * K ≤ 65 536 covers NextPlaid's formula up to ~17 G embeddings — else 32 (half the memory a loaded
 * index holds per token). Files keep int32.
 */
export type Ids = Int32Array | Uint16Array;

/** An Ids array of `length` for ids in [0, bound). */
export function idArray(length: number, bound: number): Ids {
  return bound <= 0x10000 ? new Uint16Array(length) : new Int32Array(length);
}

/** `ids` (each in [0, bound)) in the smallest Ids array that holds them (`ids` itself when 32 bits are needed). */
export function compactIds(ids: Ids, bound: number): Ids {
  return bound <= 0x10000 && !(ids instanceof Uint16Array) ? Uint16Array.from(ids) : ids;
}

/** Bytes of one token's packed residual. */
export const packedBytes = (dim: number, nbits: number) => (dim * nbits) / 8;

/** numpy's "linear" quantile of an ascending-sorted array. */
export function quantileSorted(sorted: Float32Array | Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  const p = q * (sorted.length - 1);
  const lo = Math.floor(p);
  const hi = Math.ceil(p);
  const w = p - lo;
  return sorted[lo]! * (1 - w) + sorted[hi]! * w;
}

/** A float32's bits as an unsigned key that orders like the float (negative values flipped). */
function sortKey(bits: number): number {
  return bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
}

/**
 * numpy's "linear" quantiles `qs` of `values` (not modified), without sorting them: a histogram of
 * the top 16 bits of each value's order-preserving key finds the bins holding the ranks needed,
 * and only those bins' values are sorted. Exact; linear in the values; gives way to other work on
 * this thread between passes over 1 M values (a sort of millions of values would hold it).
 */
export async function quantilesOf(values: Float32Array, qs: number[], pause: () => Promise<void> = async () => undefined): Promise<number[]> {
  const n = values.length;
  if (n === 0) return qs.map(() => 0);
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  const STEP = 1 << 20;
  const counts = new Int32Array(65_536);
  for (let a = 0; a < n; a += STEP) {
    for (let i = a; i < Math.min(n, a + STEP); i++) counts[sortKey(bits[i]!) >>> 16]!++;
    await pause();
  }
  const ranks = new Set<number>();
  for (const q of qs) {
    const p = q * (n - 1);
    ranks.add(Math.floor(p));
    ranks.add(Math.ceil(p));
  }
  // The bins of the needed ranks, and each bin's first rank.
  const first = new Int32Array(65_537);
  for (let b = 0; b < 65_536; b++) first[b + 1] = first[b]! + counts[b]!;
  const binOf = (r: number) => {
    let lo = 0;
    let hi = 65_535;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (first[mid]! <= r) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const wanted = new Map<number, number[]>();
  for (const r of ranks) wanted.set(binOf(r), []);
  for (let a = 0; a < n; a += STEP) {
    for (let i = a; i < Math.min(n, a + STEP); i++) {
      const list = wanted.get(sortKey(bits[i]!) >>> 16);
      if (list) list.push(values[i]!);
    }
    await pause();
  }
  const sortedBins = new Map<number, Float32Array>();
  for (const [b, list] of wanted) sortedBins.set(b, Float32Array.from(list).sort());
  const at = (r: number) => {
    const b = binOf(r);
    return sortedBins.get(b)![r - first[b]!]!;
  };
  return qs.map((q) => {
    const p = q * (n - 1);
    const lo = Math.floor(p);
    const w = p - lo;
    return at(lo) * (1 - w) + at(Math.ceil(p)) * w;
  });
}

/**
 * Trains the bucket cutoffs/weights and the cluster threshold from held-out residuals
 * ([rows, dim], row-major).
 */
export async function trainBuckets(
  residuals: Float32Array,
  rows: number,
  dim: number,
  nbits: number,
  pause?: () => Promise<void>,
): Promise<{ cutoffs: Float32Array; weights: Float32Array; avgResidual: Float32Array; clusterThreshold: number }> {
  const n = 2 ** nbits;
  const avgResidual = new Float32Array(dim);
  const norms = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const v = residuals[r * dim + j]!;
      avgResidual[j]! += Math.abs(v);
      s += v * v;
    }
    norms[r] = Math.sqrt(s);
  }
  if (rows > 0) for (let j = 0; j < dim; j++) avgResidual[j]! /= rows;
  const qs = [...Array.from({ length: n - 1 }, (_, i) => (i + 1) / n), ...Array.from({ length: n }, (_, i) => (i + 0.5) / n)];
  const q = await quantilesOf(residuals.subarray(0, rows * dim), qs, pause);
  const cutoffs = Float32Array.from(q.slice(0, n - 1));
  const weights = Float32Array.from(q.slice(n - 1));
  norms.sort();
  return { cutoffs, weights, avgResidual, clusterThreshold: quantileSorted(norms, 0.75) };
}

/** The bucket of a residual value: how many cutoffs it exceeds (strictly). */
function bucketOf(v: number, cutoffs: Float32Array): number {
  let b = 0;
  while (b < cutoffs.length && v > cutoffs[b]!) b++;
  return b;
}

/** Reverses the low `nbits` bits of `x` (NextPlaid writes each bucket least significant bit first). */
function reverseBits(x: number, nbits: number): number {
  let r = 0;
  for (let i = 0; i < nbits; i++) r |= ((x >> i) & 1) << (nbits - 1 - i);
  return r;
}

/**
 * Packs the residuals (embeddings − their centroids) of `rows` tokens, NextPlaid's bit layout:
 * per token a bit stream, dimension by dimension, each bucket LSB first, bytes filled MSB first.
 * Also returns each token's residual norm (for outlier detection and the threshold).
 */
export function compressResiduals(
  codec: Codec,
  embeddings: Float32Array,
  codes: Ids,
  rows: number,
): { packed: Uint8Array; norms: Float32Array } {
  const { dim, nbits, centroids, cutoffs } = codec;
  const bytes = packedBytes(dim, nbits);
  const perByte = 8 / nbits;
  const packed = new Uint8Array(rows * bytes);
  const norms = new Float32Array(rows);
  const rev = Int32Array.from({ length: 2 ** nbits }, (_, b) => reverseBits(b, nbits));
  for (let r = 0; r < rows; r++) {
    const e = r * dim;
    const c = codes[r]! * dim;
    let s = 0;
    for (let byte = 0; byte < bytes; byte++) {
      let value = 0;
      for (let p = 0; p < perByte; p++) {
        const j = byte * perByte + p;
        const res = embeddings[e + j]! - centroids[c + j]!;
        s += res * res;
        value |= rev[bucketOf(res, cutoffs)]! << (8 - nbits * (p + 1));
      }
      packed[r * bytes + byte] = value;
    }
    norms[r] = Math.sqrt(s);
  }
  return { packed, norms };
}

/**
 * For each byte value, the bucket weights of the `8 / nbits` dimensions it holds: decompression is
 * then one table row per byte.
 */
export function byteLookup(codec: Codec): Float32Array {
  const { nbits, weights } = codec;
  const perByte = 8 / nbits;
  const mask = 2 ** nbits - 1;
  const lut = new Float32Array(256 * perByte);
  for (let v = 0; v < 256; v++) {
    for (let p = 0; p < perByte; p++) {
      const bits = (v >> (8 - nbits * (p + 1))) & mask;
      lut[v * perByte + p] = weights[reverseBits(bits, nbits)]!;
    }
  }
  return lut;
}

/**
 * Decompresses `count` tokens (their codes and packed residuals) into `out` ([count, dim]):
 * centroid + bucket weights, each row L2-normalised — or, when `invNorms` is given, left
 * unnormalised with each row's 1 / max(‖row‖, 1e-12) written there instead (the caller scales dot
 * products: one multiply per score instead of one per dimension). float32 arithmetic: values
 * centroid + weight, squared norms summed in four lanes (dimension j in lane j mod 4), then
 * (l0 + l1) + (l2 + l3) — the order the search's WebAssembly kernel (unpack.ts) follows, so this
 * is its reference, and what search runs when dim is not a multiple of 4.
 */
export function decompress(
  codec: Codec,
  lut: Float32Array,
  codes: Ids,
  packed: Uint8Array,
  count: number,
  out: Float32Array,
  outOffset = 0,
  invNorms?: Float32Array,
  invOffset = 0,
): void {
  const { dim, nbits, centroids } = codec;
  const bytes = packedBytes(dim, nbits);
  const perByte = 8 / nbits;
  const f = Math.fround;
  const lanes = new Float32Array(4);
  for (let t = 0; t < count; t++) {
    const o = outOffset + t * dim;
    const c = codes[t]! * dim;
    const pb = t * bytes;
    lanes.fill(0);
    for (let j = 0; j < dim; j++) {
      const w = lut[packed[pb + Math.floor(j / perByte)]! * perByte + (j % perByte)]!;
      const v = f(centroids[c + j]! + w);
      out[o + j] = v;
      lanes[j & 3] = lanes[j & 3]! + f(v * v);
    }
    const s = f(f(lanes[0]! + lanes[1]!) + f(lanes[2]! + lanes[3]!));
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    if (invNorms) invNorms[invOffset + t] = inv;
    else for (let j = 0; j < dim; j++) out[o + j]! *= f(inv);
  }
}
