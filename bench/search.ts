/**
 * Search latency on an index that already exists (e.g. one bench/scale.ts built with --keep), in
 * this process through the library: the corpus's queries (regenerated from the same seed), each
 * searched once to warm the page cache, then --repeat times (default 1) timed; then p50 / p99, and the
 * memory the index holds once loaded (RSS after minus before opening it, per embedding: residuals
 * stay on disk, so this is what grows with the corpus) and what searching it adds (working buffers).
 * Run it from two worktrees to compare two versions on one index; run node with --expose-gc for
 * steadier RSS figures.
 *
 *   node --import tsx bench/search.ts --dir DIR [--name bench] [--docs 10000] [--tokens 100] [--dim 128] [--queries 100] [--words 0] [--probe 8] [--full 4096] [--repeat 1]
 */
import { createHash } from "node:crypto";
import { PlaidEngine } from "../src/plaid/engine.js";
import { syntheticStream } from "../test/helpers/synthetic.js";
import { machineLine } from "./checkpoints.js";

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

const stream = syntheticStream(corpus);
let r = stream.next();
while (!r.done) r = stream.next();
const queries = r.value;

const collect = () => (globalThis as { gc?: () => void }).gc?.();
const rss = () => (collect(), process.memoryUsage().rss);
// No background retrain (one due would resume when the index opens): searches only.
const engine = await PlaidEngine.create(dir, undefined, undefined, { retrainGrowth: 0 });
const rssEngine = rss();
const info = engine.info(name);
const rssLoaded = rss();
const times: number[] = [];
// What the searches answered, as one digest: two versions that should agree print the same one.
const answers = createHash("sha256");
for (let pass = 0; pass <= repeat; pass++) {
  for (const q of queries) {
    const t = performance.now();
    const [r] = await engine.search(name, { queries: [{ data: q, dim }], params, alpha: 0.75, fusion: "relative_score", filterParameters: [] });
    if (pass > 0) times.push(performance.now() - t);
    else answers.update(JSON.stringify([r!.document_ids, r!.scores]));
  }
}
const rssSearched = rss();
await engine.close();
times.sort((a, b) => a - b);
console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}`);
console.log(
  `${info.num_documents} documents, ${info.num_embeddings} embeddings, K ${info.num_partitions}; n_ivf_probe ${params.nIvfProbe}, n_full_scores ${params.nFullScores}: ` +
    `search p50 ${times[Math.floor(times.length / 2)]!.toFixed(1)} / p99 ${times[Math.min(times.length - 1, Math.floor(times.length * 0.99))]!.toFixed(1)} ms (${times.length} queries); ` +
    `RSS: the loaded index ${((rssLoaded - rssEngine) / 2 ** 20).toFixed(0)} MB = ${((rssLoaded - rssEngine) / info.num_embeddings).toFixed(1)} B/embedding, ` +
    `+${((rssSearched - rssLoaded) / 2 ** 20).toFixed(0)} MB once searched (working buffers, page-ins), engine alone ${(rssEngine / 2 ** 20).toFixed(0)} MB; answers ${answers.digest("hex").slice(0, 12)}`,
);
