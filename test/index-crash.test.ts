/**
 * kill -9 during index writes: the server restarts on the same folder, every index loads with the
 * state before or after the interrupted write (never a mix: documents, metadata and vectors agree),
 * a retrain that was due resumes, and a restart answers searches identically.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { MetadataDb } from "../src/plaid/metadata.js";
import { loadSqlite } from "../src/plaid/sqlite.js";
import { readManifest } from "../src/plaid/store.js";
import { startServe, type ServeProcess } from "./helpers/serve.js";
import { tempDir } from "./helpers/fixtures.js";
import { syntheticCorpus } from "./helpers/synthetic.js";

const DIM = 32;
const corpus = syntheticCorpus({ docs: 1400, tokens: 20, queries: 4, queryTokens: 8, dim: DIM, seed: 5 });
const b64 = (a: Float32Array) => ({ embeddings_b64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64"), shape: [a.length / DIM, DIM] });

async function call(url: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(url + path, { method, headers: body === undefined ? {} : { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

async function until(cond: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("timed out");
}

/** What a client can see of the index: its size, its metadata, and the answers to fixed searches. */
async function observe(url: string) {
  const info = (await call(url, "GET", "/indices/k")).json;
  const meta = (await call(url, "GET", "/indices/k/metadata")).json;
  const searches = await Promise.all(
    corpus.queries.map(async (q) => (await call(url, "POST", "/indices/k/search", { queries: [b64(q)], params: { top_k: 5, n_ivf_probe: 4, n_full_scores: 64 } })).json.results[0]),
  );
  return { info, meta, searches };
}

test("kill -9 at any point of an update or delete: restart loads the state before or after, consistently, and answers identically", { timeout: 240_000 }, async () => {
  const dir = tempDir("index-crash-");
  let serve: ServeProcess = await startServe(["--index-dir", dir]);
  await call(serve.url, "POST", "/indices", { name: "k", config: { start_from_scratch: 100 } });
  let next = 0;
  const add = async (n: number) => {
    const docs = corpus.docs.slice(next, next + n);
    const r = await call(serve.url, "POST", "/indices/k/update", { documents: docs.map(b64), metadata: docs.map((_, i) => ({ doc: next + i, group: (next + i) % 4 })) });
    assert.equal(r.status, 202);
    next += n;
  };
  await add(150);
  await until(async () => (await call(serve.url, "GET", "/indices/k")).json.num_documents === 150);
  let state = await observe(serve.url);
  const outcomes: string[] = [];
  for (const [i, delay] of [5, 60, 150, 300, 600, 2500].entries()) {
    const beforeDocs = state.info.num_documents as number;
    let expectedAfter: number;
    if (i % 3 === 2) {
      const r = await call(serve.url, "DELETE", "/indices/k/documents", { condition: "group = ?", parameters: [i % 4] });
      assert.equal(r.status, 202, JSON.stringify(r.json));
      expectedAfter = beforeDocs - state.meta.metadata.filter((m: { group: number }) => m.group === i % 4).length;
    } else {
      await add(200);
      expectedAfter = beforeDocs + 200;
    }
    await new Promise((r) => setTimeout(r, delay));
    await serve.stop("SIGKILL");
    serve = await startServe(["--index-dir", dir]);
    const now = await observe(serve.url);
    const docs = now.info.num_documents as number;
    assert.ok(docs === beforeDocs || docs === expectedAfter, `after kill at ${delay} ms: ${docs} documents, expected ${beforeDocs} or ${expectedAfter}`);
    assert.equal(now.meta.count, docs, "metadata and vectors agree");
    assert.deepEqual(now.meta.metadata.map((m: { _subset_: number }) => m._subset_), [...Array(docs).keys()]);
    if (docs === beforeDocs) assert.deepEqual(now, state, "the state before, exactly");
    outcomes.push(docs === beforeDocs ? "before" : "after");
    // Documents that were there keep finding themselves.
    const probe = now.meta.metadata[docs - 1].doc as number;
    const self = (await call(serve.url, "POST", "/indices/k/search", { queries: [b64(corpus.docs[probe]!)], params: { top_k: 1 } })).json;
    assert.deepEqual(self.results[0].document_ids, [docs - 1]);
    // A second restart answers identically.
    await serve.stop("SIGKILL");
    serve = await startServe(["--index-dir", dir]);
    assert.deepEqual(await observe(serve.url), now, "restart answers identically");
    state = now;
    next = Math.max(...now.meta.metadata.map((m: { doc: number }) => m.doc)) + 1;
  }
  await serve.stop();
  const leftovers = fs.readdirSync(`${dir}/k`).filter((f) => f.endsWith(".tmp"));
  assert.deepEqual(leftovers, []);
  // Both outcomes should occur across the kill points (early kills lose the write, late ones keep it).
  assert.ok(outcomes.includes("before") && outcomes.includes("after"), outcomes.join(" "));
  fs.rmSync(dir, { recursive: true, force: true });
});

test("kill -9 during a background retrain: restart loads the committed state, consistently, and answers identically; later updates go on", { timeout: 240_000 }, async () => {
  const dir = tempDir("index-crash-retrain-");
  let serve: ServeProcess = await startServe(["--index-dir", dir]);
  await call(serve.url, "POST", "/indices", { name: "k", config: { start_from_scratch: 100 } });
  let next = 0;
  const add = async (n: number) => {
    const docs = corpus.docs.slice(next, next + n);
    assert.equal((await call(serve.url, "POST", "/indices/k/update", { documents: docs.map(b64), metadata: docs.map((_, i) => ({ doc: next + i, group: (next + i) % 4 })) })).status, 202);
    next += n;
  };
  const retraining = async () => ((await call(serve.url, "GET", "/health")).json.index_engine?.threads ?? []).some((t: { retraining?: boolean }) => t.retraining);
  await add(150);
  await until(async () => (await call(serve.url, "GET", "/indices/k")).json.num_documents === 150);
  let killedDuring = 0;
  for (const delay of [0, 30, 120]) {
    const expected = next + Math.ceil(next * 0.6); // past 1.25×: the update starts a retrain once it commits
    await add(expected - next);
    // Polled closely: the retrain starts when the update commits and lasts a few hundred ms here.
    const end = Date.now() + 60_000;
    while ((await call(serve.url, "GET", "/indices/k")).json.num_documents !== expected) {
      assert.ok(Date.now() < end, "the update was not applied within 60 s");
      await new Promise((r) => setTimeout(r, 5));
    }
    for (let i = 0; i < 40 && !(await retraining()); i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, delay));
    if (await retraining()) killedDuring++;
    await serve.stop("SIGKILL");
    serve = await startServe(["--index-dir", dir]);
    // Opening the index resumes the interrupted retrain (it is still due); it completes.
    assert.equal((await call(serve.url, "GET", "/indices/k")).json.num_documents, expected, "the update committed before the retrain began");
    await until(async () => !(await retraining()));
    const now = await observe(serve.url);
    assert.equal(now.info.num_documents, expected);
    assert.equal(now.meta.count, expected, "metadata and vectors agree");
    assert.deepEqual(now.meta.metadata.map((m: { _subset_: number }) => m._subset_), [...Array(expected).keys()]);
    const self = (await call(serve.url, "POST", "/indices/k/search", { queries: [b64(corpus.docs[expected - 1]!)], params: { top_k: 1 } })).json;
    assert.deepEqual(self.results[0].document_ids, [expected - 1]);
    assert.deepEqual(fs.readdirSync(`${dir}/k`).filter((f) => f.endsWith(".tmp")), [], "a killed retrain's files are swept");
    await serve.stop("SIGKILL");
    await loadSqlite();
    const db = new MetadataDb(`${dir}/k/metadata.db`);
    assert.equal(readManifest(db)?.trainedDocuments, expected, "the resumed retrain committed a codec trained on every document");
    db.close();
    serve = await startServe(["--index-dir", dir]);
    assert.deepEqual(await observe(serve.url), now, "restart answers identically");
  }
  assert.ok(killedDuring > 0, "at least one kill came while a retrain ran");
  // Later updates are applied.
  await add(10);
  await until(async () => (await call(serve.url, "GET", "/indices/k")).json.num_documents === next && !(await retraining()));
  const after = (await call(serve.url, "GET", "/indices/k")).json;
  assert.equal(after.num_documents, next);
  await serve.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});
