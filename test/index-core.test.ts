/**
 * The PLAID pieces against independent oracles: NextPlaid's bit layout written out by hand,
 * numpy's quantile rule, k-means on separable clusters, search against brute-force MaxSim, and the
 * filter validator against injection attempts.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { byteLookup, compressResiduals, decompress, quantileSorted, quantilesOf, type Codec } from "../src/plaid/codec.js";
import { ApproxScorer } from "../src/plaid/approx.js";
import { Unpacker } from "../src/plaid/unpack.js";
import { Rng } from "../src/plaid/rng.js";
import { validateFilter, FilterError } from "../src/plaid/filter.js";
import { Kernels, normalizeRows, transpose, transposeAppended } from "../src/plaid/kernels.js";
import { kmeans, kmeansSampleSize, numCentroids } from "../src/plaid/kmeans.js";
import { bestOf, buildInMemory as build, planBlocks, topCentroids, encodeTokens, memoryDocs, reassignToAdded, retrainDue, search, trainingSize } from "../src/plaid/plaid.js";
import { documentTokens, makeSegment, memoryResiduals, numDocs, offsetsOf } from "../src/plaid/snapshot.js";
import { buildIvf, distinctCodes, ivfList } from "../src/plaid/ivf.js";
import { fuseRelative, fuseRrf } from "../src/plaid/fusion.js";
import { flatten, syntheticCorpus } from "./helpers/synthetic.js";

let kernels: Kernels;
before(async () => {
  kernels = await Kernels.create(2);
});
after(async () => kernels.release());

const corpusDocs = flatten;

/** Σ_q max_t q·d_t, straightforwardly. */
function maxSim(q: Float32Array, d: Float32Array, dim: number): number {
  let total = 0;
  for (let i = 0; i < q.length / dim; i++) {
    let best = -Infinity;
    for (let t = 0; t < d.length / dim; t++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += q[i * dim + j]! * d[t * dim + j]!;
      best = Math.max(best, s);
    }
    total += best;
  }
  return total;
}

test("numCentroids and the k-means sample follow NextPlaid's formulas", () => {
  assert.equal(numCentroids(1_000_000), 8192); // 2^⌊log2(16·1000)⌋
  assert.equal(numCentroids(500), 256);
  assert.equal(numCentroids(3), 3); // never more than the embeddings
  assert.equal(kmeansSampleSize(10), 10);
  assert.equal(kmeansSampleSize(100_000), Math.floor(1 + 16 * Math.sqrt(120 * 100_000)));
});

test("retrains follow what a bulk build would train on: the index's growth while every point is in the sample, then K changes and 4× growth, or outlier centroids doubling K with 1.25× growth", () => {
  const at = (documents: number) => ({ documents, embeddings: documents * 100 });
  // Small: every document is sampled, so the sample grows with the index.
  assert.deepEqual(trainingSize(2_000, 200_000, 128), { k: 4096, points: 200_000 });
  assert.equal(retrainDue(at(2_000), at(2_400), 128, 1.25), false);
  assert.equal(retrainDue(at(2_000), at(2_500), 128, 1.25), true);
  // K changes (2^⌊log2(16·√E)⌋ doubles at E = 4^k): 1 000 000 → 1 048 576 embeddings.
  assert.equal(trainingSize(10_000, 1_000_000, 128).k, 8192);
  assert.equal(trainingSize(10_486, 1_048_600, 128).k, 16384);
  assert.equal(retrainDue(at(10_000), { documents: 10_486, embeddings: 1_048_600 }, 128, 1.25), true);
  // Past 2^20 points (512 MiB at dim 128) the sample no longer grows: 1.25× alone does not retrain.
  assert.equal(trainingSize(20_000, 2_000_000, 128).points, 2 ** 20);
  assert.equal(retrainDue(at(20_000), at(41_000), 128, 1.25), false);
  assert.equal(retrainDue(at(20_000), at(42_000), 128, 1.25), true, "K 16384 → 32768 at 4 194 304 embeddings");
  // With K capped, only RESAMPLE_GROWTH (4×) is left.
  const cap = { maxCentroids: 16384 };
  assert.equal(retrainDue(at(20_000), at(79_000), 128, 1.25, cap), false);
  assert.equal(retrainDue(at(20_000), at(80_000), 128, 1.25, cap), true);
  // Outlier centroids that doubled K call for one too once the index grew 1.25× (not before, and only when K as trained is known).
  assert.equal(retrainDue({ ...at(20_000), partitions: 16384 }, { ...at(25_000), partitions: 32767 }, 128, 1.25), false);
  assert.equal(retrainDue({ ...at(20_000), partitions: 16384 }, { ...at(25_000), partitions: 32768 }, 128, 1.25), true);
  assert.equal(retrainDue({ ...at(20_000), partitions: 16384 }, { ...at(24_900), partitions: 40000 }, 128, 1.25), false, "K doubled, but the index grew < 1.25×");
  assert.equal(retrainDue(at(20_000), { ...at(25_000), partitions: 1 << 20 }, 128, 1.25), false);
  // Never, when asked (NextPlaid's behaviour), and not on shrinking.
  assert.equal(retrainDue(at(2_000), at(20_000), 128, 0), false);
  assert.equal(retrainDue(at(2_000), at(1_000), 128, 1.25), false);
});

test("probed centroids: each query token's p best (ties to the lower centroid), among the allowed ones", () => {
  const rng = new Rng(9);
  for (const [nq, k, p, ties] of [[1, 10, 3, false], [7, 500, 8, false], [32, 300, 8, true], [3, 5, 9, false]] as const) {
    // Scores on a coarse grid when ties are wanted.
    const s = Float32Array.from({ length: nq * k }, () => (ties ? rng.below(20) / 10 : rng.below(2_000_001) / 1e6 - 1));
    const allowed = Uint8Array.from({ length: k }, (_, c) => (c % 5 === 2 ? 0 : 1));
    for (const only of [undefined, allowed]) {
      const got = new Set<number>();
      topCentroids(transpose(s, nq, k), nq, k, p, only, got);
      const want = new Set<number>();
      for (let q = 0; q < nq; q++) {
        const ids = Array.from({ length: k }, (_, c) => c).filter((c) => !only || only[c]);
        ids.sort((a, b) => s[q * k + b]! - s[q * k + a]! || a - b);
        for (const c of ids.slice(0, p)) want.add(c);
      }
      assert.deepEqual([...got].sort((a, b) => a - b), [...want].sort((a, b) => a - b), `nq ${nq}, k ${k}, p ${p}`);
    }
  }
});

test("approximate scores: the WebAssembly kernel equals the JavaScript loop bit for bit (any query length, batches, empty documents)", () => {
  const rng = new Rng(5);
  // Every width with maxima in locals (1–8 groups of 4 lanes, partial last groups), and the loop beyond.
  for (const [nq, k, batch] of [[1, 7, 1 << 20], [5, 300, 50], [12, 90, 1 << 20], [14, 64, 33], [17, 500, 1 << 20], [23, 40, 9], [28, 300, 1 << 20], [32, 1000, 1 << 20], [33, 64, 7], [64, 200, 1 << 20]] as const) {
    const s = Float32Array.from({ length: nq * k }, () => rng.below(2_000_001) / 1e6 - 1);
    const docs = Array.from({ length: 200 }, (_, i) => (i % 37 === 3 ? new Int32Array(0) : Int32Array.from(new Set(Array.from({ length: 1 + rng.below(60) }, () => rng.below(k))))));
    const scorer = new ApproxScorer(batch);
    // As segments hold them: two lists, documents taken out of order.
    const lists = [0, 1].map((half) => {
      const mine = docs.filter((_, i) => i % 2 === half);
      const offsets = new Int32Array(mine.length + 1);
      mine.forEach((d, i) => (offsets[i + 1] = offsets[i]! + d.length));
      const codes = new Int32Array(offsets[mine.length]!);
      mine.forEach((d, i) => codes.set(d, offsets[i]!));
      return { codes, offsets };
    });
    const order = Array.from(docs.keys()).reverse();
    const st = transpose(s, nq, k);
    const got = scorer.score(st, nq, k, lists, Int32Array.from(order, (i) => i % 2), Int32Array.from(order, (i) => i >> 1), docs.length);
    const want = docs.map((codes) => {
      let sum = 0;
      for (let q = 0; q < nq; q++) {
        let best = -Infinity;
        for (const c of codes) best = Math.max(best, s[q * k + c]!);
        if (best > -Infinity) sum += best;
      }
      return Math.fround(sum);
    });
    assert.deepEqual(Array.from(got), order.map((i) => want[i]), `nq ${nq}, k ${k}, batches of ${batch} codes`);
    // Reused: a second query on the same scorer (memory already grown) is as right.
    const again = scorer.score(st, nq, k, lists, Int32Array.of(1, 0), Int32Array.of(0, 0), 2);
    assert.deepEqual(Array.from(again), [want[1], want[0]]);
  }
});

test("bestOf: the first m of sorting every index by value (descending) then index, ties included", () => {
  const rng = new Rng(9);
  for (const [n, levels, m] of [[1, 3, 1], [10, 2, 3], [1000, 5, 100], [5000, 100_000, 1024], [300, 1000, 300], [50, 4, 80]] as const) {
    const values = Float32Array.from({ length: n }, () => rng.below(levels) / 7);
    const sorted = Array.from(values.keys()).sort((a, b) => values[b]! - values[a]! || a - b);
    assert.deepEqual(Array.from(bestOf(values, m)), sorted.slice(0, m), `n ${n}, ${levels} distinct values, m ${m}`);
  }
  assert.equal(bestOf(new Float32Array(5), 0).length, 0);
});

test("quantiles are numpy's linear rule", () => {
  const s = Float32Array.from([1, 2, 3, 4]);
  assert.equal(quantileSorted(s, 0), 1);
  assert.equal(quantileSorted(s, 1), 4);
  assert.equal(quantileSorted(s, 0.5), 2.5);
  assert.ok(Math.abs(quantileSorted(s, 0.25) - 1.75) < 1e-9);
});

test("quantiles without sorting (histogram of the top bits, then the needed bins) equal a full sort's, on every kind of value", async () => {
  const rng = new Rng(5);
  const cases = [
    Float32Array.from({ length: 100_001 }, () => (rng.nextU32() / 2 ** 32 - 0.5) * 0.3),
    Float32Array.from({ length: 5000 }, (_, i) => (i % 7) - 3), // many ties, zeros
    Float32Array.from({ length: 3000 }, () => -(rng.nextU32() / 2 ** 32) * 1e-6), // all negative, tiny
    Float32Array.from([2.5]),
    Float32Array.from([-0, 0, -1e-30, 1e30, -Infinity, 7]),
  ];
  const qs = [0, 1 / 16, 0.25, 0.5, 0.75, 15 / 16, 31 / 32, 1];
  for (const values of cases) {
    const sorted = values.slice().sort();
    const got = await quantilesOf(values, qs);
    qs.forEach((q, i) => assert.ok(Object.is(got[i], quantileSorted(sorted, q)) || got[i] === quantileSorted(sorted, q), `q ${q} of ${values.length} values: ${got[i]} vs ${quantileSorted(sorted, q)}`));
  }
});

for (const nbits of [2, 4] as const) {
  test(`${nbits}-bit residuals use NextPlaid's bit layout and decompress to centroid + bucket weight, normalised`, () => {
    const dim = 8;
    const n = 2 ** nbits;
    const cutoffs = Float32Array.from({ length: n - 1 }, (_, i) => -0.5 + (i + 1) / n);
    const weights = Float32Array.from({ length: n }, (_, i) => -0.5 + (i + 0.5) / n);
    const centroids = Float32Array.from({ length: 2 * dim }, (_, i) => (i < dim ? 1 / Math.sqrt(dim) : i === dim ? 1 : 0));
    const codec: Codec = { dim, nbits, k: 2, centroids, cutoffs, weights, avgResidual: new Float32Array(dim) };
    // Token 0 → centroid 1 with residual landing in bucket (j mod n) for dimension j.
    const buckets = Array.from({ length: dim }, (_, j) => j % n);
    const emb = new Float32Array(dim);
    for (let j = 0; j < dim; j++) emb[j] = centroids[dim + j]! + weights[buckets[j]!]!;
    const { packed } = compressResiduals(codec, emb, Int32Array.from([1]), 1);
    // The layout written out from NextPlaid's loop: per dimension, bucket bits LSB first, bytes filled MSB first.
    const bits: number[] = [];
    for (const b of buckets) for (let i = 0; i < nbits; i++) bits.push((b >> i) & 1);
    const expected = Array.from({ length: (dim * nbits) / 8 }, (_, byte) => bits.slice(byte * 8, byte * 8 + 8).reduce((v, bit) => (v << 1) | bit, 0));
    assert.deepEqual(Array.from(packed), expected);
    const out = new Float32Array(dim);
    decompress(codec, byteLookup(codec), Int32Array.from([1]), packed, 1, out);
    const norm = Math.hypot(...emb);
    for (let j = 0; j < dim; j++) assert.ok(Math.abs(out[j]! - emb[j]! / norm) < 1e-6, `dim ${j}`);
  });
}

test("decompression: the WebAssembly kernel equals the scalar float32 reference bit for bit (2 and 4 bits, several dims, batches), and a dim not a multiple of 4 runs the reference", () => {
  const rng = new Rng(5);
  const u = () => rng.below(2 ** 30) / 2 ** 30;
  for (const nbits of [2, 4] as const)
    for (const dim of nbits === 4 ? [128, 96, 8, 6] : [128, 96, 8]) {
      const k = 300;
      const n = 2 ** nbits;
      const codec: Codec = {
        dim,
        nbits,
        k,
        centroids: Float32Array.from({ length: k * dim }, () => u() - 0.5),
        cutoffs: Float32Array.from({ length: n - 1 }, (_, i) => -0.1 + (0.2 * (i + 1)) / n),
        weights: Float32Array.from({ length: n }, () => (u() - 0.5) / 5),
        avgResidual: new Float32Array(dim),
      };
      const lut = byteLookup(codec);
      const count = 4200; // more than one kernel batch
      const codes = Int32Array.from({ length: count }, () => Math.floor(u() * k));
      const packed = Uint8Array.from({ length: (count * dim * nbits) / 8 }, () => Math.floor(u() * 256));
      const [out, inv] = [new Float32Array(3 + count * dim), new Float32Array(2 + count)];
      const [ref, refInv] = [new Float32Array(3 + count * dim), new Float32Array(2 + count)];
      if (Unpacker.supports(codec)) new Unpacker().run(codec, lut, codes, packed, count, out, 3, inv, 2);
      else decompress(codec, lut, codes, packed, count, out, 3, inv, 2);
      decompress(codec, lut, codes, packed, count, ref, 3, refInv, 2);
      const same = (a: Float32Array, b: Float32Array) => Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer)) === 0;
      assert.ok(same(out, ref), `values, ${nbits} bits, dim ${dim}`);
      assert.ok(same(inv, refInv), `inverse norms, ${nbits} bits, dim ${dim}`);
      // The same as float64 arithmetic up to float32 rounding.
      for (const t of [0, count - 1]) {
        let s = 0;
        for (let j = 0; j < dim; j++) {
          const v = codec.centroids[codes[t]! * dim + j]! + lut[packed[(t * dim * nbits) / 8 + Math.floor((j * nbits) / 8)]! * (8 / nbits) + (j % (8 / nbits))]!;
          assert.ok(Math.abs(out[3 + t * dim + j]! - v) < 1e-6);
          s += v * v;
        }
        assert.ok(Math.abs(inv[2 + t]! * Math.sqrt(s) - 1) < 1e-5);
      }
    }
});

test("transposeAppended: the transpose of the rows appended, from the transpose of the first ones", () => {
  const rng = new Rng(4);
  const [rows, more, cols] = [37, 5, 12];
  const all = Float32Array.from({ length: (rows + more) * cols }, () => rng.below(1000) / 7);
  const head = all.subarray(0, rows * cols);
  assert.deepEqual(transposeAppended(transpose(head, rows, cols), rows, cols, all.subarray(rows * cols), more), transpose(all, rows + more, cols));
  assert.deepEqual(transposeAppended(transpose(head, rows, cols), rows, cols, new Float32Array(0), 0), transpose(head, rows, cols));
});

test("outlier centroids: comparing tokens with the added centroids only encodes as all the centroids would", async () => {
  const c = syntheticCorpus({ docs: 60, tokens: 40, queries: 0, seed: 13 });
  const docs = corpusDocs(c.docs, c.dim);
  const tokens = docs.data.length / c.dim;
  const snap = await build(kernels, memoryDocs(corpusDocs(c.docs.slice(0, 20), c.dim), c.dim), { nbits: 4, seed: 2 });
  const base = snap.codec;
  // Added centroids: some of the tokens themselves (each then moves to its own), normalised.
  const kAdd = 24;
  const added = new Float32Array(kAdd * c.dim);
  for (let i = 0; i < kAdd; i++) added.set(docs.data.subarray((i * 97) * c.dim, (i * 97 + 1) * c.dim), i * c.dim);
  normalizeRows(added, kAdd, c.dim);
  const grown = { ...base, k: base.k + kAdd, centroids: Float32Array.from([...base.centroids, ...added]) };
  const first = await encodeTokens(kernels, base, transpose(base.centroids, base.k, c.dim), docs.data, tokens);
  const fast = await reassignToAdded(kernels, grown, base.k, transpose(added, kAdd, c.dim), docs.data, first);
  const full = await encodeTokens(kernels, grown, transpose(grown.centroids, grown.k, c.dim), docs.data, tokens);
  assert.ok([...fast.codes].filter((x) => x >= base.k).length >= kAdd, "tokens moved to added centroids");
  assert.deepEqual(fast.codes, full.codes);
  assert.deepEqual(fast.packed, full.packed);
  assert.deepEqual(fast.norms, full.norms);
});

test("k-means finds well-separated clusters, and assignment is the nearest centroid", async () => {
  const dim = 16;
  const centres = [0, 1, 2, 3].map((c) => Float32Array.from({ length: dim }, (_, j) => (j === c * 4 ? 1 : 0)));
  const pts = new Float32Array(400 * dim);
  for (let i = 0; i < 400; i++) {
    const c = centres[i % 4]!;
    for (let j = 0; j < dim; j++) pts[i * dim + j] = c[j]! + 0.05 * Math.sin(i * 7.1 + j * 3.3);
  }
  const cents = await kmeans(kernels, pts, 400, dim, { k: 4, iterations: 10, maxPointsPerCentroid: 256, seed: 1 });
  const { codes } = await kernels.nearest(pts, 400, dim, transpose(cents, 4, dim), 4);
  for (let i = 4; i < 400; i++) assert.equal(codes[i], codes[i % 4], `point ${i} joins its cluster`);
  assert.equal(new Set(codes).size, 4);
  for (let c = 0; c < 4; c++) assert.ok(Math.abs(Math.hypot(...cents.subarray(c * dim, (c + 1) * dim)) - 1) < 1e-5, "centroids are unit length");
});

test("bulk assignment (updates, retrains) pauses between blocks while a search runs, for at most the wait bound", async () => {
  const k = 4096; // 1 024-row blocks
  const ct = new Float32Array(8 * k).map((_, i) => Math.sin(i));
  const x = new Float32Array(8 * 4096).map((_, i) => Math.cos(i));
  for (const [waitMs, paused] of [
    [60_000, true],
    [20, false],
  ] as const) {
    const local = await Kernels.create(1, undefined, waitMs);
    const expected = await local.nearest(x, 4096, 8, ct, k);
    let release!: () => void;
    const searching = local.foreground(() => new Promise<void>((r) => (release = r)));
    let done = false;
    const assigning = local.nearest(x, 4096, 8, ct, k).then((a) => ((done = true), a));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(done, !paused, paused ? "waits while the search is in flight" : "a search in flight slows it by the wait bound per block, no more");
    release();
    await searching;
    assert.deepEqual(await assigning, expected, "same assignment");
    await local.release();
  }
});

test("search: recall@10 against brute-force MaxSim, and exact scores when every document is decompressed", async () => {
  const c = syntheticCorpus({ docs: 300, tokens: 40, queries: 20, queryTokens: 16, seed: 3 });
  const docs = corpusDocs(c.docs, c.dim);
  const snap = await build(kernels, memoryDocs(docs, c.dim), { nbits: 4, seed: 42 });
  assert.equal(numDocs(snap), 300);
  let recall = 0;
  for (const q of c.queries) {
    const truth = c.docs.map((d, i) => [i, maxSim(q, d, c.dim)] as const).sort((a, b) => b[1] - a[1]).slice(0, 10).map((x) => x[0]);
    const hits = await search(kernels, snap, q, q.length / c.dim, { topK: 10, nIvfProbe: 8, nFullScores: 4096 });
    assert.equal(hits.ids.length, 10);
    for (let i = 1; i < hits.scores.length; i++) assert.ok(hits.scores[i - 1]! >= hits.scores[i]!, "scores descend");
    recall += hits.ids.filter((id) => truth.includes(id)).length / 10;
  }
  recall /= c.queries.length;
  assert.ok(recall >= 0.9, `recall@10 ${recall}`);

  // Probing every centroid and decompressing everything: the scores are MaxSim over the decompressed tokens.
  const q = c.queries[0]!;
  const all = await search(kernels, snap, q, q.length / c.dim, { topK: 300, nIvfProbe: snap.codec.k, nFullScores: 4 * 300 });
  assert.equal(all.ids.length, 300);
  for (const [rank, id] of all.ids.slice(0, 20).entries()) {
    const { codes, packed } = documentTokens(snap, id);
    const dec = new Float32Array(codes.length * c.dim);
    decompress(snap.codec, snap.lut, codes, packed, codes.length, dec);
    assert.ok(Math.abs(all.scores[rank]! - maxSim(q, dec, c.dim)) < 1e-3, `doc ${id}`);
  }
});

test("exact-scoring blocks: sorted by length, within the row and document limits once padded (a longer document alone), covering every document once", () => {
  const rng = new Rng(9);
  const lens = Int32Array.from({ length: 300 }, (_, i) => (i % 37 === 0 ? 0 : i % 53 === 0 ? 200 + (i % 7) : 1 + rng.below(60)));
  const limits = { rows: 128, docs: 5 };
  const { order, blocks } = planBlocks(lens, limits);
  assert.deepEqual(Array.from(order).sort((a, b) => a - b), Array.from(lens.keys()));
  for (let i = 1; i < order.length; i++) assert.ok(lens[order[i - 1]!]! < lens[order[i]!]! || (lens[order[i - 1]!] === lens[order[i]!] && order[i - 1]! < order[i]!));
  let next = 0;
  for (const { from, to, width } of blocks) {
    assert.equal(from, next);
    next = to;
    assert.ok(to > from && to - from <= limits.docs);
    assert.equal(width, Math.max(1, lens[order[to - 1]!]!));
    if (to - from > 1) assert.ok((to - from) * width <= limits.rows, `block [${from}, ${to}) of width ${width}`);
    // Greedy: the next document would break a limit.
    if (to < order.length) assert.ok(to - from === limits.docs || (to + 1 - from) * lens[order[to]!]! > limits.rows);
  }
  assert.equal(next, lens.length);
  assert.ok(blocks.some((b) => b.to - b.from === 1 && b.width > limits.rows), "a document longer than a block is one of its own");
});

test("search widens past n_full_scores / 4 while a candidate could still reach the top k: spread tokens get what every kept candidate gives, tight ones cost about nothing", async () => {
  const params = { topK: 10, nIvfProbe: 8, nFullScores: 128 };
  for (const words of [500, undefined]) {
    // Spread tokens (0.5 · topic + one of 500 words + noise): centroid-only scores misrank, the true top 10 lies deep in the candidates.
    const c = syntheticCorpus({ docs: 1500, tokens: 20, queries: 30, queryTokens: 8, dim: 32, seed: 5, words });
    const snap = await build(kernels, memoryDocs(corpusDocs(c.docs, c.dim), c.dim), { nbits: 4, seed: 42 });
    let [fixedRecall, widenRecall, keptRecall, fixedScored, widenScored] = [0, 0, 0, 0, 0];
    for (const q of c.queries) {
      const truth = c.docs.map((d, i) => [i, maxSim(q, d, c.dim)] as const).sort((a, b) => b[1] - a[1]).slice(0, 10).map((x) => x[0]);
      const fixed = await search(kernels, snap, q, 8, params, undefined, { widen: false });
      const widened = await search(kernels, snap, q, 8, params);
      // Every one of the n_full_scores kept candidates decompressed (NextPlaid's rule at 4 × n_full_scores).
      const kept = await search(kernels, snap, q, 8, { ...params, nFullScores: 4 * params.nFullScores }, undefined, { widen: false });
      assert.equal(fixed.scored, params.nFullScores / 4);
      assert.ok(widened.scored! >= fixed.scored! && widened.scored! <= params.nFullScores);
      // A superset of NextPlaid's decompressed documents: never a worse score at any rank.
      for (let r = 0; r < 10; r++) assert.ok(widened.scores[r]! >= fixed.scores[r]!, `rank ${r}`);
      const hit = (ids: number[]) => ids.filter((id) => truth.includes(id)).length / 10 / c.queries.length;
      [fixedRecall, widenRecall, keptRecall] = [fixedRecall + hit(fixed.ids), widenRecall + hit(widened.ids), keptRecall + hit(kept.ids)];
      [fixedScored, widenScored] = [fixedScored + fixed.scored!, widenScored + widened.scored!];
    }
    const what = `recall@10 fixed ${fixedRecall.toFixed(3)} widened ${widenRecall.toFixed(3)} all kept ${keptRecall.toFixed(3)}; scored ${fixedScored} → ${widenScored}`;
    if (words) {
      assert.ok(widenRecall >= keptRecall - 0.01 && widenRecall >= fixedRecall + 0.15, what);
    } else {
      assert.ok(widenRecall >= keptRecall - 0.01 && widenScored <= 1.25 * fixedScored, what);
    }
  }
});

test("search: exact scores are the same whatever the blocks (tiny blocks, documents of every length, one longer than a block)", async () => {
  const c = syntheticCorpus({ docs: 160, tokens: 40, queries: 6, queryTokens: 12, seed: 31 });
  // Documents cut to lengths from 1 to their whole 40+ tokens, two of them joined past a block's rows.
  const docs = c.docs.map((d, i) => d.subarray(0, Math.max(1, (i * 7) % (d.length / c.dim)) * c.dim));
  docs[5] = Float32Array.from([...c.docs[5]!, ...c.docs[6]!, ...c.docs[7]!]);
  const snap = await build(kernels, memoryDocs(corpusDocs(docs, c.dim), c.dim), { nbits: 4, seed: 8 });
  const params = { topK: 160, nIvfProbe: snap.codec.k, nFullScores: 4 * 160 };
  // Negated queries too: their best scores are negative, where a padding row scoring 0 would win.
  for (const q of [...c.queries, ...c.queries.map((x) => x.map((v) => -v))]) {
    const whole = await search(kernels, snap, q, q.length / c.dim, params);
    const tiny = await search(kernels, snap, q, q.length / c.dim, params, undefined, { blocks: { rows: 64, docs: 3 } });
    assert.deepEqual(tiny, whole);
    assert.equal(whole.ids.length, 160);
    for (const [rank, id] of whole.ids.entries()) {
      const { codes, packed } = documentTokens(snap, id);
      const dec = new Float32Array(codes.length * c.dim);
      decompress(snap.codec, snap.lut, codes, packed, codes.length, dec);
      assert.ok(Math.abs(whole.scores[rank]! - maxSim(q, dec, c.dim)) < 1e-3, `doc ${id}`);
    }
  }
});

test("ids in memory: 16 bits while they fit, 32 beyond (none wraps), and search reads either the same", async () => {
  const lens = Int32Array.from([2, 3]);
  const none = memoryResiduals(new Uint8Array(0), 0);
  const small = makeSegment("a", lens, Int32Array.from([65535, 65535, 3, 0, 3]), none);
  assert.ok(small.codes instanceof Uint16Array && small.docCodes.codes instanceof Uint16Array && small.ivf.docs instanceof Uint16Array);
  assert.deepEqual(Array.from(small.codes), [65535, 65535, 3, 0, 3]);
  assert.deepEqual(Array.from(small.docCodes.codes), [65535, 3, 0]);
  const large = makeSegment("b", lens, Int32Array.from([65536, 65536, 70000, 0, 70000]), none);
  assert.ok(large.codes instanceof Int32Array && large.docCodes.codes instanceof Int32Array);
  assert.deepEqual(Array.from(large.codes), [65536, 65536, 70000, 0, 70000]);
  assert.deepEqual(Array.from(large.docCodes.codes), [65536, 70000, 0]);
  const list = (c: number) => Array.from(large.ivf.docs.subarray(...ivfList(large.ivf, c)));
  assert.deepEqual([list(65536), list(70000), list(0), list(3)], [[0], [1], [1], []]);
  // A chunk of more than 65 536 documents keeps 32-bit document ids in its inverted lists.
  const many = 70_000;
  const ivf = buildIvf(distinctCodes(new Int32Array(many), offsetsOf(new Int32Array(many).fill(1)), many, 1), 1);
  assert.ok(ivf.docs instanceof Int32Array);
  assert.equal(ivf.docs[many - 1], many - 1);

  // The same index with 32-bit ids everywhere answers identically.
  const c = syntheticCorpus({ docs: 120, tokens: 30, queries: 4, queryTokens: 12, seed: 21 });
  const snap = await build(kernels, memoryDocs(corpusDocs(c.docs, c.dim), c.dim), { nbits: 4, seed: 5 });
  assert.ok(snap.segments[0]!.codes instanceof Uint16Array);
  const wide = {
    ...snap,
    segments: snap.segments.map((g) => ({
      ...g,
      codes: Int32Array.from(g.codes),
      docCodes: { offsets: g.docCodes.offsets, codes: Int32Array.from(g.docCodes.codes) },
      ivf: { ...g.ivf, docs: Int32Array.from(g.ivf.docs) },
    })),
  };
  for (const q of c.queries) {
    const params = { topK: 10, nIvfProbe: 8, nFullScores: 256 };
    assert.deepEqual(await search(kernels, wide, q, q.length / c.dim, params), await search(kernels, snap, q, q.length / c.dim, params));
  }
});

test("centroid_score_threshold prunes probed centroids whose best score is below it", async () => {
  const c = syntheticCorpus({ docs: 100, tokens: 20, queries: 2, queryTokens: 8, seed: 8 });
  const snap = await build(kernels, memoryDocs(corpusDocs(c.docs, c.dim), c.dim), { nbits: 4, seed: 3 });
  const q = c.queries[0]!;
  const params = { topK: 10, nIvfProbe: 8, nFullScores: 4096 };
  assert.equal((await search(kernels, snap, q, q.length / c.dim, params)).ids.length, 10);
  // Unit vectors score at most 1 against unit centroids: a threshold above that prunes everything.
  assert.deepEqual((await search(kernels, snap, q, q.length / c.dim, { ...params, centroidScoreThreshold: 1.01 })).ids, []);
  assert.equal((await search(kernels, snap, q, q.length / c.dim, { ...params, centroidScoreThreshold: -1 })).ids.length, 10);
});

test("search within a subset returns only subset documents, probing enough to find them all", async () => {
  const c = syntheticCorpus({ docs: 200, tokens: 30, queries: 3, seed: 5 });
  const snap = await build(kernels, memoryDocs(corpusDocs(c.docs, c.dim), c.dim), { nbits: 2, seed: 7 });
  const subset = Int32Array.from([3, 50, 77, 150, 199]);
  for (const q of c.queries) {
    const hits = await search(kernels, snap, q, q.length / c.dim, { topK: 10, nIvfProbe: 8, nFullScores: 4096 }, subset);
    assert.deepEqual([...hits.ids].sort((a, b) => a - b), Array.from(subset));
  }
});

test("filters: NextPlaid's grammar is accepted", () => {
  const cols = ["_subset_", "category", "year", "title", "is_open_access"];
  for (const ok of [
    "category = ?",
    "year >= ? AND year <= ?",
    "category IN (?, ?)",
    "title LIKE ?",
    "NOT (year BETWEEN ? AND ?) OR category != ?",
    "title IS NOT NULL",
    '"category" <> ?',
    "YEAR > ?",
    "year NOT IN (?)",
    "title REGEXP ?",
    "1=1",
  ]) {
    assert.doesNotThrow(() => validateFilter(ok, cols), ok);
  }
  assert.equal(validateFilter("category IN (?, ?, ?) AND year = ?", cols).placeholders, 4);
  // What runs is rebuilt from the tokens: columns quoted (keywords as names work), stored spelling.
  assert.equal(validateFilter("YEAR >= ? and not Category like ?", cols).sql, '"year" >= ? AND NOT "category" LIKE ?');
  assert.equal(validateFilter("group = ?", ["group"]).sql, '"group" = ?');
});

test("filters: injection attempts and anything but ? values are rejected", () => {
  const cols = ["_subset_", "category", "year"];
  for (const bad of [
    "category = 'physics'",
    "year = 2020",
    "category = ?; DROP TABLE METADATA",
    "category = ? -- comment",
    "category = ? /* x */",
    "1=1 OR category = ?) UNION SELECT * FROM METADATA --",
    "(SELECT 1) = ?",
    "nosuchcolumn = ?",
    "category = ? OR sqlite_master = ?",
    "length(category) > ?",
    "category = category",
    "category = ? OR 1=1",
    "",
    "category = ? AND",
    '"unterminated = ?',
    "year >= ? DELETE",
  ]) {
    assert.throws(() => validateFilter(bad, cols), FilterError, bad);
  }
});

test("fusion: rrf weights ranks, relative_score min-max normalises each list", () => {
  const sem = { ids: [1, 2, 3], scores: [10, 8, 6] };
  const kw = { ids: [3, 4], scores: [5, 1] };
  const rrf = fuseRrf(sem, kw, 0.5, 10);
  assert.equal(rrf.ids[0], 3); // in both lists
  assert.ok(Math.abs(rrf.scores[0]! - (0.5 / 63 + 0.5 / 61)) < 1e-6);
  const rel = fuseRelative(sem, kw, 0.75, 2);
  assert.deepEqual(rel.ids, [1, 2]); // 0.75·1 ; 0.75·0.5 vs doc 3: 0 + 0.25·1
  assert.ok(Math.abs(rel.scores[0]! - 0.75) < 1e-6);
  assert.deepEqual(fuseRelative(sem, { ids: [], scores: [] }, 0.75, 1).scores, [Math.fround(0.75)]);
});
