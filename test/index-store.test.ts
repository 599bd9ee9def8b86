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
import { encodedSlices, deleteFromChunks, loadSnapshot, manifestOf, sweep, writeCentroids, writeDocs } from "../src/plaid/store.js";
import { NpyWriter, readNpy } from "../src/plaid/npy.js";
import { memoryDocs, train } from "../src/plaid/plaid.js";
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
