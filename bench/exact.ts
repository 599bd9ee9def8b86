/**
 * Exact MaxSim top-k of a synthetic corpus's queries over its original embeddings, streaming the
 * seeded corpus (never held): blocks of documents padded to their longest go through the index's
 * MaxSim kernel (one GEMM against every query token at once), each query's score the sum of its
 * tokens' maxima. The ground truth of the benches' recall@10; --truth FILE caches it.
 */
import fs from "node:fs";
import { Kernels, transpose } from "../src/plaid/kernels.js";
import { syntheticStream, type SyntheticOptions } from "../test/helpers/synthetic.js";

/** Document ids (stream order) of each query's `k` best, best first. */
export async function exactTop(corpus: SyntheticOptions, queries: Float32Array[], k = 10): Promise<number[][]> {
  const dim = corpus.dim ?? 128;
  const kernels = await Kernels.create();
  const qt = queries[0]!.length / dim;
  const all = new Float32Array(queries.length * qt * dim);
  queries.forEach((q, i) => all.set(q, i * qt * dim));
  const width = queries.length * qt;
  const qT = transpose(all, width, dim);
  const top: { id: number; score: number }[][] = queries.map(() => []);
  const stream = syntheticStream(corpus);
  const BLOCK = 128;
  let id = 0;
  for (let done = false; !done; ) {
    const block: Float32Array[] = [];
    for (let r = stream.next(); ; r = stream.next()) {
      if (r.done) {
        done = true;
        break;
      }
      block.push(r.value);
      if (block.length === BLOCK) break;
    }
    if (block.length === 0) break;
    const l = Math.max(...block.map((d) => d.length / dim));
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
        let score = 0;
        for (let j = 0; j < qt; j++) score += best[i * width + q * qt + j]!;
        const list = top[q]!;
        if (list.length < k || score > list[list.length - 1]!.score) {
          list.push({ id, score });
          list.sort((a, b) => b.score - a.score);
          if (list.length > k) list.pop();
        }
      }
    }
  }
  await kernels.release();
  return top.map((l) => l.map((x) => x.id));
}

/** exactTop, read from `file` when it was written for this corpus and these queries, else computed and written there. */
export async function cachedExactTop(file: string | undefined, corpus: SyntheticOptions, queries: Float32Array[], k = 10): Promise<number[][]> {
  const key = JSON.stringify({ corpus, queries: queries.length, k });
  if (file && fs.existsSync(file)) {
    const saved = JSON.parse(fs.readFileSync(file, "utf8")) as { key: string; top: number[][] };
    if (saved.key === key) return saved.top;
  }
  const top = await exactTop(corpus, queries, k);
  if (file) fs.writeFileSync(file, JSON.stringify({ key, top }));
  return top;
}

/** Mean share of each query's exact top-k found among its answers. */
export function recallAt(found: number[][], top: number[][]): number {
  return found.reduce((a, ids, q) => a + ids.filter((x) => top[q]!.includes(x)).length / top[q]!.length, 0) / found.length;
}
