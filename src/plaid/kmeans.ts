/**
 * Centroids as NextPlaid computes them (kmeans.rs + fastkmeans): K from the corpus size, a seeded
 * sample of documents, at most 256 points per centroid, random initial points, a few Lloyd
 * iterations, then unit-length rows. The assignment step — the whole cost — is a GEMM + ArgMax in
 * onnxruntime (kernels.ts); only the centroid sums run in JavaScript, one pass over the points.
 */
import { Kernels, normalizeRows, transpose } from "./kernels.js";
import { Rng } from "./rng.js";

export interface KmeansOptions {
  k: number;
  iterations: number;
  maxPointsPerCentroid: number;
  seed: number;
  /** Called between iterations (progress, and a chance for other work on this thread). */
  onIteration?: (done: number, total: number) => Promise<void> | void;
}

/** NextPlaid's number of centroids for `tokens` embeddings: 2^⌊log2(16·√tokens)⌋, at most `tokens`. */
export function numCentroids(tokens: number): number {
  if (tokens <= 0) return 0;
  const k = 2 ** Math.floor(Math.log2(16 * Math.sqrt(tokens)));
  return Math.max(1, Math.min(k, tokens));
}

/** NextPlaid's k-means document sample: min(1 + 16·√(120·N), N) documents. */
export function kmeansSampleSize(documents: number): number {
  return Math.min(Math.floor(1 + 16 * Math.sqrt(120 * documents)), documents);
}

/** Lloyd's k-means on `points` ([n, d]), squared-L2 assignment; returns unit-length centroids [k, d]. */
export async function kmeans(kernels: Kernels, points: Float32Array, n: number, d: number, opts: KmeansOptions): Promise<Float32Array> {
  const k = Math.min(opts.k, n);
  const rng = new Rng(opts.seed);
  // At most maxPointsPerCentroid · k training points.
  let train = points;
  let m = n;
  const cap = k * opts.maxPointsPerCentroid;
  if (n > cap) {
    const pick = rng.sample(n, cap);
    train = new Float32Array(cap * d);
    for (let i = 0; i < cap; i++) train.set(points.subarray(pick[i]! * d, (pick[i]! + 1) * d), i * d);
    m = cap;
  }
  const centroids = new Float32Array(k * d);
  const init = rng.sample(m, k);
  for (let i = 0; i < k; i++) centroids.set(train.subarray(init[i]! * d, (init[i]! + 1) * d), i * d);

  // Nearest in L2 = argmax of x·c − ½‖c‖² (the bias), so the GEMM needs no extra copy of the points.
  const bias = new Float32Array(k);
  const sums = new Float64Array(k * d);
  const counts = new Int32Array(k);
  for (let it = 0; it < opts.iterations; it++) {
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += centroids[c * d + j]! * centroids[c * d + j]!;
      bias[c] = -0.5 * s;
    }
    const { codes } = await kernels.nearest(train, m, d, transpose(centroids, k, d), k, bias);
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < m; i++) {
      // Let queued work (searches) run now and then: this thread also answers them.
      if ((i & 0x1fff) === 0x1fff) await new Promise<void>((resolve) => setImmediate(resolve));
      const c = codes[i]!;
      counts[c]!++;
      const base = c * d;
      const p = i * d;
      for (let j = 0; j < d; j++) sums[base + j]! += train[p + j]!;
    }
    let shift = 0;
    const empty: number[] = [];
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) {
        empty.push(c);
        continue;
      }
      const inv = 1 / counts[c]!;
      for (let j = 0; j < d; j++) {
        const v = sums[c * d + j]! * inv;
        const delta = v - centroids[c * d + j]!;
        shift += delta * delta;
        centroids[c * d + j] = v;
      }
    }
    // Empty clusters restart from random points (as fastkmeans does).
    if (empty.length > 0) {
      const fresh = rng.sample(m, empty.length);
      empty.forEach((c, i) => centroids.set(train.subarray(fresh[i]! * d, (fresh[i]! + 1) * d), c * d));
    }
    await opts.onIteration?.(it + 1, opts.iterations);
    if (empty.length === 0 && shift < 1e-8) break;
  }
  normalizeRows(centroids, k, d);
  return centroids;
}
