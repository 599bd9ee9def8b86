/**
 * One request must never freeze the index engine: a catastrophic REGEXP runs in linear time, an
 * operation past its time budget answers 408 and its index's thread restarts on the committed
 * state, other indices answer meanwhile (each index has its own thread), /health says when the
 * engine is busy or restarting, and bodies that ask for huge allocations are refused up front.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { createServer } from "../src/server/server.js";
import { startIndexEngine, type RemoteEngine } from "../src/plaid/client.js";
import { IndexError, type SearchRequest } from "../src/plaid/types.js";
import { tempDir } from "./helpers/fixtures.js";
import { flatten, syntheticCorpus } from "./helpers/synthetic.js";

const DIM = 32;
const big = syntheticCorpus({ docs: 1000, tokens: 20, dim: DIM, queries: 40, queryTokens: 32, seed: 3 });
const small = syntheticCorpus({ docs: 60, tokens: 10, dim: DIM, queries: 2, queryTokens: 8, seed: 4 });
const b64 = (a: Float32Array) => ({ embeddings_b64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64"), shape: [a.length / DIM, DIM] });

let root: string;
let engine: RemoteEngine;
let base: string;
let server: http.Server;

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; at: number }> {
  const res = await fetch(base + path, { method, headers: body === undefined ? {} : { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, at: performance.now() };
}

const searchBody = (queries: Float32Array[], params: Record<string, number> = { top_k: 5 }) => ({ queries: queries.map(b64), params });

before(async () => {
  root = tempDir("index-isolation-");
  engine = await startIndexEngine(root, { threads: 1, requestTimeoutMs: 1500, busyAfterMs: 300 });
  server = createServer({ indexEngine: engine, indexDir: root });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await engine.declare("a", {});
  await engine.add("a", flatten(big.docs, DIM), DIM, big.docs.map((_, i) => ({ i })));
  await engine.declare("b", {});
  await engine.add("b", flatten(small.docs, DIM), DIM, small.docs.map((_, i) => ({ i })));
  await engine.declare("t", {});
  const two = small.docs.slice(0, 2);
  await engine.add("t", flatten(two, DIM), DIM, [{ s: "a".repeat(30_000) + "!" }, { s: "aaaa" }]);
});

after(async () => {
  server.close();
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("a catastrophic REGEXP answers at once (linear-time engine); RE2-only syntax is refused with 400", async () => {
  const r = await call("POST", "/indices/t/metadata/query", { condition: "s REGEXP ?", parameters: ["(a+)+$"] });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.document_ids, [1]);
  const back = await call("POST", "/indices/t/metadata/query", { condition: "s REGEXP ?", parameters: ["(a)\\1"] });
  assert.equal(back.status, 400);
  assert.match(back.json.message, /RE2 syntax/);
  // Filtered search uses the same engine.
  const f = await call("POST", "/indices/t/search/filtered", { ...searchBody(small.queries.slice(0, 1)), filter_condition: "s REGEXP ?", filter_parameters: ["^(a|aa)+$"] });
  assert.equal(f.status, 200);
  assert.deepEqual(f.json.results[0].document_ids, [1]);
});

test("a search past its budget answers 408; another index answers meanwhile; /health says busy then recovers; the index serves its committed state after", { timeout: 120_000 }, async () => {
  const q = small.queries.slice(0, 1);
  const beforeA = await call("POST", "/indices/a/search", searchBody(big.queries.slice(0, 1)));
  assert.equal(beforeA.status, 200);
  // 40 exhaustive queries over 1000 documents: ~5 s of real work on this machine's cores.
  const slow = call("POST", "/indices/a/search", searchBody(big.queries, { top_k: 10, n_ivf_probe: 65_536, n_full_scores: 1_000_000 }));
  await new Promise((r) => setTimeout(r, 500));
  const health = await call("GET", "/health");
  assert.equal(health.json.status, "degraded");
  assert.equal(health.json.index_engine.status, "busy");
  assert.equal(health.json.index_engine.threads.find((t: { index: string }) => t.index === "a").state, "busy");
  const other = await call("POST", "/indices/b/search", searchBody(q));
  assert.equal(other.status, 200);
  assert.equal(other.json.results[0].document_ids.length, 5);
  const r = await slow;
  assert.ok(other.at < r.at, "index b answered while index a was still working");
  assert.equal(r.status, 408);
  assert.equal(r.json.code, "REQUEST_TIMEOUT");
  // The index's thread was replaced: same answers as before, from the committed state.
  const afterA = await call("POST", "/indices/a/search", searchBody(big.queries.slice(0, 1)));
  assert.equal(afterA.status, 200);
  assert.deepEqual(afterA.json, beforeA.json);
  const status = engine.status();
  assert.equal(status.status, "ready");
  assert.equal(status.threads.find((t) => t.index === "a")!.restarts, 1);
  assert.equal((await call("GET", "/health")).json.status, "healthy");
});

test("an update past its write budget commits nothing; the index keeps serving its state and takes the next update", { timeout: 120_000 }, async () => {
  const dir = tempDir("index-write-budget-");
  const setup = await startIndexEngine(dir, { threads: 1 });
  await setup.declare("w", {});
  await setup.add("w", flatten(small.docs, DIM), DIM, small.docs.map((_, i) => ({ i })));
  await setup.close();
  const e = await startIndexEngine(dir, { threads: 1, writeTimeoutMs: 1000 });
  try {
    const req: SearchRequest = { queries: [{ data: small.queries[0]!, dim: DIM }], params: { topK: 5, nIvfProbe: 8, nFullScores: 64 }, alpha: 0.75, fusion: "rrf", filterParameters: [] };
    const before = await e.search("w", req);
    // 8 000 documents re-cluster the index: seconds of k-means and compression on one thread, far past 1 s.
    const many = Array.from({ length: 8 }, () => big.docs).flat();
    await assert.rejects(
      e.add("w", flatten(many, DIM), DIM, many.map((_, i) => ({ j: i }))),
      (err: unknown) => err instanceof IndexError && err.code === "REQUEST_TIMEOUT",
    );
    assert.equal((await e.info("w")).num_documents, small.docs.length);
    assert.equal((await e.metadataCount("w")).count, small.docs.length);
    assert.deepEqual(await e.search("w", req), before);
    await e.add("w", flatten(small.docs.slice(0, 3), DIM), DIM, [{ i: 60 }, { i: 61 }, { i: 62 }]);
    assert.equal((await e.info("w")).num_documents, small.docs.length + 3);
    assert.deepEqual(await e.matching("w", "i >= ?", [60]), [60, 61, 62]);
  } finally {
    await e.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("dropping an index while a request runs on it ends that request at once (not at its budget), and no thread is left behind", { timeout: 120_000 }, async () => {
  const dir = tempDir("index-drop-");
  const e = await startIndexEngine(dir, { threads: 1, requestTimeoutMs: 600_000 });
  try {
    await e.declare("d", {});
    await e.add("d", flatten(big.docs, DIM), DIM, big.docs.map((_, i) => ({ i })));
    const slow = e.search("d", { queries: big.queries.map((data) => ({ data, dim: DIM })), params: { topK: 10, nIvfProbe: 65_536, nFullScores: 1_000_000 }, alpha: 0.75, fusion: "rrf", filterParameters: [] });
    const outcome = slow.then(() => "answered", (err: Error) => err.message);
    await new Promise((r) => setTimeout(r, 300));
    await e.drop("d");
    const settled = await Promise.race([outcome, new Promise((r) => setTimeout(() => r("still waiting after 30 s"), 30_000).unref())]);
    assert.ok(settled === "answered" || /closed|stopping/.test(String(settled)), String(settled));
    assert.deepEqual(e.status().threads, [], "the dropped index's thread is gone");
    assert.deepEqual(await e.list(), []);
  } finally {
    await e.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("bodies that ask for huge allocations get a 4xx before anything is allocated", { timeout: 60_000 }, async () => {
  const rss0 = process.memoryUsage().rss;
  const q = b64(small.queries[0]!);
  const bombs: [string, unknown, number][] = [
    ["/indices/b/search", { queries: [{ embeddings_b64: q.embeddings_b64, shape: [1e9, 128] }] }, 400],
    ["/indices/b/search", { queries: [q], params: { top_k: 1e9 } }, 422],
    ["/indices/b/search", { queries: [q], params: { n_full_scores: 1e9 } }, 422],
    ["/indices/b/search", { queries: [q], params: { n_ivf_probe: 1e9 } }, 422],
    ["/indices/b/search", { queries: [q], subset: new Array(1_000_001).fill(0) }, 422],
    ["/indices/b/metadata/get", { document_ids: new Array(1_000_001).fill(0) }, 422],
    ["/indices/b/update", { documents: [{ embeddings_b64: q.embeddings_b64, shape: [1e9, 128] }], metadata: [{}] }, 400],
  ];
  for (const [path, body, status] of bombs) {
    const r = await call("POST", path, body);
    assert.equal(r.status, status, `${path} ${JSON.stringify(body).slice(0, 120)}: ${JSON.stringify(r.json)}`);
    assert.ok(typeof r.json.message === "string" && r.json.message.length > 0);
  }
  // Up to the limits, the work stays bounded by the index: a probe of every centroid is fine.
  const wide = await call("POST", "/indices/b/search", { queries: [q], params: { top_k: 100_000, n_ivf_probe: 65_536 } });
  assert.equal(wide.status, 200);
  assert.equal(wide.json.results[0].document_ids.length, small.docs.length);
  const limited = await call("POST", "/indices/b/metadata/get", { condition: "i >= ?", parameters: [0], limit: 1e9 });
  assert.equal(limited.status, 200);
  assert.equal(limited.json.metadata.length, small.docs.length);
  assert.ok(process.memoryUsage().rss - rss0 < 256 * 2 ** 20, `RSS grew by ${Math.round((process.memoryUsage().rss - rss0) / 2 ** 20)} MB`);
});
