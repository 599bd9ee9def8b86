/**
 * The index API over HTTP, as NextPlaid's server answers it: every route with its errors
 * (400/404/409/422/503), asynchronous updates visible in /health, filters whose injection attempts
 * get 400 and change nothing, keyword/hybrid search, deletes with renumbering, and — with a model —
 * update_with_encoding and search_with_encoding.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { createServer } from "../src/server/server.js";
import { UpdateQueues, UpdateTracker } from "../src/server/updates.js";
import { startIndexEngine, type RemoteEngine } from "../src/plaid/client.js";
import { ColbertEncoder } from "../src/runtime/encoder.js";
import { exportedFixture } from "./helpers/exported.js";
import { tempDir } from "./helpers/fixtures.js";
import { syntheticCorpus } from "./helpers/synthetic.js";

const DIM = 16;
const corpus = syntheticCorpus({ docs: 60, tokens: 10, queries: 4, queryTokens: 6, dim: DIM, seed: 21 });
const rows = (a: Float32Array) => Array.from({ length: a.length / DIM }, (_, r) => Array.from(a.subarray(r * DIM, (r + 1) * DIM)));
const b64 = (a: Float32Array) => ({ embeddings_b64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64"), shape: [a.length / DIM, DIM] });
const papers = corpus.docs.map((_, i) => ({ title: `paper ${i} on ${i % 3 === 0 ? "graphs" : "proteins"}`, category: ["physics", "biology", "math"][i % 3], year: 2015 + (i % 10), open: i % 2 === 0 }));

let root: string;
let engine: RemoteEngine;
let encoder: ColbertEncoder;
let base: string;
let server: http.Server;

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(base + path, { method, headers: body === undefined ? {} : { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function waitFor(cond: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const docCount = async (name: string) => (await call("GET", `/indices/${name}`)).json?.num_documents;

before(async () => {
  root = tempDir("index-server-");
  engine = await startIndexEngine(root, { threads: 2 });
  encoder = await ColbertEncoder.load(await exportedFixture("bert-tiny-colbert"), { batchSize: 8 });
  server = createServer({ indexEngine: engine, indexDir: root, encoder, updateQueue: { capacity: 2, batchWindowMs: 20 } });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.close();
  await engine.close();
  await encoder.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("declare: 200 with the stored config, 409 twice, 400/422 on bad input; declared indices are not listed", async () => {
  assert.deepEqual((await call("GET", "/indices")).json, []);
  // Request ids: echoed when sent, generated otherwise.
  assert.equal((await fetch(base + "/indices", { headers: { "x-request-id": "abc-123" } })).headers.get("x-request-id"), "abc-123");
  assert.match((await fetch(base + "/indices")).headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  const ok = await call("POST", "/indices", { name: "papers", config: { nbits: 4, start_from_scratch: 20 } });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json.config, { nbits: 4, batch_size: 50000, seed: null, start_from_scratch: 20, max_documents: null, fts_tokenizer: "unicode61" });
  assert.match(ok.json.message, /declared/);
  assert.equal((await call("POST", "/indices", { name: "papers" })).status, 409);
  assert.equal((await call("POST", "/indices", { name: "papers" })).json.code, "INDEX_ALREADY_EXISTS");
  assert.equal((await call("POST", "/indices", {})).status, 422);
  assert.equal((await call("POST", "/indices", { name: "" })).status, 400);
  assert.equal((await call("POST", "/indices", { name: "x", config: { nbits: 3 } })).status, 400);
  assert.equal((await call("POST", "/indices", { name: "x", config: { fts_tokenizer: "porter" } })).status, 400);
  assert.equal((await call("POST", "/indices", { name: "../escape" })).status, 400);
  assert.deepEqual((await call("GET", "/indices")).json, []);
  assert.equal((await call("GET", "/indices/papers")).status, 404);
  const health = (await call("GET", "/health")).json;
  assert.deepEqual(health.indices.map((i: { name: string }) => i.name), ["papers"]);
  assert.equal(health.index_dir, root);
});

test("update: 404 undeclared, 422/400 on bad bodies, 202 queued, progress in /health, then searchable", async () => {
  const one = [{ embeddings: rows(corpus.docs[0]!) }];
  assert.equal((await call("POST", "/indices/nope/update", { documents: one, metadata: [{}] })).json.code, "INDEX_NOT_DECLARED");
  assert.equal((await call("POST", "/indices/papers/update", { documents: one })).status, 422);
  assert.equal((await call("POST", "/indices/papers/update", { documents: one, metadata: [{}, {}] })).status, 400);
  assert.equal((await call("POST", "/indices/papers/update", { documents: [], metadata: [] })).status, 400);
  assert.equal((await call("POST", "/indices/papers/update", { documents: [{ embeddings: [[1, 2], [3]] }], metadata: [{}] })).status, 400);
  assert.equal((await call("POST", "/indices/papers/update", { documents: [{ embeddings: [[1, NaN]] }], metadata: [{}] })).status, 400);
  // Half as JSON rows, half as base64, in two requests.
  const first = await call("POST", "/indices/papers/update", { documents: corpus.docs.slice(0, 30).map((d) => ({ embeddings: rows(d) })), metadata: papers.slice(0, 30) });
  assert.equal(first.status, 202);
  assert.equal(first.json, "Update queued for batching");
  await waitFor(async () => (await docCount("papers")) === 30, "the first batch");
  assert.equal((await call("POST", "/indices/papers/update", { documents: corpus.docs.slice(30).map(b64), metadata: papers.slice(30) })).status, 202);
  await waitFor(async () => (await docCount("papers")) === 60, "the second batch");
  const health = (await call("GET", "/health")).json;
  const entry = health.updates.find((u: { index: string }) => u.index === "papers");
  assert.equal(entry.status, "complete");
  assert.equal(entry.processed_documents, 30);
  assert.match(entry.started_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const info = (await call("GET", "/indices/papers")).json;
  assert.equal(info.num_documents, 60);
  assert.equal(info.dimension, DIM);
  assert.equal(info.has_metadata, true);
  assert.equal(info.metadata_count, 60);
  assert.deepEqual((await call("GET", "/indices")).json, ["papers"]);
  // A document of another dimension fails in the background and is reported.
  assert.equal((await call("POST", "/indices/papers/update", { documents: [{ embeddings: [[1, 2, 3]] }], metadata: [{}] })).status, 202);
  await waitFor(async () => (await call("GET", "/health")).json.updates.find((u: { index: string }) => u.index === "papers").status === "failed", "the failed update");
  assert.match((await call("GET", "/health")).json.updates.find((u: { index: string }) => u.index === "papers").error, /Expected dimension 16, got 3/);
  assert.equal(await docCount("papers"), 60);
});

test("search: embeddings or base64, top_k, subsets, metadata attached; 400 on bad queries; 404 unknown index", async () => {
  const q = corpus.docs[7]!;
  const r = await call("POST", "/indices/papers/search", { queries: [{ embeddings: rows(q) }, b64(corpus.docs[40]!)], params: { top_k: 3 } });
  assert.equal(r.status, 200);
  assert.equal(r.json.num_queries, 2);
  assert.deepEqual(r.json.results.map((x: { query_id: number }) => x.query_id), [0, 1]);
  assert.equal(r.json.results[0].document_ids[0], 7);
  assert.equal(r.json.results[1].document_ids[0], 40);
  assert.equal(r.json.results[0].scores.length, 3);
  assert.deepEqual(r.json.results[0].metadata[0], { _subset_: 7, ...papers[7], open: 0 });
  const sub = await call("POST", "/indices/papers/search", { queries: [{ embeddings: rows(q) }], subset: [1, 2, 3], params: { top_k: 10 } });
  assert.deepEqual([...sub.json.results[0].document_ids].sort(), [1, 2, 3]);
  assert.equal((await call("POST", "/indices/papers/search", { queries: [] })).status, 400);
  assert.equal((await call("POST", "/indices/papers/search", { queries: [{ embeddings: [[1, 2]] }] })).json.code, "DIMENSION_MISMATCH");
  assert.equal((await call("POST", "/indices/papers/search", { queries: [{ embeddings: rows(q) }], alpha: 2, text_query: ["x"] })).status, 400);
  assert.equal((await call("POST", "/indices/papers/search", { queries: [{ embeddings: rows(q) }], fusion: "max" })).status, 400);
  assert.equal((await call("POST", "/indices/papers/search", { queries: [{ embeddings: rows(q) }, { embeddings: rows(q) }], text_query: ["a", "b"] })).status, 400);
  assert.equal((await call("POST", "/indices/papers/search", { queries: [{ embeddings: rows(q) }], params: { top_k: -1 } })).status, 422);
  assert.equal((await call("POST", "/indices/nope/search", { queries: [{ embeddings: rows(q) }] })).status, 404);
});

test("filtered search and metadata queries: exact matches; injection attempts get 400 and change nothing", async () => {
  const q = corpus.docs[3]!;
  const f = await call("POST", "/indices/papers/search/filtered", { queries: [{ embeddings: rows(q) }], filter_condition: "category = ? AND year >= ?", filter_parameters: ["physics", 2020], params: { top_k: 60 } });
  const expected = papers.flatMap((p, i) => (p.category === "physics" && p.year >= 2020 ? [i] : []));
  assert.deepEqual([...f.json.results[0].document_ids].sort((a: number, b: number) => a - b), expected);
  const open = await call("POST", "/indices/papers/metadata/query", { condition: "open = ? AND title LIKE ?", parameters: [true, "%graphs%"] });
  assert.deepEqual(open.json.document_ids, papers.flatMap((p, i) => (p.open && p.title.includes("graphs") ? [i] : [])));
  for (const condition of ["category = 'physics'", "category = ?; DROP TABLE METADATA", "1=1 OR category = ? --", "category = ? UNION SELECT name FROM sqlite_master", "nosuch = ?"]) {
    const r1 = await call("POST", "/indices/papers/search/filtered", { queries: [{ embeddings: rows(q) }], filter_condition: condition, filter_parameters: ["physics"] });
    assert.equal(r1.status, 400, condition);
    assert.equal((await call("POST", "/indices/papers/metadata/query", { condition, parameters: ["physics"] })).status, 400, condition);
    assert.equal((await call("DELETE", "/indices/papers/documents", { condition, parameters: ["physics"] })).status, 400, condition);
    assert.equal((await call("POST", "/indices/papers/metadata/update", { condition, parameters: ["physics"], updates: { year: 1 } })).status, 400, condition);
  }
  assert.equal((await call("GET", "/indices/papers/metadata/count")).json.count, 60);
  assert.equal((await call("POST", "/indices/papers/metadata/query", { condition: "year = ?", parameters: [1] })).json.count, 0);
});

test("metadata routes: all, count, check, get by ids or condition, update", async () => {
  const all = (await call("GET", "/indices/papers/metadata")).json;
  assert.equal(all.count, 60);
  assert.deepEqual(all.metadata.map((m: { _subset_: number }) => m._subset_), [...Array(60).keys()]);
  assert.deepEqual((await call("GET", "/indices/papers/metadata/count")).json, { count: 60, has_metadata: true });
  assert.deepEqual((await call("POST", "/indices/papers/metadata/check", { document_ids: [0, 59, 60, 999] })).json, { existing_ids: [0, 59], missing_ids: [60, 999], existing_count: 2, missing_count: 2 });
  const byIds = (await call("POST", "/indices/papers/metadata/get", { document_ids: [5, 2] })).json;
  assert.deepEqual(byIds.metadata.map((m: { _subset_: number }) => m._subset_), [5, 2]);
  const byCond = (await call("POST", "/indices/papers/metadata/get", { condition: "category = ?", parameters: ["math"], limit: 3 })).json;
  assert.deepEqual(byCond.metadata.map((m: { _subset_: number }) => m._subset_), [2, 5, 8]);
  assert.equal((await call("POST", "/indices/papers/metadata/get", { document_ids: [1], condition: "year = ?" })).status, 400);
  const upd = await call("POST", "/indices/papers/metadata/update", { condition: "_subset_ = ?", parameters: [4], updates: { title: "walrus anatomy" } });
  assert.deepEqual(upd.json, { updated: 1 });
  assert.equal((await call("POST", "/indices/papers/metadata/update", { condition: "_subset_ = ?", parameters: [4], updates: [1] })).status, 400);
  assert.equal((await call("POST", "/indices/papers/metadata/update", { condition: "_subset_ = ?", parameters: [4], updates: { _subset_: 9 } })).status, 400);
  assert.equal((await call("GET", "/indices/nope/metadata")).status, 404);
});

test("keyword and hybrid search over the metadata text", async () => {
  const kw = await call("POST", "/indices/papers/search", { text_query: ["walrus"], params: { top_k: 5 } });
  assert.equal(kw.status, 200);
  assert.deepEqual(kw.json.results[0].document_ids, [4]);
  assert.ok(kw.json.results[0].scores[0] > 0);
  const q = corpus.docs[30]!;
  for (const fusion of ["rrf", "relative_score"]) {
    const h = await call("POST", "/indices/papers/search", { queries: [{ embeddings: rows(q) }], text_query: ["walrus"], alpha: 0.5, fusion, params: { top_k: 5, n_ivf_probe: 1000 } });
    assert.equal(h.status, 200);
    assert.ok(h.json.results[0].document_ids.includes(4), `${fusion}: the keyword hit is fused in`);
    assert.ok(h.json.results[0].document_ids.includes(30), `${fusion}: the semantic hit stays`);
  }
});

test("delete: 400 on empty or invalid conditions, 202 'No documents match', then renumbered documents", async () => {
  assert.equal((await call("DELETE", "/indices/papers/documents", { condition: "" })).status, 400);
  assert.equal((await call("DELETE", "/indices/papers/documents", {})).status, 422);
  assert.equal((await call("DELETE", "/indices/nope/documents", { condition: "year = ?", parameters: [1] })).status, 404);
  const none = await call("DELETE", "/indices/papers/documents", { condition: "year = ?", parameters: [1900] });
  assert.equal(none.status, 202);
  assert.match(none.json, /No documents match/);
  const del = await call("DELETE", "/indices/papers/documents", { condition: "category = ?", parameters: ["biology"] });
  assert.equal(del.status, 202);
  assert.match(del.json, /queued/);
  await waitFor(async () => (await docCount("papers")) === 40, "the delete");
  const left = papers.flatMap((p, i) => (p.category !== "biology" ? [i] : []));
  const meta = (await call("GET", "/indices/papers/metadata")).json.metadata;
  assert.deepEqual(meta.map((m: { _subset_: number }) => m._subset_), [...Array(40).keys()]);
  assert.deepEqual(meta.map((m: { year: number }) => m.year), left.map((i) => papers[i]!.year));
  // Document 30 (physics) is now id left.indexOf(30), and still finds itself.
  const r = await call("POST", "/indices/papers/search", { queries: [{ embeddings: rows(corpus.docs[30]!) }], params: { top_k: 1 } });
  assert.deepEqual(r.json.results[0].document_ids, [left.indexOf(30)]);
});

test("legacy POST /documents: the index must exist, dimensions are checked at once, then 202", async () => {
  await call("POST", "/indices", { name: "declared-only" });
  assert.equal((await call("POST", "/indices/declared-only/documents", { documents: [b64(corpus.docs[0]!)], metadata: [{}] })).json.code, "INDEX_NOT_FOUND");
  assert.equal((await call("POST", "/indices/papers/documents", { documents: [], metadata: [] })).status, 400);
  assert.equal((await call("POST", "/indices/papers/documents", { documents: [{ embeddings: [[1, 2, 3]] }], metadata: [{}] })).json.code, "DIMENSION_MISMATCH");
  const before = await docCount("papers");
  const r = await call("POST", "/indices/papers/documents", { documents: [b64(corpus.docs[5]!)], metadata: [{ title: "legacy" }] });
  assert.equal(r.status, 202);
  assert.equal(r.json, "Update queued in background");
  await waitFor(async () => (await docCount("papers")) === before + 1, "the legacy add");
  assert.equal((await call("POST", "/indices/papers/metadata/get", { document_ids: [before] })).json.metadata[0].title, "legacy");
  await call("DELETE", "/indices/papers/documents", { condition: "title = ?", parameters: ["legacy"] });
  await waitFor(async () => (await docCount("papers")) === before, "its removal");
  await call("DELETE", "/indices/declared-only");
});

test("PUT config sets max_documents; the next update evicts the oldest", async () => {
  const put = await call("PUT", "/indices/papers/config", { max_documents: 35 });
  assert.equal(put.status, 200);
  assert.equal(put.json.config.max_documents, 35);
  assert.equal((await call("GET", "/indices/papers")).json.max_documents, 35);
  assert.equal((await call("PUT", "/indices/nope/config", { max_documents: 1 })).status, 404);
  await call("POST", "/indices/papers/update", { documents: [b64(corpus.docs[0]!)], metadata: [{ title: "newest" }] });
  await waitFor(async () => (await docCount("papers")) === 35, "eviction");
  const last = (await call("POST", "/indices/papers/metadata/get", { document_ids: [34] })).json.metadata[0];
  assert.equal(last.title, "newest");
});

test("a full update queue answers 503", async () => {
  await call("POST", "/indices", { name: "busy" });
  const doc = { documents: [b64(corpus.docs[1]!)], metadata: [{}] };
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await call("POST", "/indices/busy/update", doc)).status);
  assert.ok(statuses.includes(503), statuses.join(" "));
  assert.equal(statuses[0], 202);
  await waitFor(async () => (await call("GET", "/health")).json.updates.find((u: { index: string }) => u.index === "busy")?.status === "complete", "busy updates");
});

test("the update queue holds at most maxPendingBytes of embeddings per index: then 503 (a request alone is always taken)", async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const added: number[] = [];
  const fake = { add: async (_n: string, docs: { doclens: Int32Array }) => (added.push(docs.doclens.length), held) } as unknown as RemoteEngine;
  const queues = new UpdateQueues(fake, new UpdateTracker(), { batchWindowMs: 0, maxBatchDocuments: 1, maxPendingBytes: 3 * 1000 * 4 });
  const item = (rows: number) => ({ docs: [{ data: new Float32Array(rows * 10), rows, dim: 10 }], metadata: [{}] });
  queues.add("q", item(5_000)); // runs at once (held): the queue is empty again
  await new Promise((r) => setImmediate(r));
  queues.add("q", item(50_000)); // alone in the queue: taken, whatever its size
  assert.throws(() => queues.add("q", item(1)), (e: Error & { status?: number }) => e.status === 503 && /MB of embeddings waiting/.test(e.message));
  release();
  await queues.idle();
  queues.add("q", item(100)); // runs
  queues.add("q", item(100));
  queues.add("q", item(200)); // 4 000 + 8 000 bytes waiting: at the limit
  assert.throws(() => queues.add("q", item(1)), (e: Error & { status?: number }) => e.status === 503);
  await queues.idle();
  assert.deepEqual(added, [1, 1, 1, 1, 1]);
});

test("with a model: update_with_encoding and search_with_encoding (plain and filtered)", async () => {
  await call("POST", "/indices", { name: "texts" });
  const texts = ["Paris is the capital of France.", "The Eiffel Tower is a landmark in Paris.", "Berlin is the capital of Germany.", "Proteins fold into shapes."];
  const up = await call("POST", "/indices/texts/update_with_encoding", { documents: texts, metadata: texts.map((t, i) => ({ type: i === 1 ? "landmark" : "city", text: t })) });
  assert.equal(up.status, 202);
  await waitFor(async () => (await docCount("texts")) === 4, "encoded documents");
  // Same scores as encoding with the library and searching by embeddings.
  const [q] = await encoder.encodeQueries(["capital of France"]);
  const byEmb = await call("POST", "/indices/texts/search", { queries: [{ embeddings: Array.from({ length: q!.rows }, (_, r) => Array.from(q!.data.subarray(r * q!.dim, (r + 1) * q!.dim))) }], params: { top_k: 4, n_ivf_probe: 100 } });
  const byText = await call("POST", "/indices/texts/search_with_encoding", { queries: ["capital of France"], params: { top_k: 4, n_ivf_probe: 100 } });
  assert.equal(byText.status, 200);
  assert.deepEqual(byText.json.results[0].document_ids, byEmb.json.results[0].document_ids);
  const filtered = await call("POST", "/indices/texts/search/filtered_with_encoding", { queries: ["tower"], filter_condition: "type = ?", filter_parameters: ["landmark"] });
  assert.deepEqual(filtered.json.results[0].document_ids, [1]);
  assert.equal((await call("POST", "/indices/texts/search_with_encoding", { queries: [] })).status, 400);
});

test("DELETE /indices/{name} removes the index and its folder", async () => {
  const r = await call("DELETE", "/indices/busy");
  assert.deepEqual(r.json, { deleted: true, name: "busy" });
  assert.equal((await call("GET", "/indices/busy")).status, 404);
  assert.ok(!fs.existsSync(`${root}/busy`));
});

test("without a model: the *_with_encoding routes answer 400 MODEL_NOT_LOADED and record no failed update", async () => {
  const bare = createServer({ indexEngine: engine, indexDir: root });
  await new Promise<void>((r) => bare.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(bare.address() as AddressInfo).port}`;
  try {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: res.status, json: (await res.json()) as { code: string } };
    };
    const up = await post("/indices/papers/update_with_encoding", { documents: ["a text"], metadata: [{}] });
    assert.deepEqual([up.status, up.json.code], [400, "MODEL_NOT_LOADED"]);
    const s = await post("/indices/papers/search_with_encoding", { queries: ["a query"] });
    assert.deepEqual([s.status, s.json.code], [400, "MODEL_NOT_LOADED"]);
    const health = (await (await fetch(url + "/health")).json()) as { updates: { index: string; status: string }[]; model: unknown };
    assert.equal(health.model, null);
    assert.ok(!health.updates.some((u) => u.status === "failed" && u.index === "papers"));
    // Embedding routes work without a model.
    const r = await post("/indices/papers/search", { queries: [{ embeddings: rows(corpus.docs[30]!) }], params: { top_k: 1 } });
    assert.equal(r.status, 200);
  } finally {
    bare.close();
  }
});

test("/health answers while the index engine builds (the update is still running when it answers)", async () => {
  await call("POST", "/indices", { name: "big" });
  const dim = 64;
  const big = syntheticCorpus({ docs: 1500, tokens: 100, dim, seed: 9 });
  const body = { documents: big.docs.map((d) => ({ embeddings_b64: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString("base64"), shape: [d.length / dim, dim] })), metadata: big.docs.map(() => ({})) };
  assert.equal((await call("POST", "/indices/big/update", body)).status, 202);
  // Wait until the engine has started on it, then ask for /health: it must answer before the build ends.
  await waitFor(async () => (await call("GET", "/health")).json.updates.some((u: { index: string; status: string }) => u.index === "big" && u.status === "running"), "the build to start");
  const health = await call("GET", "/health");
  assert.equal(health.status, 200);
  assert.equal(health.json.updates.find((u: { index: string }) => u.index === "big").status, "running", "answered during the build");
  await waitFor(async () => (await docCount("big")) === 1500, "the build", 120_000);
  await call("DELETE", "/indices/big");
});

test("bodies over 1 MB are parsed off the event loop with the same answers: indexed as small ones, same errors", async () => {
  await call("POST", "/indices", { name: "large" });
  const pad = "x".repeat(1 << 20); // metadata text that makes each body larger than 1 MB
  const docs = corpus.docs.slice(0, 30);
  const post = async (body: string) => {
    const res = await fetch(base + "/indices/large/update", { method: "POST", headers: { "content-type": "application/json" }, body });
    return { status: res.status, json: await res.json() };
  };
  // Invalid JSON, a body that is not an object, a size that does not match the shape: the small-body errors.
  assert.deepEqual(await post(`{"documents": [${pad}`), { status: 400, json: { code: "BAD_REQUEST", message: "Request body is not valid JSON" } });
  assert.deepEqual((await post(JSON.stringify([pad]))).json.message, "Request body must be a JSON object");
  const bad = await post(JSON.stringify({ documents: [{ ...b64(docs[0]!), shape: [3, DIM] }], metadata: [{ pad }] }));
  const badSmall = await call("POST", "/indices/large/update", { documents: [{ ...b64(docs[0]!), shape: [3, DIM] }], metadata: [{}] });
  assert.deepEqual([bad.status, bad.json.message], [badSmall.status, badSmall.json.message]);
  // A non-finite value in base64 (checked off the event loop for large bodies): the same 400 as small.
  const nan = Float32Array.from(docs[1]!);
  nan[2 * DIM + 5] = Number.NaN;
  const nanLarge = await post(JSON.stringify({ documents: [b64(docs[0]!), b64(nan)], metadata: [{ pad }, {}] }));
  const nanSmall = await call("POST", "/indices/large/update", { documents: [b64(docs[0]!), b64(nan)], metadata: [{}, {}] });
  assert.equal(nanLarge.status, 400);
  assert.match(nanLarge.json.message, /non-finite value at row 2, col 5/);
  assert.deepEqual([nanLarge.status, nanLarge.json.message], [nanSmall.status, nanSmall.json.message]);
  // Base64 and JSON-row documents in one large body index as the same documents sent small.
  const body = JSON.stringify({ documents: docs.map((d, i) => (i % 2 ? b64(d) : { embeddings: rows(d) })), metadata: docs.map((_, i) => ({ i, pad: i === 0 ? pad : "" })) });
  assert.ok(body.length > 1 << 20);
  assert.equal((await post(body)).status, 202);
  await waitFor(async () => (await docCount("large")) === 30, "the large update");
  const q = corpus.queries[0]!;
  const [r] = (await call("POST", "/indices/large/search", { queries: [b64(q)], params: { top_k: 3 } })).json.results;
  const [own] = (await call("POST", "/indices/large/search", { queries: [b64(docs[7]!)], params: { top_k: 1 } })).json.results;
  assert.equal(r.document_ids.length, 3);
  assert.deepEqual(own.document_ids, [7]);
  assert.equal(own.metadata[0].i, 7);
  await call("DELETE", "/indices/large");
});
