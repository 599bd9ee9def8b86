/** The small corpus and requests of the cross-backend index fixtures (generate.ts, index-sqlite.test.ts). */
import type { SearchRequest } from "../../src/plaid/types.js";
import { flatten, syntheticCorpus } from "../helpers/synthetic.js";

export const FIXTURE_DIM = 16;
const corpus = syntheticCorpus({ docs: 40, tokens: 6, dim: FIXTURE_DIM, queries: 3, queryTokens: 4, seed: 11 });

export function fixtureDocs() {
  return {
    docs: flatten(corpus.docs, FIXTURE_DIM),
    metadata: corpus.docs.map((_, i) => ({ title: `doc ${i}`, lang: i % 3 === 0 ? "de" : "en", year: 2010 + (i % 15), open: i % 2 === 0, tags: ["a", i] })),
  };
}

export function fixtureQueries(): Float32Array[] {
  return corpus.queries;
}

export function fixtureRequests(queries: Float32Array[]): SearchRequest[] {
  const base = { params: { topK: 5, nIvfProbe: 8, nFullScores: 64 }, alpha: 0.75, fusion: "relative_score" as const, filterParameters: [] as unknown[] };
  return [
    { ...base, queries: [{ data: queries[0]!, dim: FIXTURE_DIM }] },
    { ...base, queries: [{ data: queries[1]!, dim: FIXTURE_DIM }], filterCondition: "lang = ?", filterParameters: ["de"] },
    { ...base, queries: [], textQuery: ["doc"] },
    { ...base, queries: [{ data: queries[2]!, dim: FIXTURE_DIM }], textQuery: ["17"] },
  ];
}
