/**
 * The index at scale, used as NextPlaid's API is (issue #20): `colbert-serve --index-dir` in its own
 * process, fed through `POST /indices/{name}/update` in 300-document batches (as the SDK sends
 * them) while searches run, then searched at rest. Reports the time until every update is applied
 * and every background retrain done, the server's peak RSS, bytes per embedding on disk, search
 * p50 / p99 during ingestion and at rest, and recall@10 against exact MaxSim over the original
 * embeddings (computed by streaming the seeded corpus a second time: the bench never holds it).
 *
 *   node --import tsx bench/scale.ts [--docs 10000] [--tokens 100] [--dim 128] [--batch 300] [--queries 100] [--words 0] [--bulk] [--keep DIR]
 *
 * --bulk: then retrains the streamed index on all its documents (engine.retrain: the codec a bulk
 * build would have) and reports that recall and time too — the baseline for streamed = bulk.
 * --keep DIR: builds the index under DIR and keeps it.
 * --profile DIR: the server writes CPU profiles of its threads and its stall windows there (read
 * them with bench/stalls.ts DIR).
 *
 * Environment passed to the server as is (e.g. PYLATE_INDEX_RETRAIN_GROWTH).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { PlaidEngine } from "../src/plaid/engine.js";
import { syntheticStream, type SyntheticOptions } from "../test/helpers/synthetic.js";
import { machineLine } from "./checkpoints.js";
import { startIndexServer } from "./index-server.js";
import { percentiles } from "./common.js";
import { recallAt } from "./exact.js";
import { exactTopStreamed } from "../test/helpers/exact.js";

const argv = process.argv.slice(2);
const opt = (name: string, fallback: number) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback);
const N = opt("--docs", 10_000);
const dim = opt("--dim", 128);
const batch = opt("--batch", 300);
const words = opt("--words", 0);
const corpus: SyntheticOptions = { docs: N, tokens: opt("--tokens", 100), dim, queries: opt("--queries", 100), queryTokens: 32, seed: 17, words: words || undefined };
console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}`);

const keep = argv.includes("--keep") ? path.resolve(argv[argv.indexOf("--keep") + 1]!) : undefined;
if (keep) fs.mkdirSync(keep, { recursive: true });
const dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), "bench-scale-"));
const profile = argv.includes("--profile") ? path.resolve(argv[argv.indexOf("--profile") + 1]!) : undefined;
const server = await startIndexServer(dir, {
  nodeArgs: profile ? [`--cpu-prof`, `--cpu-prof-dir=${profile}`] : [],
  env: profile ? { PYLATE_STALL_LOG: profile } : {},
  log: `${dir.replace(/\/$/, "")}.server.log`,
});
const { url, call } = server;
const b64 = (a: Float32Array) => ({ embeddings_b64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64"), shape: [a.length / dim, dim] });
const params = { top_k: 10, n_ivf_probe: 8, n_full_scores: 4096 };

await call("POST", "/indices", { name: "bench", config: { nbits: 4 } });
const t0 = performance.now();
// Searches while ingesting, from a thread of their own (this one is busy generating and encoding the
// next batch: timed here, its own pauses would count as search latency): the first batch's tokens.
const probes: Float32Array[] = [];
let searcher: Worker | undefined;
const startSearcher = () =>
  new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const during = []; let stop = false; let i = 0; let longest = 0; let doing = "";
     parentPort.on("message", () => (stop = true));
     (async () => {
       while (!stop) {
         await new Promise((r) => setTimeout(r, 250));
         const t = performance.now();
         const res = await fetch(workerData.url + "/indices/bench/search", { method: "POST", headers: { "content-type": "application/json" }, body: workerData.bodies[i++ % workerData.bodies.length] });
         await res.text();
         if (res.status === 200) during.push(performance.now() - t);
         // The longest any call on the index thread has been running (an update waiting for the write lock shows here).
         const health = await (await fetch(workerData.url + "/health")).json();
         for (const th of health.index_engine?.threads ?? []) {
           if ((th.oldest_call_ms ?? 0) <= longest) continue;
           longest = th.oldest_call_ms;
           // What the update was doing then, and whether a retrain ran.
           doing = (health.updates ?? []).filter((u) => u.status === "running").map((u) => u.stage + ": " + u.message).join("; ") + (th.retraining ? " (retrain running)" : "");
         }
       }
       parentPort.postMessage({ during, longest, doing });
     })();`,
    { eval: true, workerData: { url, bodies: probes.map((q) => JSON.stringify({ queries: [b64(q)], params })) } },
  );
const stream = syntheticStream(corpus);
let sent = 0;
let tokens = 0;
let rejected = 0;
const dropped: string[] = [];
let queries: Float32Array[] = [];
for (;;) {
  const docs: Float32Array[] = [];
  let r = stream.next();
  while (!r.done) {
    docs.push(r.value);
    if (docs.length === batch) break;
    r = stream.next();
  }
  if (r.done) queries = r.value;
  if (docs.length > 0) {
    const body = { documents: docs.map(b64), metadata: docs.map((_, i) => ({ doc: sent + i })) };
    for (;;) {
      const res = await call("POST", "/indices/bench/update", body).catch((e: Error) => {
        // Counted and reported: a connection the server drops is a finding, not noise.
        dropped.push(`${e.message} (${(e.cause as Error)?.message ?? ""}) after ${sent} documents`);
        console.error(`update request failed: ${dropped.at(-1)}`);
        return { status: 0, json: undefined };
      });
      if (res.status === 202) break;
      if (res.status === 503) rejected++;
      else if (res.status !== 0) throw new Error(`update: ${res.status} ${JSON.stringify(res.json)}`);
      await new Promise((res) => setTimeout(res, 500)); // queue full: the SDK's caller retries
    }
    if (probes.length === 0) {
      probes.push(...docs.slice(0, 20).map((d) => d.subarray(0, Math.min(32, d.length / dim) * dim)));
      searcher = startSearcher();
    }
    sent += docs.length;
    tokens += docs.reduce((a, d) => a + d.length / dim, 0);
    if (sent % (batch * 20) === 0) console.error(`sent ${sent} documents, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  if (r.done) break;
}
const sentS = (performance.now() - t0) / 1000;
// Applied and settled: every document in, no update queued or running, no retrain running.
for (;;) {
  const info = await call("GET", "/indices/bench");
  const health = (await call("GET", "/health")).json;
  const busy = (health.updates ?? []).some((u: { status: string }) => u.status === "running" || u.status === "queued");
  const retraining = (health.index_engine?.threads ?? []).some((t: { retraining?: boolean }) => t.retraining);
  if (info.status === 200 && info.json.num_documents === N && !busy && !retraining) break;
  await new Promise((r) => setTimeout(r, 1000));
}
const { during, longest, doing } = await new Promise<{ during: number[]; longest: number; doing: string }>((resolve) => {
  searcher!.once("message", resolve);
  searcher!.postMessage("stop");
});
await searcher!.terminate();
const builtS = (performance.now() - t0) / 1000;
const info = (await call("GET", "/indices/bench")).json;
const indexDir = path.join(dir, "bench");
const files = fs.readdirSync(indexDir).map((f) => ({ f, size: fs.statSync(path.join(indexDir, f)).size }));
const disk = files.reduce((a, x) => a + x.size, 0);
const raw = files.filter((x) => x.f.endsWith(".raw.npy")).reduce((a, x) => a + x.size, 0);

// At rest: the real queries, twice (the first pass warms the page cache).
const rest: number[] = [];
const found: number[][] = [];
for (let pass = 0; pass < 2; pass++) {
  for (const [i, q] of queries.entries()) {
    const t = performance.now();
    const r = await call("POST", "/indices/bench/search", { queries: [b64(q)], params });
    if (pass === 1) rest.push(performance.now() - t);
    found[i] = r.json.results[0].document_ids;
  }
}
// One more batch while searching: p99 of searches while an update runs.
const extra = syntheticStream({ ...corpus, docs: batch, seed: 99, queries: 0 });
const extraDocs: Float32Array[] = [];
for (let r = extra.next(); !r.done; r = extra.next()) extraDocs.push(r.value);
const whileUpdate: number[] = [];
await call("POST", "/indices/bench/update", { documents: extraDocs.map(b64), metadata: extraDocs.map((_, i) => ({ doc: N + i })) });
for (let i = 0; ; i++) {
  const t = performance.now();
  await call("POST", "/indices/bench/search", { queries: [b64(queries[i % queries.length]!)], params });
  whileUpdate.push(performance.now() - t);
  if ((await call("GET", "/indices/bench")).json.num_documents === N + batch) break;
}
const peak = server.peakRssMb();
await server.stop();
// The serving figures now (the exact recall and the bulk retrain below take minutes at 200 k).
console.error(
  `applied in ${builtS.toFixed(0)} s (longest index-thread call ${(longest / 1000).toFixed(1)} s, ${doing || "no update running"}); peak RSS ${peak.toFixed(0)} MB; ` +
    `search during ingestion ${percentiles(during)}, at rest ${percentiles(rest)}, while an update runs ${percentiles(whileUpdate)}`,
);

// Exact MaxSim top-10 over the original embeddings, streaming the corpus again.
const top = await exactTopStreamed(corpus, queries);
const recallOf = (lists: number[][]) => recallAt(lists, top);
const recall = recallOf(found);

// The bulk baseline: the same documents under a codec trained on all of them.
let bulkLine = "";
if (argv.includes("--bulk")) {
  const engine = await PlaidEngine.create(dir);
  await engine.deleteWhere("bench", "doc >= ?", [N]); // the extra batch (the last ids: the others keep theirs)
  const t = performance.now();
  await engine.retrain("bench");
  const retrainS = (performance.now() - t) / 1000;
  const bulkFound: number[][] = [];
  for (const q of queries) {
    const [r] = await engine.search("bench", { queries: [{ data: q, dim }], params: { topK: 10, nIvfProbe: 8, nFullScores: 4096 }, alpha: 0.75, fusion: "relative_score", filterParameters: [] });
    bulkFound.push(r!.document_ids);
  }
  bulkLine = `; retrained on all (a bulk build's codec) in ${retrainS.toFixed(0)} s, K ${engine.info("bench").num_partitions}: recall@10 ${recallOf(bulkFound).toFixed(3)}`;
  await engine.close();
}

console.log(
  `${N} documents × ~${corpus.tokens} tokens (${tokens} embeddings, dim ${dim}, ${words ? `spread: ${words} words` : "clustered"}), fed in ${batch}-document updates through colbert-serve: ` +
    `updates sent in ${sentS.toFixed(0)} s (${rejected} answered 503 and were sent again, ${dropped.length} failed to send), applied and retrained in ${builtS.toFixed(0)} s (longest call on the index thread seen by /health: ${(longest / 1000).toFixed(1)} s, ${doing || "no update running"}); K ${info.num_partitions}; server peak RSS ${peak.toFixed(0)} MB; ` +
    `on disk ${(disk / 2 ** 20).toFixed(0)} MB = ${(disk / tokens).toFixed(1)} B/embedding (${((disk - raw) / tokens).toFixed(1)} without the float16 originals); ` +
    `search during ingestion ${percentiles(during)}, at rest ${percentiles(rest)}, while an update runs ${percentiles(whileUpdate)}; recall@10 vs exact ${recall.toFixed(3)}${bulkLine}`,
);
if (!keep) fs.rmSync(dir, { recursive: true, force: true });
