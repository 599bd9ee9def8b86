/** Hybrid search: fusing a semantic and a keyword ranking as NextPlaid does (search.rs, text_search.rs). */
import type { Hits } from "./plaid.js";

export type Fusion = "relative_score" | "rrf";
const RRF_K = 60;

/** Reciprocal rank fusion: Σ weight / (60 + rank + 1), semantic weighted by alpha, keyword by 1 − alpha. */
export function fuseRrf(semantic: Hits, keyword: Hits, alpha: number, topK: number): Hits {
  const score = new Map<number, number>();
  semantic.ids.forEach((id, r) => score.set(id, (score.get(id) ?? 0) + alpha / (RRF_K + r + 1)));
  keyword.ids.forEach((id, r) => score.set(id, (score.get(id) ?? 0) + (1 - alpha) / (RRF_K + r + 1)));
  return ranked(score, topK);
}

/** Min-max normalises each list to [0, 1] (all equal → 1), then alpha·semantic + (1 − alpha)·keyword. */
export function fuseRelative(semantic: Hits, keyword: Hits, alpha: number, topK: number): Hits {
  const score = new Map<number, number>();
  const add = (h: Hits, w: number) => {
    if (h.ids.length === 0) return;
    const max = Math.max(...h.scores);
    const min = Math.min(...h.scores);
    h.ids.forEach((id, i) => score.set(id, (score.get(id) ?? 0) + w * (max === min ? 1 : (h.scores[i]! - min) / (max - min))));
  };
  add(semantic, alpha);
  add(keyword, 1 - alpha);
  return ranked(score, topK);
}

function ranked(score: Map<number, number>, topK: number): Hits {
  const entries = [...score].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, topK);
  return { ids: entries.map((e) => e[0]), scores: entries.map((e) => Math.fround(e[1])) };
}
