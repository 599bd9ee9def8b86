/**
 * The PLAID index on synthetic clustered token embeddings (dim 128, 4-bit, seeded): build time and
 * peak RSS (each size in its own process), bytes per token on disk, search latency at the default
 * parameters (top_k 10, 32-token queries), recall@10 against exact brute-force MaxSim on the
 * original embeddings, and the recall/latency curve over n_ivf_probe and n_full_scores. The
 * defaults are measured twice, query by query in turn: as search runs (widening past
 * n_full_scores / 4 while a candidate could still reach the top k) and with NextPlaid's fixed
 * quarter (EngineOptions.widenRescoring false); then once more with the centroid_score_threshold
 * (0.4) NextPlaid's Python SDK sends.
 *
 *   node --import tsx bench/index.ts [--docs 1000,10000,50000] [--tokens 100] [--queries 100] [--noise 0.5] [--query-noise 0.5] [--modes bulk,batches] [--words 3000] [--query-tokens 32] [--dim 128] [--batch 300] [--quick] [--grid P,…xF,…]
 *
 * `--grid 8,16x4096,8192`: recall and p50 at every n_ivf_probe × n_full_scores pair listed (after
 * the curve; with --quick, instead of it).
 *
 * `--words N`: the spread corpus (test/helpers/synthetic.ts: tokens = 0.5·topic + one of N random
 * words + 0.3 noise), where centroids trained on the first documents miss much of the corpus.
 *
 * Two ways in: "bulk" (one add of every document: NextPlaid's create, k-means over the whole
 * corpus) and "batches" (`--batch`-document adds, 300 by default, as the server's update queue makes
 * them: rebuilt while ≤ start_from_scratch, then appended with new centroids for outliers and
 * retrained in the background when grown by PYLATE_INDEX_RETRAIN_GROWTH, engine.ts; the build time
 * includes waiting for those retrains).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PlaidEngine } from "../src/plaid/engine.js";
import { exactTopK } from "../test/helpers/exact.js";
import type { SearchRequest } from "../src/plaid/types.js";
import { syntheticFlat } from "../test/helpers/synthetic.js";
import { machineLine } from "./checkpoints.js";

const self = fileURLToPath(import.meta.url);
const argv = process.argv.slice(2);
const opt = (name: string, fallback: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1]! : fallback);
/** --quick: the defaults and the exhaustive point only (no probe / n_full_scores curve). */
const quick = argv.includes("--quick");

if (argv[0] === "--one") {
  await one(Number(argv[1]), argv[2] as "bulk" | "batches", {
    tokens: Number(opt("--tokens", "100")),
    nq: Number(opt("--queries", "100")),
    noise: Number(opt("--noise", "0.5")),
    queryNoise: Number(opt("--query-noise", "0.5")),
    words: Number(opt("--words", "0")),
    queryTokens: Number(opt("--query-tokens", "32")),
    dim: Number(opt("--dim", "128")),
    batch: Number(opt("--batch", "300")),
  });
} else {
  console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}`);
  for (const n of opt("--docs", "1000,10000,50000").split(",").map(Number)) {
    const modes = argv.includes("--modes") ? opt("--modes", "").split(",") : n > 20_000 ? ["batches"] : ["bulk", "batches"];
    for (const mode of modes) {
      const pass = ["--tokens", "--queries", "--noise", "--query-noise", "--words", "--query-tokens", "--dim", "--batch", "--grid"].flatMap((f) => (argv.includes(f) ? [f, opt(f, "")] : []));
      const r = spawnSync(process.execPath, ["--import", "tsx", self, "--one", String(n), mode, ...pass, ...(quick ? ["--quick"] : [])], { stdio: "inherit" });
      if (r.status !== 0) process.exit(r.status ?? 1);
    }
  }
}

interface Settings {
  tokens: number;
  nq: number;
  noise: number;
  queryNoise: number;
  words: number;
  queryTokens: number;
  dim: number;
  batch: number;
}

async function one(n: number, mode: "bulk" | "batches", { tokens, nq, noise, queryNoise, words, queryTokens, dim, batch }: Settings): Promise<void> {
  const corpus = syntheticFlat({ docs: n, tokens, queries: nq, queryTokens, dim, seed: 17, noise, queryNoise, words: words || undefined });
  const total = corpus.doclens.reduce((a, b) => a + b, 0);
  const offsets = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i]! + corpus.doclens[i]!;
  const rssData = process.memoryUsage().rss;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bench-index-"));
  let engine = await PlaidEngine.create(root);
  engine.declare("bench", { nbits: 4 });
  const meta = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => ({ doc: from + i }));
  const t0 = performance.now();
  if (mode === "bulk") {
    await engine.add("bench", { data: corpus.data, doclens: corpus.doclens }, dim, meta(0, n));
  } else {
    for (let from = 0; from < n; from += batch) {
      const to = Math.min(n, from + batch);
      await engine.add("bench", { data: corpus.data.subarray(offsets[from]! * dim, offsets[to]! * dim), doclens: corpus.doclens.subarray(from, to) }, dim, meta(from, to));
    }
  }
  const fedS = (performance.now() - t0) / 1000;
  // Retrains run in the background: the index has converged once they are done.
  await engine.settle("bench");
  const buildS = (performance.now() - t0) / 1000;
  const peakMB = process.resourceUsage().maxRSS / 1024;
  await engine.close();
  // Searched as a server opens it: a fresh engine on the folder (codes per chunk in memory, residuals on disk).
  engine = await PlaidEngine.create(root);
  const info = engine.info("bench");
  const dir = path.join(root, "bench");
  const vectorBytes = fs.readdirSync(dir).filter((f) => f.endsWith(".npy")).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
  const allBytes = fs.readdirSync(dir).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);

  // Exact brute-force top-10 on the original embeddings.
  const truth = await exactTopK(corpus.data, corpus.doclens, dim, corpus.queries);
  // `engines` searched in turn for each query (the order alternating), so that both see the same machine.
  const runEach = async (params: SearchRequest["params"], engines: PlaidEngine[]) => {
    const lat = engines.map(() => [] as number[]);
    const recall = engines.map(() => 0);
    for (const [i, q] of corpus.queries.entries()) {
      for (const j of engines.keys()) {
        const e = i % 2 ? engines.length - 1 - j : j;
        const t = performance.now();
        const [r] = await engines[e]!.search("bench", { queries: [{ data: q, dim }], params, alpha: 0.75, fusion: "relative_score", filterParameters: [] });
        lat[e]!.push(performance.now() - t);
        recall[e] += r!.document_ids.filter((id) => truth[i]!.includes(id)).length / 10;
      }
    }
    return engines.map((_, e) => {
      const l = lat[e]!.sort((a, b) => a - b);
      return { recall: recall[e]! / corpus.queries.length, p50: l[Math.floor(l.length / 2)]!, p90: l[Math.floor(l.length * 0.9)]! };
    });
  };
  const run = async (params: SearchRequest["params"]) => (await runEach(params, [engine]))[0]!;
  // The defaults, and the same with NextPlaid's rescoring (the best n_full_scores / 4 decompressed, no widening).
  const fixedEngine = await PlaidEngine.create(root, undefined, undefined, { widenRescoring: false });
  const defaults = { topK: 10, nIvfProbe: 8, nFullScores: 4096 };
  await runEach(defaults, [engine, fixedEngine]); // warm-up
  const [def, fixed] = (await runEach(defaults, [engine, fixedEngine])).map((r) => r!);
  await fixedEngine.close();
  // What NextPlaid's Python SDK sends with every search (centroid_score_threshold 0.4; the server's default is off).
  const sdk = await run({ topK: 10, nIvfProbe: 8, nFullScores: 4096, centroidScoreThreshold: 0.4 });
  console.log(
    `${n} docs × ~${tokens} tokens (${total} embeddings, ${words ? `spread: ${words} words` : `noise ${noise}/${queryNoise}`}, ${queryTokens}-token queries, dim ${dim}), ${mode === "bulk" ? "bulk" : `batches of ${batch}${process.env["PYLATE_INDEX_RETRAIN_GROWTH"] ? `, retrain growth ${process.env["PYLATE_INDEX_RETRAIN_GROWTH"]}` : ""}`}: build ${buildS.toFixed(1)} s${mode === "bulk" ? "" : ` (updates done at ${fedS.toFixed(1)} s, then background retraining)`}, peak RSS ${peakMB.toFixed(0)} MB (${(rssData / 2 ** 20).toFixed(0)} MB of it the corpus), ` +
      `K ${info.num_partitions}, ${(vectorBytes / total).toFixed(1)} B/token vectors (${(allBytes / total).toFixed(1)} with metadata.db); ` +
      `defaults: recall@10 ${def.recall.toFixed(3)}, p50 ${def.p50.toFixed(1)} ms, p90 ${def.p90.toFixed(1)} ms (NextPlaid's fixed quarter: ${fixed.recall.toFixed(3)}, ${fixed.p50.toFixed(1)} / ${fixed.p90.toFixed(1)} ms; with the SDK's centroid_score_threshold 0.4: ${sdk.recall.toFixed(3)}, ${sdk.p50.toFixed(1)} / ${sdk.p90.toFixed(1)} ms)`,
  );
  const mem = engine.memory("bench");
  console.log(`  loaded and searched: ${mem.segments} chunks, ${(mem.bytes / 2 ** 20).toFixed(1)} MB in memory = ${(mem.bytes / mem.embeddings).toFixed(1)} B per embedding (residuals ${mem.residualBytes ? "in memory" : "read from disk"})`);
  const curve: string[] = [];
  for (const p of quick ? [] : [1, 2, 4, 16, 32]) {
    const r = await run({ topK: 10, nIvfProbe: p, nFullScores: 4096 });
    curve.push(`probe ${p}: ${r.recall.toFixed(3)} / ${r.p50.toFixed(1)} ms`);
  }
  for (const f of quick ? [] : [256, 1024, 8192]) {
    const r = await run({ topK: 10, nIvfProbe: 8, nFullScores: f });
    curve.push(`full ${f}: ${r.recall.toFixed(3)} / ${r.p50.toFixed(1)} ms`);
  }
  // --grid P,P…xF,F…: every n_ivf_probe × n_full_scores pair (where the two limits interact).
  const [probes, fulls] = (argv.includes("--grid") ? opt("--grid", "") : "x").split("x").map((l) => l.split(",").filter(Boolean).map(Number));
  for (const p of probes!) {
    for (const f of fulls!) {
      const r = await run({ topK: 10, nIvfProbe: p, nFullScores: f });
      curve.push(`probe ${p} × full ${f}: ${r.recall.toFixed(3)} / ${r.p50.toFixed(1)} ms`);
    }
  }
  const exhaustive = await run({ topK: 10, nIvfProbe: 65_536, nFullScores: 1_000_000 });
  curve.push(`exhaustive (every centroid, every candidate scored): ${exhaustive.recall.toFixed(3)} / ${exhaustive.p50.toFixed(1)} ms`);
  console.log(`  curve (recall@10 / p50): ${curve.join("; ")}`);
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
}
