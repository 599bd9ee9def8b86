/**
 * An index grown through updates of any size is as good as one built in bulk (issue #20): its codec
 * is trained again on every document, in the background, when the index has grown by the retrain
 * factor; updates, deletes and searches go on meanwhile; deletes and max_documents still renumber
 * across one.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { PlaidEngine } from "../src/plaid/engine.js";
import type { Kernels } from "../src/plaid/kernels.js";
import { readNpy } from "../src/plaid/npy.js";
import { encodeTokens } from "../src/plaid/plaid.js";
import type { PlaidSnapshot } from "../src/plaid/snapshot.js";
import { chunkRawDocs, type Manifest } from "../src/plaid/store.js";
import type { SearchRequest } from "../src/plaid/types.js";
import { exactTopK } from "./helpers/exact.js";
import { syntheticFlat } from "./helpers/synthetic.js";

const DIM = 32;
// The spread corpus: centroids trained on the first documents miss much of what later ones bring.
const corpus = syntheticFlat({ docs: 2000, tokens: 16, dim: DIM, words: 800, queries: 60, queryTokens: 8, seed: 11 });
const N = corpus.doclens.length;
const offsets = new Int32Array(N + 1);
for (let i = 0; i < N; i++) offsets[i + 1] = offsets[i]! + corpus.doclens[i]!;
const slice = (from: number, to: number) => ({ data: corpus.data.subarray(offsets[from]! * DIM, offsets[to]! * DIM), doclens: corpus.doclens.subarray(from, to) });
const meta = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => ({ doc: from + i, group: (from + i) % 5 }));
const request = (q: Float32Array, params: Partial<SearchRequest["params"]> = {}): SearchRequest => ({
  queries: [{ data: q, dim: DIM }],
  params: { topK: 10, nIvfProbe: 8, nFullScores: 4096, ...params },
  alpha: 0.75,
  fusion: "relative_score",
  filterParameters: [],
});

async function recallOf(engine: PlaidEngine, name: string, truth: number[][]): Promise<number> {
  let recall = 0;
  for (const [i, q] of corpus.queries.entries()) {
    const [r] = await engine.search(name, request(q));
    recall += r!.document_ids.filter((id) => truth[i]!.includes(id)).length / 10;
  }
  return recall / corpus.queries.length;
}

/** Adds documents [0, N) in updates of the given sizes, cycling. */
async function stream(engine: PlaidEngine, name: string, sizes: number[]): Promise<void> {
  for (let from = 0, i = 0; from < N; i++) {
    const to = Math.min(N, from + sizes[i % sizes.length]!);
    await engine.add(name, slice(from, to), DIM, meta(from, to));
    from = to;
  }
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "index-retrain-"));

test("documents streamed in updates of any size reach the recall of a bulk build; without retraining (NextPlaid's path) they do not", { timeout: 180_000 }, async () => {
  const truth = await exactTopK(corpus.data, corpus.doclens, DIM, corpus.queries);
  const root = tmp();
  const engine = await PlaidEngine.create(root, 2);
  const never = await PlaidEngine.create(root, 2, undefined, { retrainGrowth: 0 });
  for (const n of ["bulk", "mixed", "b300", "never"]) (n === "never" ? never : engine).declare(n, { start_from_scratch: 200 });
  await engine.add("bulk", slice(0, N), DIM, meta(0, N));
  await stream(engine, "mixed", [1, 10, 37, 1, 300, 5, 120]);
  await stream(engine, "b300", [300]);
  await stream(never, "never", [300]);
  // Retrains run in the background: the index converges once they are done.
  for (const n of ["mixed", "b300"]) await engine.settle(n);
  assert.equal(never.background("never").retraining, false);
  const bulk = await recallOf(engine, "bulk", truth);
  const mixed = await recallOf(engine, "mixed", truth);
  const b300 = await recallOf(engine, "b300", truth);
  const without = await recallOf(never, "never", truth);
  assert.ok(bulk > 0.85, `bulk recall@10 ${bulk}`);
  assert.ok(mixed >= bulk - 0.015, `streamed in mixed sizes ${mixed} vs bulk ${bulk}`);
  assert.ok(b300 >= bulk - 0.015, `streamed in 300s ${b300} vs bulk ${bulk}`);
  // The corpus tells the two paths apart: appending to centroids trained on the first documents loses recall.
  assert.ok(without < bulk - 0.03, `never retrained ${without} vs bulk ${bulk}`);
  // Asked to, even that engine retrains the index to a bulk build's quality.
  await never.retrain("never");
  const retrained = await recallOf(never, "never", truth);
  assert.ok(retrained >= bulk - 0.015, `retrained on request ${retrained} vs bulk ${bulk}`);
  // A retrained index has the partitions of a bulk build of its size (not a few first ones plus outliers).
  assert.ok(Math.abs(engine.info("b300").num_partitions - engine.info("bulk").num_partitions) <= engine.info("bulk").num_partitions / 8);
  await engine.close();
  await never.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("a retrain runs in the background: updates, deletes and searches go on meanwhile, and what they did is in the retrained index", { timeout: 120_000 }, async () => {
  const root = tmp();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let paused = false;
  // Catching up with what was written while it ran: all of it outside the write lock (the knob at 0).
  const locked: number[] = [];
  // Held once its codec is trained, before writes can encode with it: they leave their chunks to its catch-up.
  const engine = await PlaidEngine.create(root, 2, undefined, { retrainPause: (stage) => (stage === "trained" ? ((paused = true), held) : Promise.resolve()), retrainLockedTokens: 0, onRetrainLocked: (t) => locked.push(t) });
  engine.declare("r", { start_from_scratch: 100 });
  await engine.add("r", slice(0, 150), DIM, meta(0, 150));
  await engine.add("r", slice(150, 800), DIM, meta(150, 800)); // grown past 1.25×: a retrain starts
  assert.equal(engine.background("r").retraining, true);
  const k = engine.info("r").num_partitions;
  // While it runs (held before its commit): an update commits, a delete too, searches answer.
  while (!paused) await new Promise((r) => setTimeout(r, 10));
  const chunkIds = () => new Set(fs.readdirSync(path.join(root, "r")).flatMap((f) => /^chunk\.([0-9a-f]+)\./.exec(f)?.[1] ?? []));
  const whilePaused = chunkIds(); // the retrain's source (the manifest it started from) and what it wrote
  await engine.add("r", slice(800, 1000), DIM, meta(800, 1000));
  assert.equal(await engine.deleteWhere("r", "doc < ?", [20]), 20);
  // What those writes replaced is swept at once, the retrain's files are not (it commits below).
  const manifest = (engine as unknown as { open: Map<string, { manifest: Manifest }> }).open.get("r")!.manifest;
  const named = new Set(manifest.chunks.flatMap((c) => [c.id, c.rawId ?? c.id]));
  assert.deepEqual([...chunkIds()].filter((id) => !named.has(id) && !whilePaused.has(id)), [], "no file of the intermediate state");
  for (const id of whilePaused) assert.ok(chunkIds().has(id), "the retrain's files stay");
  const [during] = await engine.search("r", request(corpus.queries[0]!));
  assert.equal(during!.document_ids.length, 10);
  assert.equal(engine.info("r").num_documents, 980);
  assert.equal(engine.background("r").retraining, true, "still retraining");
  assert.equal(engine.info("r").num_partitions >= k, true, "the old codec (grown by outlier centroids) until the retrain commits");
  const written = manifest.chunks.filter((c) => !whilePaused.has(c.id)).reduce((a, c) => a + c.tokens, 0);
  assert.ok(written > 0, "writes during the retrain made chunks for it to catch up with");
  release();
  await engine.settle("r");
  assert.equal(engine.background("r").error, undefined);
  assert.equal(locked[0], 0, `the retrain caught up with ${written} tokens before taking the write lock`);
  const info = engine.info("r");
  assert.equal(info.num_documents, 980);
  assert.notEqual(info.num_partitions, k, "retrained");
  // Documents added and renumbered while it ran are in the retrained index, under their ids.
  const rows = engine.metadataAll("r");
  for (const id of [0, 500, 979]) {
    const doc = rows[id]!["doc"] as number;
    const [r] = await engine.search("r", request(corpus.data.slice(offsets[doc]! * DIM, (offsets[doc]! + 8) * DIM), { topK: 1 }));
    assert.deepEqual(r!.document_ids, [id], `document ${doc}`);
  }
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("writes made once a retrain's codec is trained encode their own chunks with it too: its commit encodes under the write lock only what was written before", { timeout: 120_000 }, async () => {
  const root = tmp();
  const gate = () => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  };
  const holds = { trained: gate(), recoded: gate() };
  const reached = new Set<string>();
  const locked: number[] = [];
  // Held once its codec is trained, then once it has encoded the chunks it started from; no
  // catch-up rounds (the knob at its maximum): whatever the writes leave is encoded under the lock.
  const engine = await PlaidEngine.create(root, 2, undefined, {
    retrainPause: (stage) => (reached.add(stage), holds[stage].promise),
    retrainLockedTokens: Infinity,
    onRetrainLocked: (t) => locked.push(t),
  });
  const until = async (stage: string) => {
    while (!reached.has(stage)) await new Promise((r) => setTimeout(r, 10));
  };
  engine.declare("w", { start_from_scratch: 100, batch_size: 100 });
  await engine.add("w", slice(0, 150), DIM, meta(0, 150));
  await engine.add("w", slice(150, 800), DIM, meta(150, 800));
  await until("trained");
  // Written before writes can encode with the new codec: left to the retrain (one 100-document chunk).
  await engine.add("w", slice(800, 900), DIM, meta(800, 900));
  holds.trained.resolve();
  await until("recoded");
  // A small update (buffered), one re-indexing it with its own documents, a whole chunk, deletes.
  for (const [from, to] of [[900, 950], [950, 1000], [1000, 1100]] as const) await engine.add("w", slice(from, to), DIM, meta(from, to));
  assert.equal(await engine.deleteWhere("w", "doc >= ? AND doc < ?", [910, 915]), 5);
  assert.equal(await engine.deleteWhere("w", "doc < ?", [20]), 20);
  holds.recoded.resolve();
  await engine.settle("w");
  assert.equal(engine.background("w").error, undefined);
  // (A second retrain follows: the index grew past 1.25× the 800 documents the first trained on.)
  assert.equal(locked[0], offsets[900]! - offsets[800]!, "only the chunk written before the codec was trained is left to the lock");
  // Every committed chunk holds what encoding its originals with the retrained codec gives.
  const ix = (engine as unknown as { open: Map<string, { dir: string; manifest: Manifest; snap: PlaidSnapshot }> }).open.get("w")!;
  const kernels = (engine as unknown as { kernels: Kernels }).kernels;
  assert.equal(ix.manifest.numDocuments, 1075);
  for (const c of ix.manifest.chunks) {
    const raw = chunkRawDocs(ix.dir, ix.manifest, c);
    const e = await encodeTokens(kernels, ix.snap.codec, ix.snap.centroidsT, raw.read(0, c.documents), c.tokens);
    raw.close();
    assert.deepEqual(readNpy(path.join(ix.dir, `chunk.${c.id}.codes.npy`)).data, e.codes);
    assert.deepEqual(readNpy(path.join(ix.dir, `chunk.${c.id}.residuals.npy`)).data, e.packed);
  }
  const rows = engine.metadataAll("w");
  for (const id of [0, 779, 800, 890, 1074]) {
    const doc = rows[id]!["doc"] as number;
    const [r] = await engine.search("w", request(corpus.data.slice(offsets[doc]! * DIM, (offsets[doc]! + 8) * DIM), { topK: 1 }));
    assert.deepEqual(r!.document_ids, [id], `document ${doc}`);
  }
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("a failed retrain leaves the index as it was, says why (engine.background, the owner's onBackground: /health), and the next one clears it", { timeout: 120_000 }, async () => {
  const root = tmp();
  let fail = true;
  const told: [boolean, string | undefined][] = [];
  const engine = await PlaidEngine.create(root, 2, undefined, {
    retrainPause: async () => {
      if (fail) throw new Error("disk full");
    },
    onBackground: (_name, busy, error) => told.push([busy, error]),
  });
  engine.declare("f", { start_from_scratch: 100 });
  await engine.add("f", slice(0, 150), DIM, meta(0, 150));
  await engine.add("f", slice(150, 400), DIM, meta(150, 400));
  await engine.settle("f");
  assert.deepEqual(told, [[true, undefined], [false, "disk full"]]);
  assert.equal(engine.background("f").error, "disk full");
  const [r] = await engine.search("f", request(corpus.data.slice(offsets[300]! * DIM, (offsets[300]! + 8) * DIM), { topK: 1 }));
  assert.deepEqual(r!.document_ids, [300], "the index answers with its codec of before");
  fail = false;
  await engine.retrain("f");
  assert.equal(engine.background("f").error, undefined);
  assert.deepEqual(told.at(-1), [false, undefined]);
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("a retrain that was due when the engine stopped resumes when the index is next opened, not at the next write", { timeout: 120_000 }, async () => {
  const root = tmp();
  // The first engine stops before its retrain commits (as a kill would).
  const first = await PlaidEngine.create(root, 2, undefined, { retrainPause: async () => Promise.reject(new Error("stopped")) });
  first.declare("o", { start_from_scratch: 100 });
  await first.add("o", slice(0, 150), DIM, meta(0, 150));
  await first.add("o", slice(150, 400), DIM, meta(150, 400));
  await first.settle("o");
  assert.equal(first.background("o").error, "stopped");
  const k = first.info("o").num_partitions;
  await first.close();
  const told: boolean[] = [];
  const second = await PlaidEngine.create(root, 2, undefined, { onBackground: (_name, busy) => told.push(busy) });
  // A search opens the index, answers at once with the committed codec, and the retrain resumes behind it.
  const [r] = await second.search("o", request(corpus.data.slice(offsets[300]! * DIM, (offsets[300]! + 8) * DIM), { topK: 1 }));
  assert.deepEqual(r!.document_ids, [300]);
  assert.equal(second.background("o").retraining, true);
  await second.settle("o");
  assert.deepEqual(told, [true, false]);
  assert.equal(second.background("o").error, undefined);
  assert.notEqual(second.info("o").num_partitions, k, "retrained");
  await second.close();
  // Nothing is due any more: the next engine opens the index and starts no retrain.
  const third = await PlaidEngine.create(root, 2, undefined, { onBackground: (_name, busy) => told.push(busy) });
  assert.equal(third.info("o").num_documents, 400);
  assert.equal(third.background("o").retraining, false);
  await third.close();
  assert.deepEqual(told, [true, false]);
  fs.rmSync(root, { recursive: true, force: true });
});

test("deletes and max_documents renumber ids correctly across retrains: each document still finds itself, with its metadata", { timeout: 120_000 }, async () => {
  const root = tmp();
  const engine = await PlaidEngine.create(root, 2);
  engine.declare("d", { start_from_scratch: 100, max_documents: 1500 });
  let from = 0;
  for (const size of [150, 300, 20, 400, 90, 600, 440]) {
    await engine.add("d", slice(from, from + size), DIM, meta(from, from + size));
    from += size;
    if (from === 470) await engine.deleteWhere("d", "group = ?", [2]);
    if (from === 960) await engine.deleteWhere("d", "doc < ? OR group = ?", [300, 4]);
  }
  await engine.settle("d");
  const info = engine.info("d");
  assert.equal(info.num_documents, 1500, "max_documents evicted the oldest");
  const rows = engine.metadataAll("d");
  assert.deepEqual(
    rows.map((r) => r["_subset_"]),
    [...Array(1500).keys()],
  );
  // Which documents survive: the deletes' conditions, then the oldest evicted down to 1 500.
  const expected: number[] = [];
  for (let d = 0; d < N; d++) {
    if (d < 470 && d % 5 === 2) continue;
    if (d < 960 && (d < 300 || d % 5 === 4)) continue;
    expected.push(d);
  }
  assert.deepEqual(
    rows.map((r) => r["doc"]),
    expected.slice(expected.length - 1500),
  );
  // A document's own tokens find it first, under its id, with its metadata.
  for (const id of [0, 1, 700, 1499]) {
    const doc = rows[id]!["doc"] as number;
    const q = corpus.data.slice(offsets[doc]! * DIM, (offsets[doc]! + 8) * DIM);
    const [r] = await engine.search("d", request(q, { topK: 1 }));
    assert.deepEqual(r!.document_ids, [id]);
    assert.equal(r!.metadata[0]!["doc"], doc);
  }
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});
