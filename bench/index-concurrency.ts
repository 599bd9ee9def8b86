/**
 * Does one index keep answering while another works? A 10 000-document bulk add (k-means +
 * compression of 1 M embeddings) runs on one index, then a slow request (exhaustive search of 64
 * queries: every centroid probed, every document scored), while another index is searched every
 * 100 ms and /health-style overviews are asked for: their latencies, and the build's time. Each
 * index has its own thread (client.ts), so the other index's searches only share the cores.
 *
 *   node --import tsx bench/index-concurrency.ts [--docs 10000]
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startIndexEngine } from "../src/plaid/client.js";
import type { SearchRequest } from "../src/plaid/types.js";
import { syntheticFlat } from "../test/helpers/synthetic.js";
import { machineLine } from "./checkpoints.js";

const argv = process.argv.slice(2);
const n = argv.includes("--docs") ? Number(argv[argv.indexOf("--docs") + 1]) : 10_000;
const dim = 128;
console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}`);
const big = syntheticFlat({ docs: n, tokens: 100, dim, seed: 3 });
const small = syntheticFlat({ docs: 300, tokens: 100, queries: 20, queryTokens: 32, dim, seed: 4 });
const root = fs.mkdtempSync(path.join(os.tmpdir(), "bench-conc-"));
const engine = await startIndexEngine(root);
await engine.declare("small", {});
await engine.add("small", { data: small.data, doclens: small.doclens }, dim, Array.from({ length: 300 }, () => ({})));
await engine.declare("big", {});
const req = (q: Float32Array): SearchRequest => ({ queries: [{ data: q, dim }], params: { topK: 10, nIvfProbe: 8, nFullScores: 4096 }, alpha: 0.75, fusion: "relative_score", filterParameters: [] });
const measure = async (label: string, during: Promise<unknown> | undefined) => {
  const search: number[] = [];
  const info: number[] = [];
  let done = during === undefined;
  void during?.then(() => (done = true));
  let i = 0;
  const until = Date.now() + 5_000;
  while (!done || (during === undefined && Date.now() < until)) {
    const t = performance.now();
    await engine.search("small", req(small.queries[i++ % small.queries.length]!));
    search.push(performance.now() - t);
    const t2 = performance.now();
    await engine.overview();
    info.push(performance.now() - t2);
    await new Promise((r) => setTimeout(r, 100));
  }
  const stat = (a: number[]) => {
    a.sort((x, y) => x - y);
    return `p50 ${a[Math.floor(a.length / 2)]!.toFixed(1)} / p99 ${a[Math.floor(a.length * 0.99)]!.toFixed(0)} / max ${a[a.length - 1]!.toFixed(0)} ms (${a.length})`;
  };
  console.log(`${label}: search ${stat(search)}; overview ${stat(info)}`);
};
await measure("idle", undefined);
const t0 = performance.now();
const building = engine.add("big", { data: big.data, doclens: big.doclens }, dim, Array.from({ length: n }, () => ({})));
await measure(`during a ${n}-document build`, building);
await building;
console.log(`build: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const slowQueries = syntheticFlat({ docs: 1, tokens: 1, queries: 64, queryTokens: 32, dim, seed: 5 }).queries;
const t1 = performance.now();
const slow = engine.search("big", { queries: slowQueries.map((data) => ({ data, dim })), params: { topK: 10, nIvfProbe: 65_536, nFullScores: 1_000_000 }, alpha: 0.75, fusion: "relative_score", filterParameters: [] });
await measure("during a slow request on the other index (64 exhaustive queries)", slow);
await slow;
console.log(`slow request: ${((performance.now() - t1) / 1000).toFixed(1)} s`);
await engine.close();
fs.rmSync(root, { recursive: true, force: true });
