/**
 * Exact brute-force MaxSim top-k over original embeddings: the recall reference of the index
 * benches and tests. Documents are scored in blocks padded to their longest, through the index's
 * MaxSim kernel against every query token at once; each query's score is the sum of its tokens'
 * maxima (ties: the lower document id).
 */
import { Kernels, transpose } from "../../src/plaid/kernels.js";
import { syntheticStream, type SyntheticOptions } from "./synthetic.js";

/** Document indices (in `docs` order) of each query's `k` best, best first; `docs` is read once, a block at a time. */
export async function exactTop(docs: Iterable<Float32Array>, dim: number, queries: Float32Array[], k = 10): Promise<number[][]> {
  const kernels = await Kernels.create();
  const qt = queries[0]!.length / dim;
  const all = new Float32Array(queries.length * qt * dim);
  queries.forEach((q, i) => all.set(q, i * qt * dim));
  const width = queries.length * qt;
  const qT = transpose(all, width, dim);
  const top: { id: number; score: number }[][] = queries.map(() => []);
  let id = 0;
  const score = async (block: Float32Array[]) => {
    const l = Math.max(1, ...block.map((d) => d.length / dim));
    const emb = new Float32Array(block.length * l * dim);
    const scale = new Float32Array(block.length * l);
    const mask = new Float32Array(block.length * l).fill(-Infinity);
    block.forEach((d, i) => {
      emb.set(d, i * l * dim);
      scale.fill(1, i * l, i * l + d.length / dim);
      mask.fill(0, i * l, i * l + d.length / dim);
    });
    const best = await kernels.maxSim(emb, block.length, l, dim, qT, width, scale, mask);
    for (let i = 0; i < block.length; i++, id++) {
      for (let q = 0; q < queries.length; q++) {
        let s = 0;
        for (let j = 0; j < qt; j++) s += best[i * width + q * qt + j]!;
        const list = top[q]!;
        if (list.length < k || s > list[list.length - 1]!.score) {
          list.push({ id, score: s });
          list.sort((a, b) => b.score - a.score);
          if (list.length > k) list.pop();
        }
      }
    }
  };
  try {
    let block: Float32Array[] = [];
    for (const d of docs) {
      block.push(d);
      if (block.length === 128) {
        await score(block);
        block = [];
      }
    }
    if (block.length > 0) await score(block);
  } finally {
    await kernels.release();
  }
  return top.map((l) => l.map((x) => x.id));
}

/** exactTop over documents held as one [tokens, dim] array and their lengths. */
export function exactTopK(data: Float32Array, doclens: Int32Array, dim: number, queries: Float32Array[], k = 10): Promise<number[][]> {
  function* docs(): Generator<Float32Array> {
    let at = 0;
    for (const len of doclens) {
      yield data.subarray(at * dim, (at + len) * dim);
      at += len;
    }
  }
  return exactTop(docs(), dim, queries, k);
}

/** exactTop over a synthetic corpus, streamed again from its seed (never held whole). */
export function exactTopStreamed(corpus: SyntheticOptions, queries: Float32Array[], k = 10): Promise<number[][]> {
  const stream = syntheticStream(corpus);
  function* docs(): Generator<Float32Array> {
    for (let r = stream.next(); !r.done; r = stream.next()) yield r.value;
  }
  return exactTop(docs(), corpus.dim ?? 128, queries, k);
}
