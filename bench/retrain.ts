/**
 * #20 experiment: how much of a bulk build's recall does a streamed index get back by re-training
 * its codec? Three snapshots of the same documents, built with src/plaid/plaid.ts directly:
 * "streamed" (built on the first 900 documents, then 300-document appends with centroid expansion,
 * as the engine does past start_from_scratch), "retrained from decompressed" (the streamed index's
 * decompressed vectors re-clustered and re-encoded: no raw vectors kept), "float16" (a rebuild
 * from the originals rounded to float16, as they would be kept on disk), and "bulk" (one build on
 * the originals). recall@10 against exact MaxSim at the default search parameters and exhaustively.
 *
 *   node --import tsx bench/retrain.ts [--docs 4000] [--tokens 40] [--words 3000] [--query-tokens 8]
 */
import { decompress } from "../src/plaid/codec.js";
import { Kernels } from "../src/plaid/kernels.js";
import { append, build, memoryDocs, numTokens, search, type PlaidSnapshot, type SearchParams } from "../src/plaid/plaid.js";
import { syntheticFlat } from "../test/helpers/synthetic.js";
import { machineLine } from "./checkpoints.js";
import { exactTopK } from "../test/helpers/exact.js";

const argv = process.argv.slice(2);
const opt = (name: string, fallback: number) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback);
const n = opt("--docs", 4000);
const words = opt("--words", 3000);
const dim = 128;
const corpus = syntheticFlat({ docs: n, tokens: opt("--tokens", 40), queries: 100, queryTokens: opt("--query-tokens", 8), dim, seed: 17, words: words || undefined });
const offsets = new Int32Array(n + 1);
for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i]! + corpus.doclens[i]!;
const slice = (from: number, to: number) => ({ data: corpus.data.subarray(offsets[from]! * dim, offsets[to]! * dim), doclens: corpus.doclens.subarray(from, to) });
const truth = await exactTopK(corpus.data, corpus.doclens, dim, corpus.queries);
const kernels = await Kernels.create();
const opts = { nbits: 4 as const, seed: 42, };

const recall = async (snap: PlaidSnapshot, params: SearchParams) => {
  let r = 0;
  for (const [i, q] of corpus.queries.entries()) {
    const hits = await search(kernels, snap, q, q.length / dim, params);
    r += hits.ids.filter((id) => truth[i]!.includes(id)).length / 10;
  }
  return r / corpus.queries.length;
};
const report = async (label: string, snap: PlaidSnapshot, seconds: number) => {
  const def = await recall(snap, { topK: 10, nIvfProbe: 8, nFullScores: 4096 });
  const all = await recall(snap, { topK: 10, nIvfProbe: 65_536, nFullScores: 1_000_000 });
  console.log(`${label}: K ${snap.codec.k}, recall@10 ${def.toFixed(3)} at the defaults, ${all.toFixed(3)} exhaustive (${seconds.toFixed(1)} s)`);
};

console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}; ${n} docs, ${numTokensOf()} embeddings, ${words ? `spread corpus (${words} words)` : "clustered corpus"}`);
function numTokensOf() {
  return offsets[n]!;
}

let t = performance.now();
let streamed = await build(kernels, memoryDocs(slice(0, Math.min(900, n)), dim), opts);
for (let from = 900; from < n; from += 300) streamed = await append(kernels, streamed, slice(from, Math.min(n, from + 300)), opts);
await report("streamed (900 then 300-doc appends)", streamed, (performance.now() - t) / 1000);

t = performance.now();
const tokens = numTokens(streamed);
const recon = new Float32Array(tokens * dim);
decompress(streamed.codec, streamed.lut, streamed.codes, streamed.residuals, 0, tokens, recon);
const retrained = await build(kernels, memoryDocs({ data: recon, doclens: streamed.doclens }, dim), opts);
await report("retrained from its decompressed vectors", retrained, (performance.now() - t) / 1000);

t = performance.now();
const halves = corpus.data.map(toHalfAndBack);
const fromHalves = await build(kernels, memoryDocs({ data: halves, doclens: corpus.doclens }, dim), opts);
await report("rebuilt from the originals stored as float16 (2 B per dimension on disk)", fromHalves, (performance.now() - t) / 1000);

t = performance.now();
const bulk = await build(kernels, memoryDocs({ data: corpus.data, doclens: corpus.doclens }, dim), opts);
await report("bulk (one build on the originals)", bulk, (performance.now() - t) / 1000);
await kernels.release();

/** x rounded to the nearest float16 (round-to-nearest-even on the mantissa; unit vectors: no overflow, subnormals flushed). */
function toHalfAndBack(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const e = Math.floor(Math.log2(Math.abs(x)));
  if (e < -14) return 0;
  const scale = 2 ** (e - 10);
  const q = x / scale;
  const r = Math.round(q);
  // Ties to even, as the hardware conversion does.
  const even = Math.abs(q - Math.trunc(q)) === 0.5 ? 2 * Math.round(q / 2) : r;
  return even * scale;
}
