/**
 * The index out of core (issue #20): chunk files hold codes and residuals, a loaded index keeps
 * codes per chunk and reads residuals by position for the documents it decompresses. Forced tiny
 * chunks (no array spans more than a few documents) answer exactly as one chunk held in memory.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { PlaidEngine } from "../src/plaid/engine.js";
import { Kernels, transpose } from "../src/plaid/kernels.js";
import { appendChunks, chunkRawDocs, encodedSlices, deleteFromChunks, loadSnapshot, manifestOf, sweep, writeCentroids, writeDocs, type ChunkRef, type Manifest } from "../src/plaid/store.js";
import { RetrainJob } from "../src/plaid/retrain.js";
import { NpyWriter, readNpy } from "../src/plaid/npy.js";
import { encodeTokens, memoryDocs, train } from "../src/plaid/plaid.js";
import { documentTokens } from "../src/plaid/snapshot.js";
import type { SearchRequest } from "../src/plaid/types.js";
import { syntheticFlat } from "./helpers/synthetic.js";

const DIM = 32;
const corpus = syntheticFlat({ docs: 600, tokens: 20, dim: DIM, queries: 12, queryTokens: 8, seed: 21, noise: 0.8, queryNoise: 0.8 });
const N = corpus.doclens.length;
const offsets = new Int32Array(N + 1);
for (let i = 0; i < N; i++) offsets[i + 1] = offsets[i]! + corpus.doclens[i]!;
const slice = (from: number, to: number) => ({ data: corpus.data.subarray(offsets[from]! * DIM, offsets[to]! * DIM), doclens: corpus.doclens.subarray(from, to) });
const meta = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => ({ doc: from + i, group: (from + i) % 3 }));
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "index-store-"));

let kernels: Kernels;
before(async () => {
  kernels = await Kernels.create(2);
});
after(async () => kernels.release());

test("chunks of 7 documents read from disk per candidate answer exactly as large chunks held in memory, through appends, retrains and deletes", { timeout: 120_000 }, async () => {
  const roots = [tmp(), tmp()];
  const tiny = await PlaidEngine.create(roots[0]!, 2);
  const whole = await PlaidEngine.create(roots[1]!, 2, undefined, { residentResiduals: true });
  tiny.declare("x", { start_from_scratch: 100, batch_size: 7 });
  whole.declare("x", { start_from_scratch: 100 });
  const steps: [string, () => Promise<unknown>][] = [];
  for (const [from, to] of [[0, 150], [150, 190], [190, 260], [260, 270], [270, 500], [500, 600]] as const) {
    steps.push([`add ${from}..${to}`, () => Promise.all([tiny, whole].map((e) => e.add("x", slice(from, to), DIM, meta(from, to))))]);
    if (to === 260) steps.push(["delete group 1", () => Promise.all([tiny, whole].map((e) => e.deleteWhere("x", "group = ?", [1])))]);
  }
  for (const [what, step] of steps) {
    await step();
    await Promise.all([tiny.settle("x"), whole.settle("x")]);
    assert.deepEqual(tiny.info("x"), whole.info("x"), what);
    for (const params of [
      { topK: 10, nIvfProbe: 8, nFullScores: 4096 },
      { topK: 5, nIvfProbe: 2, nFullScores: 64 },
      { topK: 50, nIvfProbe: 65_536, nFullScores: 1_000_000 },
    ]) {
      for (const q of corpus.queries) {
        const req: SearchRequest = { queries: [{ data: q, dim: DIM }], params, alpha: 0.75, fusion: "relative_score", filterParameters: [] };
        const [a] = await tiny.search("x", req);
        const [b] = await whole.search("x", req);
        assert.deepEqual(a, b, `${what}, ${JSON.stringify(params)}`);
      }
    }
  }
  // Tiny chunks: many segments, each a few documents; residuals are not held in memory.
  const t = tiny.memory("x");
  const w = whole.memory("x");
  assert.ok(t.segments >= tiny.info("x").num_documents / 14, `${t.segments} segments`);
  assert.ok(w.segments <= 4, `${w.segments} segments`);
  assert.equal(t.residualBytes, 0);
  assert.equal(w.residualBytes, (w.embeddings * DIM * 4) / 8);
  assert.ok(t.bytes < w.bytes, `out of core ${t.bytes} B, resident ${w.bytes} B`);
  for (const e of [tiny, whole]) await e.close();
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

test("deleting from chunks keeps the survivors' codes and residuals, in order, renumbered 0..N−1", async () => {
  const dir = tmp();
  const docs = memoryDocs(slice(0, 60), DIM);
  const trained = await train(kernels, docs, { nbits: 4, seed: 1 });
  const centroidsT = transpose(trained.codec.centroids, trained.codec.k, DIM);
  const chunks = await writeDocs(dir, trained.codec, { doclens: docs.doclens, slices: (a, b) => encodedSlices(kernels, trained.codec, centroidsT, docs, a, b, true) }, 9);
  assert.equal(chunks.length, 7);
  const m = await manifestOf(trained.codec, trained.clusterThreshold, await writeCentroids(dir, trained.codec), chunks, { documents: 60, embeddings: 0 });
  const snap = loadSnapshot(dir, m);
  const gone = [0, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 40, 59];
  const kept = await deleteFromChunks(dir, m, Int32Array.from(gone), true);
  assert.equal(kept.length, 6, "the chunk with every document deleted is gone");
  assert.equal(kept.filter((c) => chunks.includes(c)).length, 3, "chunks without a deleted document stay as they are");
  const afterDelete = loadSnapshot(dir, { ...m, chunks: kept, numDocuments: 60 - gone.length, numEmbeddings: kept.reduce((a, c) => a + c.tokens, 0) }, snap);
  const survivors = [...Array(60).keys()].filter((d) => !gone.includes(d));
  survivors.forEach((old, i) => {
    const a = documentTokens(afterDelete, i);
    const b = documentTokens(snap, old);
    assert.deepEqual(a.codes, b.codes, `doc ${old} → ${i}`);
    assert.deepEqual(a.packed, b.packed, `doc ${old} → ${i}`);
  });
  for (const s of afterDelete.segments) s.residuals.close();
  for (const s of snap.segments) s.residuals.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a retrain's new codec: chunks an append or a delete made from older ones copy what was already encoded again, and hold exactly what encoding their originals gives", async () => {
  const dir = tmp();
  const docs = memoryDocs(slice(0, 60), DIM);
  const first = memoryDocs(slice(0, 40), DIM);
  const old = await train(kernels, first, { nbits: 4, seed: 1 });
  const oldT = transpose(old.codec.centroids, old.codec.k, DIM);
  const encoded = (d: typeof docs) => ({ doclens: d.doclens, slices: (a: number, b: number) => encodedSlices(kernels, old.codec, oldT, d, a, b, true) });
  const written = await writeDocs(dir, old.codec, encoded(first), 25);
  assert.deepEqual(written.map((c) => c.documents), [25, 15]);
  const centroids = await writeCentroids(dir, old.codec);
  const manifest = async (chunks: ChunkRef[]): Promise<Manifest> => manifestOf(old.codec, old.clusterThreshold, centroids, chunks, { documents: 0, embeddings: 0 });
  const m1 = await manifest(written);
  // The retrain's codec, trained on every document; it encodes the chunks it started from.
  const job = new RetrainJob();
  const fresh = await train(kernels, docs, { nbits: 4, seed: 2 });
  const freshT = transpose(fresh.codec.centroids, fresh.codec.k, DIM);
  job.trained(dir, kernels, fresh.codec, freshT);
  // An append carries the 15-document trailing chunk into its first chunk (15 + 10), then 10 more.
  const appended = await appendChunks(dir, m1, 40, encoded(memoryDocs(slice(40, 60), DIM)), 25, true, job.derived);
  assert.deepEqual(appended.map((c) => c.documents), [25, 25, 10]);
  const m2 = await manifest(appended);
  // Before the retrain has encoded the chunk it carried, the append encodes only its wholly new chunk.
  assert.equal(await job.recodeWritten(m2, m1), appended[2]!.tokens);
  assert.equal(job.left(m2), appended[0]!.tokens + appended[1]!.tokens);
  await job.recodeMissing(m1);
  assert.equal(job.copiedDocuments, 0);
  assert.equal(await job.recodeWritten(m2, m1), appended[1]!.tokens, "now the carried chunk can be copied");
  assert.equal(job.copiedDocuments, 15, "the carried documents are copied");
  assert.equal(job.left(m2), 0);
  // A delete rewrites both 25-document chunks with their survivors: copies of what was encoded again.
  const m3 = await manifest(await deleteFromChunks(dir, m2, Int32Array.from([3, 30]), true, job.derived));
  assert.equal(await job.recodeWritten(m3, m2), m3.chunks[0]!.tokens + m3.chunks[1]!.tokens);
  assert.equal(job.copiedDocuments, 15 + 24 + 24);
  assert.equal(job.left(m3), 0);
  const recoded = await job.recodedChunks(m3);
  for (const [i, c] of m3.chunks.entries()) {
    const raw = chunkRawDocs(dir, m3, c);
    const e = await encodeTokens(kernels, fresh.codec, freshT, raw.read(0, c.documents), c.tokens);
    raw.close();
    const r = recoded[i]!;
    assert.equal(r.rawId, c.id, "its originals stay in the chunk's raw file");
    assert.deepEqual(readNpy(path.join(dir, `chunk.${r.id}.codes.npy`)).data, e.codes, `chunk ${i} codes`);
    assert.deepEqual(readNpy(path.join(dir, `chunk.${r.id}.residuals.npy`)).data, e.packed, `chunk ${i} residuals`);
    assert.deepEqual(readNpy(path.join(dir, `chunk.${r.id}.doclens.npy`)).data, readNpy(path.join(dir, `chunk.${c.id}.doclens.npy`)).data);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a sweep leaves the temp files of writes in progress (they yield while their data goes to disk), and removes stray ones", async () => {
  const dir = tmp();
  const stray = path.join(dir, ".chunk.0123456789ab.codes.npy.1.abc.tmp");
  fs.writeFileSync(stray, "partial");
  const w = new NpyWriter(path.join(dir, "chunk.aaaaaaaaaaaa.codes.npy"), "Int32Array", [4]);
  await w.write(Int32Array.from([1, 2]));
  sweep(dir, undefined); // another write committing meanwhile
  assert.equal(fs.existsSync(stray), false, "a stray temp file is swept");
  await w.write(Int32Array.from([3, 4]));
  await w.commit();
  assert.deepEqual(Array.from(readNpy(path.join(dir, "chunk.aaaaaaaaaaaa.codes.npy")).data as Int32Array), [1, 2, 3, 4]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a chunk whose codes name a centroid the codec does not have is refused on load with a one-line error", async () => {
  const dir = tmp();
  const docs = memoryDocs(slice(0, 20), DIM);
  const trained = await train(kernels, docs, { nbits: 4, seed: 2 });
  const centroidsT = transpose(trained.codec.centroids, trained.codec.k, DIM);
  const chunks = await writeDocs(dir, trained.codec, { doclens: docs.doclens, slices: (a, b) => encodedSlices(kernels, trained.codec, centroidsT, docs, a, b, true) }, 100);
  const m = await manifestOf(trained.codec, trained.clusterThreshold, await writeCentroids(dir, trained.codec), chunks, { documents: 20, embeddings: 0 });
  loadSnapshot(dir, m).segments.forEach((s) => s.residuals.close()); // intact: loads
  const file = path.join(dir, `chunk.${chunks[0]!.id}.codes.npy`);
  const bytes = fs.readFileSync(file);
  const at = bytes.length - 4 * (chunks[0]!.tokens - 3); // the fourth token's code (int32 little-endian, data last)
  for (const bad of [trained.codec.k, -1]) {
    bytes.writeInt32LE(bad, at);
    fs.writeFileSync(file, bytes);
    assert.throws(() => loadSnapshot(dir, m), new RegExp(`^Error: chunk ${chunks[0]!.id} holds centroid ${bad}, beyond the codec's ${trained.codec.k}$`));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
