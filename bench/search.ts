/**
 * Search latency on an index that already exists (e.g. one bench/scale.ts built with --keep): the
 * corpus's queries (regenerated from the same seed, or read from --cache FILE once written there),
 * each searched once to warm the page cache, then --repeat times (default 1) timed; then p50 / p99
 * and a digest of the answers (two versions that should agree print the same one); with --truth
 * FILE also recall@10 against exact MaxSim over the original embeddings (bench/exact.ts, computed
 * once by streaming the corpus again, then read from FILE).
 *
 * In this process through the library (default): also the memory the index holds once loaded (RSS
 * after minus before opening it, per embedding: residuals stay on disk, so this is what grows with
 * the corpus) and what searching it adds (working buffers). With --server: through `colbert-serve
 * --index-dir DIR` in its own process (background retrains off), each query a `POST
 * /indices/{name}/search` as the SDK sends it. With --server --model MODEL (an export whose
 * embedding_dim is the index's): the server also loads the model, and each query is a text sent to
 * `search_with_encoding` (encoding and search on the same cores, as a text-query deployment runs);
 * the same texts through /encode alone are timed too. Run it from two worktrees to compare two versions on
 * one index; run node with --expose-gc for steadier RSS figures.
 *
 *   node --import tsx bench/search.ts --dir DIR [--name bench] [--docs 10000] [--tokens 100] [--dim 128] [--queries 100] [--words 0] [--probe 8] [--full 4096] [--repeat 1] [--cache FILE] [--truth FILE] [--server [--model MODEL]]
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import { PlaidEngine } from "../src/plaid/engine.js";
import { syntheticStream } from "../test/helpers/synthetic.js";
import { machineLine } from "./checkpoints.js";
import { startIndexServer } from "./index-server.js";
import { fillerText, percentiles } from "./common.js";
import { cachedExactTop, recallAt } from "./exact.js";

const argv = process.argv.slice(2);
const opt = (name: string, fallback: number) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback);
const str = (name: string, fallback?: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1]! : fallback);
const dir = str("--dir");
if (!dir) throw new Error("--dir DIR: an index folder's parent (colbert-serve --index-dir)");
const name = str("--name", "bench")!;
const dim = opt("--dim", 128);
const words = opt("--words", 0);
const corpus = { docs: opt("--docs", 10_000), tokens: opt("--tokens", 100), dim, queries: opt("--queries", 100), queryTokens: 32, seed: 17, words: words || undefined };
const params = { topK: 10, nIvfProbe: opt("--probe", 8), nFullScores: opt("--full", 4096) };
const repeat = opt("--repeat", 1);
const cache = str("--cache");

/** The corpus's queries: from the cache when it was written for this corpus, else generated (minutes at 200 k documents). */
function loadQueries(): Float32Array[] {
  const key = JSON.stringify(corpus);
  if (cache && fs.existsSync(cache) && fs.existsSync(`${cache}.json`) && fs.readFileSync(`${cache}.json`, "utf8") === key) {
    const b = fs.readFileSync(cache);
    const all = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    const size = corpus.queryTokens * dim;
    return Array.from({ length: all.length / size }, (_, i) => all.slice(i * size, (i + 1) * size));
  }
  const stream = syntheticStream(corpus);
  let r = stream.next();
  while (!r.done) r = stream.next();
  if (cache) {
    fs.writeFileSync(cache, Buffer.concat(r.value.map((q) => Buffer.from(q.buffer, q.byteOffset, q.byteLength))));
    fs.writeFileSync(`${cache}.json`, key);
  }
  return r.value;
}
const queries = loadQueries();

type Answer = { document_ids: number[]; scores: number[] };
const times: number[] = [];
// What the searches answered, as one digest: two versions that should agree print the same one.
const answers = createHash("sha256");
const found: number[][] = [];
async function timed(searchOne: (q: Float32Array) => Promise<Answer>): Promise<void> {
  for (let pass = 0; pass <= repeat; pass++) {
    for (const q of queries) {
      const t = performance.now();
      const r = await searchOne(q);
      if (pass > 0) times.push(performance.now() - t);
      else {
        answers.update(JSON.stringify([r.document_ids, r.scores]));
        found.push(r.document_ids);
      }
    }
  }
}

let info: { num_documents: number; num_embeddings: number; num_partitions: number };
let memory = "";
if (argv.includes("--server")) {
  const model = str("--model");
  let via = "";
  if (model && str("--truth")) throw new Error("--truth with --model: text queries are not the corpus's queries (no recall to measure)");
  const server = await startIndexServer(dir, { env: { PYLATE_INDEX_RETRAIN_GROWTH: "0" }, args: model ? ["--model", model] : [] });
  const call = async (method: string, route: string, body?: unknown) => {
    const r = await server.call(method, route, body);
    if (r.status !== 200) throw new Error(`${method} ${route}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
  };
  const body = { top_k: params.topK, n_ivf_probe: params.nIvfProbe, n_full_scores: params.nFullScores };
  try {
    info = await call("GET", `/indices/${name}`);
    if (model) {
      // Texts of 30 words (the query length the model pads to), one per query, the same every run.
      const texts = new Map(queries.map((q, i) => [q, fillerText(i, 30)]));
      const encodeTimes: number[] = [];
      for (let pass = 0; pass <= repeat; pass++) {
        for (const text of texts.values()) {
          const t = performance.now();
          await call("POST", "/encode", { texts: [text], input_type: "query" });
          if (pass > 0) encodeTimes.push(performance.now() - t);
        }
      }
      await timed(async (q) => (await call("POST", `/indices/${name}/search_with_encoding`, { queries: [texts.get(q)], params: body })).results[0]);
      via = `, texts through search_with_encoding (model ${model}; /encode alone ${percentiles(encodeTimes, "queries")})`;
    } else {
      await timed(async (q) => {
        const r = await call("POST", `/indices/${name}/search`, { queries: [{ embeddings_b64: Buffer.from(q.buffer, q.byteOffset, q.byteLength).toString("base64"), shape: [q.length / dim, dim] }], params: body });
        return r.results[0];
      });
    }
    memory = `through colbert-serve${via} (server peak RSS ${server.peakRssMb().toFixed(0)} MB)`;
  } finally {
    await server.stop();
  }
} else {
  const collect = () => (globalThis as { gc?: () => void }).gc?.();
  const rss = () => (collect(), process.memoryUsage().rss);
  // No background retrain (one due would resume when the index opens): searches only.
  const engine = await PlaidEngine.create(dir, undefined, undefined, { retrainGrowth: 0 });
  const rssEngine = rss();
  info = engine.info(name);
  const rssLoaded = rss();
  await timed(async (q) => (await engine.search(name, { queries: [{ data: q, dim }], params, alpha: 0.75, fusion: "relative_score", filterParameters: [] }))[0]!);
  const rssSearched = rss();
  await engine.close();
  memory =
    `in process; RSS: the loaded index ${((rssLoaded - rssEngine) / 2 ** 20).toFixed(0)} MB = ${((rssLoaded - rssEngine) / info.num_embeddings).toFixed(1)} B/embedding, ` +
    `+${((rssSearched - rssLoaded) / 2 ** 20).toFixed(0)} MB once searched (working buffers, page-ins), engine alone ${(rssEngine / 2 ** 20).toFixed(0)} MB`;
}
const truth = str("--truth");
const recall = truth ? `; recall@10 vs exact ${recallAt(found, await cachedExactTop(truth, corpus, queries)).toFixed(3)}` : "";
console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}`);
console.log(
  `${info.num_documents} documents, ${info.num_embeddings} embeddings, K ${info.num_partitions}; n_ivf_probe ${params.nIvfProbe}, n_full_scores ${params.nFullScores}: ` +
    `search ${percentiles(times, "queries")}, ${memory}; answers ${answers.digest("hex").slice(0, 12)}${recall}`,
);
