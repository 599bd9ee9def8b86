/**
 * Recall@10 of the benches: exact MaxSim top-10 of a synthetic corpus's queries
 * (test/helpers/exact.ts, streaming the seeded corpus again), cached in a file for a kept index.
 */
import fs from "node:fs";
import { exactTopStreamed } from "../test/helpers/exact.js";
import type { SyntheticOptions } from "../test/helpers/synthetic.js";

/** exactTopStreamed, read from `file` when it was written for this corpus and these queries, else computed and written there. */
export async function cachedExactTop(file: string | undefined, corpus: SyntheticOptions, queries: Float32Array[], k = 10): Promise<number[][]> {
  const key = JSON.stringify({ corpus, queries: queries.length, k });
  if (file && fs.existsSync(file)) {
    const saved = JSON.parse(fs.readFileSync(file, "utf8")) as { key: string; top: number[][] };
    if (saved.key === key) return saved.top;
  }
  const top = await exactTopStreamed(corpus, queries, k);
  if (file) fs.writeFileSync(file, JSON.stringify({ key, top }));
  return top;
}

/** Mean share of each query's exact top-k found among its answers. */
export function recallAt(found: number[][], top: number[][]): number {
  return found.reduce((a, ids, q) => a + ids.filter((x) => top[q]!.includes(x)).length / top[q]!.length, 0) / found.length;
}
