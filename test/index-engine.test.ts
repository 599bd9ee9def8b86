/**
 * The PLAID engine end to end, in process: declare → build → append (past start_from_scratch,
 * with new centroids) → delete with renumbering → eviction, metadata and keyword search kept in
 * step, and a reopened folder answering every search identically. Interrupted writes leave the
 * state before them.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { PlaidEngine } from "../src/plaid/engine.js";
import { MetadataDb } from "../src/plaid/metadata.js";
import { readNpy } from "../src/plaid/npy.js";
import { IndexError, type SearchRequest } from "../src/plaid/types.js";
import { flatten, syntheticCorpus } from "./helpers/synthetic.js";

const DIM = 32;
const corpus = syntheticCorpus({ docs: 160, tokens: 12, queries: 6, queryTokens: 8, dim: DIM, seed: 11 });

const docsOf = (list: Float32Array[]) => flatten(list, DIM);

/** Adds corpus documents [from, to) with their metadata (doc = their corpus index). */
const addDocs = (engine: PlaidEngine, name: string, from: number, to: number) =>
  engine.add(name, docsOf(corpus.docs.slice(from, to)), DIM, corpus.docs.slice(from, to).map((_, i) => meta(from + i)));

const meta = (i: number) => ({ doc: i, title: `document ${i} about ${i % 2 ? "rivers" : "mountains"}`, year: 2000 + (i % 10), even: i % 2 === 0 });

function req(q: Float32Array, extra: Partial<SearchRequest> = {}): SearchRequest {
  return { queries: [{ data: q, dim: DIM }], params: { topK: 5, nIvfProbe: 8, nFullScores: 4096 }, alpha: 0.75, fusion: "relative_score", filterParameters: [], ...extra };
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "plaid-engine-"));
}

test("build, append past start_from_scratch, delete, and reopen: documents, metadata and searches stay in step", async () => {
  const root = tmpdir();
  const engine = await PlaidEngine.create(root, 2);
  engine.declare("ix", { nbits: 4, start_from_scratch: 60 });
  assert.throws(() => engine.declare("ix", {}), (e: unknown) => e instanceof IndexError && e.code === "INDEX_ALREADY_EXISTS");
  assert.throws(() => engine.info("ix"), (e: unknown) => e instanceof IndexError && e.code === "INDEX_NOT_FOUND");
  assert.deepEqual(engine.list(), [], "a declared index is not listed until it has documents");

  // 50 (rebuilt) + 40 (rebuilt from the raw embeddings: 50 ≤ 60) + 70 (appended: 90 > 60).
  await addDocs(engine, "ix", 0, 50);
  const k1 = engine.info("ix").num_partitions;
  await addDocs(engine, "ix", 50, 90);
  const k2 = engine.info("ix").num_partitions;
  assert.ok(k2 > k1, "a rebuild over more embeddings has more centroids");
  await addDocs(engine, "ix", 90, corpus.docs.length);
  const info = engine.info("ix");
  assert.equal(info.num_documents, 160);
  assert.equal(info.num_embeddings, corpus.docs.reduce((s, d) => s + d.length / DIM, 0));
  assert.ok(info.num_partitions >= k2, "appending keeps the centroids (and may add some)");
  assert.equal(info.metadata_count, 160);
  assert.deepEqual(engine.list(), ["ix"]);

  // Every document finds itself first (its own embeddings as the query), with its own metadata.
  for (const i of [0, 49, 50, 89, 90, 159]) {
    const [r] = await engine.search("ix", req(corpus.docs[i]!));
    assert.equal(r!.document_ids[0], i, `document ${i}`);
    assert.equal(r!.metadata[0]!["doc"], i);
  }

  // Delete the even documents: survivors renumbered in order, metadata with them.
  assert.equal(engine.matching("ix", "even = ?", [true]).length, 80);
  assert.equal(await engine.deleteWhere("ix", "even = ?", [true]), 80);
  assert.equal(engine.info("ix").num_documents, 80);
  const rows = engine.metadataAll("ix");
  assert.deepEqual(rows.map((r) => r["_subset_"]), [...Array(80).keys()]);
  assert.deepEqual(rows.map((r) => r["doc"]), [...Array(80).keys()].map((i) => 2 * i + 1));
  for (const newId of [0, 40, 79]) {
    const oldId = 2 * newId + 1;
    const [r] = await engine.search("ix", req(corpus.docs[oldId]!));
    assert.equal(r!.document_ids[0], newId, `old ${oldId} is now ${newId}`);
    assert.equal(r!.metadata[0]!["doc"], oldId);
  }
  // Keyword search follows the renumbering (only "rivers" documents are left).
  const [kw] = await engine.search("ix", { ...req(new Float32Array()), queries: [], textQuery: ["rivers"], params: { topK: 100, nIvfProbe: 8, nFullScores: 4096 } });
  assert.equal(kw!.document_ids.length, 80);
  const [none] = await engine.search("ix", { ...req(new Float32Array()), queries: [], textQuery: ["mountains"] });
  assert.deepEqual(none!.document_ids, []);

  // Reopen the folder: every search answers identically.
  const before = await Promise.all(corpus.queries.map((q) => engine.search("ix", req(q, { params: { topK: 10, nIvfProbe: 4, nFullScores: 64 } }))));
  const infoBefore = engine.info("ix");
  await engine.close();
  const reopened = await PlaidEngine.create(root, 2);
  const again = await Promise.all(corpus.queries.map((q) => reopened.search("ix", req(q, { params: { topK: 10, nIvfProbe: 4, nFullScores: 64 } }))));
  assert.deepEqual(again, before);
  assert.deepEqual(reopened.info("ix"), infoBefore);
  // No file the manifest does not name is left behind.
  const files = fs.readdirSync(path.join(root, "ix"));
  assert.ok(!files.some((f) => f.endsWith(".tmp")), files.join(" "));
  // Every chunk keeps its documents' originals as float16 (what a retrain reads).
  const raws = files.filter((f) => f.endsWith(".raw.npy"));
  assert.ok(raws.length > 0, files.join(" "));
  let rawRows = 0;
  for (const f of raws) {
    const r = readNpy(path.join(root, "ix", f));
    assert.equal(r.descr, "<f2");
    rawRows += r.shape[0]!;
  }
  assert.equal(rawRows, infoBefore.num_embeddings);
  await reopened.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("filters, subsets, keyword and hybrid search", async () => {
  const root = tmpdir();
  const engine = await PlaidEngine.create(root, 2);
  engine.declare("h", {});
  await addDocs(engine, "h", 0, 40);
  const q = corpus.docs[7]!;
  const [filtered] = await engine.search("h", req(q, { filterCondition: "year = ? OR doc = ?", filterParameters: [2003, 7], params: { topK: 50, nIvfProbe: 8, nFullScores: 4096 } }));
  assert.deepEqual([...filtered!.document_ids].sort((a, b) => a - b), [3, 7, 13, 23, 33]);
  assert.equal(filtered!.document_ids[0], 7);
  await assert.rejects(engine.search("h", req(q, { filterCondition: "year = 2003" })), (e: unknown) => e instanceof IndexError && e.code === "BAD_REQUEST");
  await assert.rejects(engine.search("h", req(q, { filterCondition: "nope = ?", filterParameters: [1] })), /Unknown column 'nope'/);
  const [sub] = await engine.search("h", req(q, { subset: [1, 2, 3] }));
  assert.deepEqual([...sub!.document_ids].sort(), [1, 2, 3]);
  // Keyword: bm25 over the metadata text; hybrid: the keyword hit is pulled up.
  const [kw] = await engine.search("h", { ...req(q), queries: [], textQuery: ['"document 21"'] });
  assert.equal(kw!.document_ids[0], 21);
  const all = { topK: 40, nIvfProbe: 1000, nFullScores: 4096 };
  const [semantic] = await engine.search("h", req(q, { params: all }));
  const rank21 = semantic!.document_ids.indexOf(21);
  assert.ok(rank21 > 0, `document 21 ranks ${rank21} on its own`);
  for (const fusion of ["rrf", "relative_score"] as const) {
    const [hy] = await engine.search("h", req(q, { textQuery: ['"document 21"'], fusion, alpha: 0.5, params: all }));
    assert.ok(hy!.document_ids.indexOf(21) < rank21, `${fusion} moves the keyword hit up: ${hy!.document_ids.indexOf(21)} vs ${rank21}`);
  }
  // A broken FTS5 expression is "no keyword result", as NextPlaid.
  const [bad] = await engine.search("h", { ...req(q), queries: [], textQuery: ['"unbalanced'] });
  assert.deepEqual(bad!.document_ids, []);
  // Metadata updates reach the keyword index.
  assert.equal(engine.metadataUpdate("h", "doc = ?", [5], { title: "zebra crossing" }), 1);
  const [z] = await engine.search("h", { ...req(q), queries: [], textQuery: ["zebra"] });
  assert.deepEqual(z!.document_ids, [5]);
  assert.throws(() => engine.metadataUpdate("h", "doc = ?", [5], { _subset_: 3 }), /Cannot update the _subset_ column/);
  assert.throws(() => engine.metadataUpdate("h", "doc = ?", [5], { nosuch: 3 }), /Unknown column/);
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("trigram keyword search matches inside words; REGEXP filters work", async () => {
  const root = tmpdir();
  const engine = await PlaidEngine.create(root, 2);
  engine.declare("t", { fts_tokenizer: "trigram" });
  const titles = ["unbelievable results", "believe it", "nothing here"];
  await engine.add("t", docsOf(corpus.docs.slice(0, 3)), DIM, titles.map((title) => ({ title })));
  const [kw] = await engine.search("t", { ...req(new Float32Array()), queries: [], textQuery: ["liev"] });
  assert.deepEqual([...kw!.document_ids].sort(), [0, 1]);
  assert.deepEqual(engine.matching("t", "title REGEXP ?", ["^bel"]), [1]);
  assert.throws(() => engine.matching("t", "title REGEXP ?", ["("]), /Invalid regex|Invalid condition/);
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("max_documents evicts the oldest documents; a dimension change is refused", async () => {
  const root = tmpdir();
  const engine = await PlaidEngine.create(root, 2);
  engine.declare("m", { max_documents: 30 });
  await addDocs(engine, "m", 0, 25);
  await addDocs(engine, "m", 25, 45);
  assert.equal(engine.info("m").num_documents, 30);
  assert.deepEqual(engine.metadataAll("m").map((r) => r["doc"]), [...Array(30).keys()].map((i) => 15 + i));
  const [r] = await engine.search("m", req(corpus.docs[44]!));
  assert.equal(r!.document_ids[0], 29);
  await assert.rejects(engine.add("m", { data: new Float32Array(8), doclens: Int32Array.from([1]) }, 8, [{}]), (e: unknown) => e instanceof IndexError && e.code === "DIMENSION_MISMATCH");
  await assert.rejects(engine.add("m", docsOf(corpus.docs.slice(0, 1)), DIM, [{ "bad name": 1 }]), /Invalid column name/);
  assert.equal(engine.info("m").num_documents, 30, "a refused update changes nothing");
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("the files a commit replaced are removed only once the commit is synced to disk (a power loss cannot bring back a state whose files are gone)", async () => {
  const root = tmpdir();
  const engine = await PlaidEngine.create(root, 2);
  engine.declare("d", { start_from_scratch: 10 });
  await addDocs(engine, "d", 0, 40);
  const dir = path.join(root, "d");
  const chunkFiles = () => fs.readdirSync(dir).filter((f) => f.startsWith("chunk.")).sort();
  const before = chunkFiles();
  // Each sync sees what is on disk when it starts; the replaced chunk files must still be there.
  const seen: string[][] = [];
  const durable = MetadataDb.prototype.durable;
  MetadataDb.prototype.durable = async function (this: MetadataDb) {
    seen.push(chunkFiles());
    await new Promise((r) => setTimeout(r, 50));
    return durable.call(this);
  };
  try {
    assert.equal(await engine.deleteWhere("d", "doc < ?", [5]), 5);
  } finally {
    MetadataDb.prototype.durable = durable;
  }
  assert.equal(seen.length, 1, "the delete's commit was synced");
  for (const f of before) assert.ok(seen[0]!.includes(f), `${f} was still on disk while the commit was synced`);
  const after = chunkFiles();
  assert.ok(before.some((f) => !after.includes(f)), "the replaced chunk files are gone once it was");
  assert.equal(engine.info("d").num_documents, 35);
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("a write interrupted before its commit leaves the state before it (stray files are swept on load)", async () => {
  const root = tmpdir();
  const engine = await PlaidEngine.create(root, 2);
  engine.declare("c", { start_from_scratch: 10 });
  await addDocs(engine, "c", 0, 30);
  const before = await engine.search("c", req(corpus.queries[0]!));
  await engine.close();
  // What a kill between writing chunk files and the SQLite commit leaves: files no manifest names.
  const dir = path.join(root, "c");
  fs.writeFileSync(path.join(dir, "chunk.0123456789ab.codes.npy"), "partial");
  fs.writeFileSync(path.join(dir, ".chunk.0123456789ab.residuals.npy.123.abc.tmp"), "partial");
  const reopened = await PlaidEngine.create(root, 2);
  assert.equal(reopened.info("c").num_documents, 30);
  assert.deepEqual(await reopened.search("c", req(corpus.queries[0]!)), before);
  assert.ok(!fs.readdirSync(dir).some((f) => f.includes("0123456789ab")));
  await reopened.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("small appends wait in the buffer (no new centroids) until 100 documents, then are re-indexed with expansion, ids unchanged", async () => {
  const root = tmpdir();
  // NextPlaid's update path on its own (no retrain: test/index-retrain.test.ts covers that).
  const engine = await PlaidEngine.create(root, 2, undefined, { retrainGrowth: 0 });
  engine.declare("b", { start_from_scratch: 20 });
  const add = (from: number, to: number) => engine.add("b", docsOf(corpus.docs.slice(from, to)), DIM, corpus.docs.slice(from, to).map((_, i) => meta(from + i)));
  const bufferFiles = () => fs.readdirSync(path.join(root, "b")).filter((f) => f.startsWith("buffer."));
  await add(0, 30);
  const k0 = engine.info("b").num_partitions;
  await add(30, 60);
  await add(60, 90);
  assert.equal(engine.info("b").num_partitions, k0, "buffered appends use the existing centroids");
  assert.equal(bufferFiles().length, 1);
  for (const i of [30, 59, 89]) assert.equal((await engine.search("b", req(corpus.docs[i]!)))[0]!.document_ids[0], i, `buffered document ${i} is searchable`);
  await add(90, 160); // 60 buffered + 70 ≥ 100: expansion over all 130
  assert.ok(engine.info("b").num_partitions > k0, "outliers got centroids");
  assert.deepEqual(bufferFiles(), []);
  assert.equal(engine.info("b").num_documents, 160);
  for (const i of [0, 30, 89, 90, 159]) {
    const [r] = await engine.search("b", req(corpus.docs[i]!));
    assert.equal(r!.document_ids[0], i, `document ${i}`);
    assert.equal(r!.metadata[0]!["doc"], i);
  }
  // The buffer survives a restart.
  await add(0, 10);
  assert.equal(bufferFiles().length, 1);
  await engine.close();
  const reopened = await PlaidEngine.create(root, 2, undefined, { retrainGrowth: 0 });
  assert.equal(reopened.info("b").num_documents, 170);
  await reopened.add("b", docsOf(corpus.docs.slice(0, 95)), DIM, corpus.docs.slice(0, 95).map((_, i) => meta(i)));
  assert.deepEqual(fs.readdirSync(path.join(root, "b")).filter((f) => f.startsWith("buffer.")), []);
  assert.equal(reopened.info("b").num_documents, 265);
  await reopened.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("searches running while a delete renumbers ids return ids and metadata of one state", async () => {
  const root = tmpdir();
  const engine = await PlaidEngine.create(root, 2);
  engine.declare("r", { start_from_scratch: 10 });
  await engine.add("r", docsOf(corpus.docs), DIM, corpus.docs.map((_, i) => meta(i)));
  // Odd documents search for themselves while the even ones are deleted.
  const odd = [...Array(80).keys()].map((i) => 2 * i + 1);
  const searches = odd.map((i) => engine.search("r", req(corpus.docs[i]!, { params: { topK: 1, nIvfProbe: 8, nFullScores: 4096 } })));
  const deleting = engine.deleteWhere("r", "even = ?", [true]);
  const results = await Promise.all(searches);
  await deleting;
  results.forEach(([r], j) => {
    const id = r!.document_ids[0]!;
    assert.equal(r!.metadata[0]!["doc"], odd[j], "the metadata is the found document's");
    assert.ok(id === odd[j] || id === j, `id ${id} is document ${odd[j]} before or after the renumbering`);
  });
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});
