/**
 * Synthetic ColBERT-like token embeddings for index tests and benches: unit vectors clustered
 * around topic centres (each document draws its tokens from a few "concepts" of one topic), and
 * queries made of noisy copies of one document's tokens. Seeded, so every run sees the same data.
 */
import { Rng } from "../../src/plaid/rng.js";

export interface SyntheticCorpus {
  dim: number;
  docs: Float32Array[];
  queries: Float32Array[];
}

function gaussian(rng: Rng): number {
  const u = (rng.nextU32() + 1) / 4294967297;
  const v = rng.nextU32() / 4294967296;
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

function unit(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < v.length; i++) v[i]! *= inv;
  return v;
}

export interface SyntheticOptions {
  docs: number;
  tokens: number;
  queries?: number;
  queryTokens?: number;
  dim?: number;
  topics?: number;
  seed?: number;
  /** Spread of document tokens around their concept (default 0.5). */
  noise?: number;
  /** Spread of query tokens around the document tokens they copy (default 0.5). */
  queryNoise?: number;
  /**
   * A spread corpus instead of tight concepts: each token is 0.5 · its document's topic centre + one
   * of `words` random "word" vectors + 0.3 noise, unit-normalised (token vectors spread widely, as
   * real ColBERT vocabularies do: k-means trained on a part of the corpus misses much of it).
   */
  words?: number;
}

/**
 * Documents one by one (each a fresh [tokens, dim] array, yielded), then — as the generator's
 * return value — queries drawn from random documents. Streamed, a corpus larger than memory can be
 * fed (and read again with the same options for exact search).
 */
export function* syntheticStream(opts: SyntheticOptions): Generator<Float32Array, Float32Array[], undefined> {
  const dim = opts.dim ?? 128;
  const rng = new Rng(opts.seed ?? 7);
  const topics = opts.topics ?? Math.max(4, Math.round(Math.sqrt(opts.docs)));
  const conceptsPerTopic = 32;
  /** `base` plus Gaussian noise of expected norm `noise`, renormalised. */
  const token = (base: Float32Array, noise: number) => unit(Float32Array.from(base, (x) => x + (noise * gaussian(rng)) / Math.sqrt(dim)));
  const concepts: Float32Array[] = [];
  for (let t = 0; t < topics; t++) {
    const centre = unit(Float32Array.from({ length: dim }, () => gaussian(rng)));
    for (let c = 0; c < conceptsPerTopic; c++) concepts.push(token(centre, 1.0));
  }
  // Queries come from documents picked up front, kept while generating.
  const nq = opts.queries ?? 0;
  const sources = Array.from({ length: nq }, () => rng.below(opts.docs));
  const wanted = new Set(sources);
  const kept = new Map<number, Float32Array>();
  const words = opts.words ? Array.from({ length: opts.words }, () => unit(Float32Array.from({ length: dim }, () => gaussian(rng)))) : undefined;
  const centres = words ? Array.from({ length: topics }, () => unit(Float32Array.from({ length: dim }, () => gaussian(rng)))) : undefined;
  const spread = (topic: number) => {
    const w = words![rng.below(words!.length)]!;
    const c = centres![topic]!;
    return unit(Float32Array.from(w, (x, j) => 0.5 * c[j]! + x + (0.3 * gaussian(rng)) / Math.sqrt(dim)));
  };
  for (let d = 0; d < opts.docs; d++) {
    const topic = rng.below(topics);
    const mine = Array.from({ length: 6 }, () => concepts[topic * conceptsPerTopic + rng.below(conceptsPerTopic)]!);
    const len = Math.max(1, Math.round(opts.tokens * (0.7 + 0.6 * (rng.nextU32() / 4294967296))));
    const data = new Float32Array(len * dim);
    for (let t = 0; t < len; t++) data.set(words ? spread(topic) : token(mine[rng.below(mine.length)]!, opts.noise ?? 0.5), t * dim);
    if (wanted.has(d)) kept.set(d, data);
    yield data;
  }
  const qt = opts.queryTokens ?? 32;
  return sources.map((d) => {
    const src = kept.get(d)!;
    const len = src.length / dim;
    const q = new Float32Array(qt * dim);
    for (let t = 0; t < qt; t++) {
      const i = rng.below(len);
      q.set(token(src.subarray(i * dim, (i + 1) * dim), opts.queryNoise ?? 0.5), t * dim);
    }
    return q;
  });
}

function run<T>(g: Generator<Float32Array, T, undefined>, keep: (doc: Float32Array) => void): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
    keep(r.value);
  }
}

export function syntheticCorpus(opts: SyntheticOptions): SyntheticCorpus {
  const docs: Float32Array[] = [];
  const queries = run(syntheticStream(opts), (d) => docs.push(d));
  return { dim: opts.dim ?? 128, docs, queries };
}

/** The same corpus as one [tokens, dim] array + document lengths (no per-document arrays kept). */
export function syntheticFlat(opts: SyntheticOptions): { dim: number; data: Float32Array; doclens: Int32Array; queries: Float32Array[] } {
  const dim = opts.dim ?? 128;
  let data = new Float32Array(Math.ceil(opts.docs * opts.tokens * 1.31) * dim);
  const doclens = new Int32Array(opts.docs);
  let at = 0;
  let n = 0;
  const queries = run(
    syntheticStream(opts),
    (d) => {
      if (at + d.length > data.length) {
        const bigger = new Float32Array(Math.max(data.length * 1.25, at + d.length));
        bigger.set(data.subarray(0, at));
        data = bigger;
      }
      data.set(d, at);
      at += d.length;
      doclens[n++] = d.length / dim;
    },
  );
  return { dim, data: data.subarray(0, at), doclens, queries };
}

/** Documents ([tokens, dim] arrays) as one array + lengths, as the index takes them. */
export function flatten(docs: Float32Array[], dim: number): { data: Float32Array; doclens: Int32Array } {
  const doclens = Int32Array.from(docs, (d) => d.length / dim);
  const data = new Float32Array(docs.reduce((s, d) => s + d.length, 0));
  let at = 0;
  for (const d of docs) {
    data.set(d, at);
    at += d.length;
  }
  return { data, doclens };
}
