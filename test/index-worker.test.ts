/**
 * The index thread dying (here: out of memory on a request too large for its heap) fails the calls
 * in flight, not the process; the next call starts a new thread on the same folder, which loads
 * the last committed state.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { startIndexEngine } from "../src/plaid/client.js";
import { handOver, transfers } from "../src/util/handover.js";
import { tempDir } from "./helpers/fixtures.js";
import { flatten, syntheticCorpus } from "./helpers/synthetic.js";

test("a request that kills the index thread fails alone; the engine restarts with the committed state", { timeout: 120_000 }, async () => {
  const root = tempDir("index-worker-");
  const engine = await startIndexEngine(root, { threads: 1, heapMb: 96 });
  const c = syntheticCorpus({ docs: 30, tokens: 8, dim: 8, queries: 1, queryTokens: 4, seed: 2 });
  await engine.declare("w", {});
  await engine.add("w", flatten(c.docs, 8), 8, c.docs.map((_, i) => ({ i })));
  const before = await engine.search("w", { queries: [{ data: c.queries[0]!, dim: 8 }], params: { topK: 5, nIvfProbe: 8, nFullScores: 64 }, alpha: 0.75, fusion: "rrf", filterParameters: [] });
  // ~2 M metadata objects: far beyond a 96 MB heap once the index thread receives them.
  const n = 2_000_000;
  const huge = { data: new Float32Array(n * 8), doclens: new Int32Array(n).fill(1) };
  const metadata = Array.from({ length: n }, (_, i) => ({ title: `document number ${i}`, i }));
  await assert.rejects(engine.add("w", huge, 8, metadata), /index engine stopped/);
  // The next calls run on a new thread, on the state committed before.
  assert.equal((await engine.info("w")).num_documents, 30);
  const after = await engine.search("w", { queries: [{ data: c.queries[0]!, dim: 8 }], params: { topK: 5, nIvfProbe: 8, nFullScores: 64 }, alpha: 0.75, fusion: "rrf", filterParameters: [] });
  assert.deepEqual(after, before);
  await engine.add("w", flatten(c.docs.slice(0, 5), 8), 8, c.docs.slice(0, 5).map((_, i) => ({ i: 30 + i })));
  assert.equal((await engine.info("w")).num_documents, 35);
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("a retrain that fails on the index thread is reported by the engine's status (/health), and cleared by the next one that succeeds", { timeout: 120_000 }, async () => {
  const root = tempDir("index-worker-");
  const engine = await startIndexEngine(root, { threads: 1 });
  const c = syntheticCorpus({ docs: 60, tokens: 8, dim: 8, queries: 1, queryTokens: 4, seed: 3 });
  await engine.declare("r", { start_from_scratch: 20 });
  await engine.add("r", flatten(c.docs, 8), 8, c.docs.map((_, i) => ({ i })));
  await engine.settle("r");
  const thread = () => engine.status().threads.find((t) => t.index === "r")!;
  assert.equal(thread().retrain_error, undefined);
  // The originals a retrain trains on, damaged on disk.
  const raws = fs.readdirSync(path.join(root, "r")).filter((f) => f.endsWith(".raw.npy"));
  assert.ok(raws.length > 0, "the index keeps its originals");
  const file = path.join(root, "r", raws[0]!);
  const original = fs.readFileSync(file);
  fs.writeFileSync(file, "not an array");
  await assert.rejects(engine.retrain("r"), /Retraining index 'r' failed/);
  assert.match(thread().retrain_error ?? "", /\S/, "the thread says why the retrain failed");
  assert.equal(thread().retraining, false);
  fs.writeFileSync(file, original);
  await engine.retrain("r");
  assert.equal(thread().retrain_error, undefined);
  assert.equal((await engine.info("r")).num_documents, 60);
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("a batch handed over moves to the index thread without a copy (the caller's array is emptied); unmarked arrays are copied", { timeout: 60_000 }, async () => {
  const root = tempDir("index-worker-");
  const engine = await startIndexEngine(root, { threads: 1 });
  const c = syntheticCorpus({ docs: 20, tokens: 8, dim: 8, queries: 1, queryTokens: 4, seed: 4 });
  await engine.declare("h", {});
  const copied = flatten(c.docs.slice(0, 10), 8);
  const length = copied.data.length;
  await engine.add("h", copied, 8, c.docs.slice(0, 10).map((_, i) => ({ i })));
  assert.equal(copied.data.length, length, "not handed over: still the caller's");
  const moved = flatten(c.docs.slice(10), 8);
  const view = new Float32Array(moved.data.buffer, 4, 4);
  assert.deepEqual(transfers([{ data: handOver(view) }]), [], "a view of a larger buffer is never handed over");
  const batch = { data: handOver(moved.data.slice()), doclens: handOver(moved.doclens.slice()) };
  await engine.add("h", batch, 8, c.docs.slice(10).map((_, i) => ({ i: 10 + i })));
  assert.equal(batch.data.length, 0, "handed over: moved to the index thread");
  assert.equal((await engine.info("h")).num_documents, 20);
  const [r] = await engine.search("h", { queries: [{ data: moved.data.subarray(0, moved.doclens[0]! * 8), dim: 8 }], params: { topK: 1, nIvfProbe: 8, nFullScores: 64 }, alpha: 0.75, fusion: "rrf", filterParameters: [] });
  assert.deepEqual(r!.document_ids, [10], "the moved documents arrived whole");
  await engine.close();
  fs.rmSync(root, { recursive: true, force: true });
});
