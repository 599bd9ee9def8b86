/** Exact brute-force MaxSim top-k over original embeddings (GEMM per query, then per-document max): the recall reference of the index benches and tests. */
import { Kernels, transpose } from "../../src/plaid/kernels.js";

export async function exactTopK(data: Float32Array, doclens: Int32Array, dim: number, queries: Float32Array[], k = 10): Promise<number[][]> {
  const n = doclens.length;
  const offsets = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i]! + doclens[i]!;
  const total = offsets[n]!;
  const kernels = await Kernels.create();
  const truth: number[][] = [];
  for (const q of queries) {
    const qt = q.length / dim;
    const sim = await kernels.matmul(data, total, dim, transpose(q, qt, dim), qt);
    const scores = new Float64Array(n);
    const best = new Float32Array(qt);
    for (let d = 0; d < n; d++) {
      best.fill(-Infinity);
      for (let t = offsets[d]!; t < offsets[d + 1]!; t++) for (let j = 0; j < qt; j++) if (sim[t * qt + j]! > best[j]!) best[j] = sim[t * qt + j]!;
      scores[d] = best.reduce((a, b) => a + b, 0);
    }
    truth.push(Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]!).slice(0, k));
  }
  await kernels.release();
  return truth;
}
