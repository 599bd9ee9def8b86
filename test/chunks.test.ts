/**
 * The encoder's batch loop (export/chunks.ts): chunked graphs compute every row as the whole-batch
 * graph does, PyLate-exact, for any chunk size (one row, ragged last chunk, one chunk), and the
 * INT8 model is quantized inside the loop body.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { exportModel } from "../src/export/exporter.js";
import { CHUNK_TOKENS_INITIALIZER, DEFAULT_CHUNK_TOKENS, WHOLE_BATCH_TOKENS } from "../src/export/chunks.js";
import { withModelView } from "../src/runtime/model-view.js";
import { readModel } from "../src/onnx/reader.js";
import { allNodes, type NodeDef } from "../src/onnx/model.js";
import { silentLogger } from "../src/util/log.js";
import { assertEncodesLikePyLate, expected, FIXTURE_NAMES, fixtureModelDir, maxDiffOnAttended, runModel, tempDir, FP32_TOLERANCE } from "./helpers/fixtures.js";
import { ColbertEncoder } from "../src/runtime/encoder.js";

async function exported(name: string, chunkTokens: number, quantize = false): Promise<string> {
  return (await exportModel({ model: fixtureModelDir(name), outputDir: tempDir(), logger: silentLogger, chunkTokens, quantize })).dir;
}

function maxDiff(a: number[][][], b: number[][][]): number {
  let max = 0;
  a.forEach((seq, i) => seq.forEach((row, j) => row.forEach((v, k) => (max = Math.max(max, Math.abs(v - b[i]![j]![k]!))))));
  return max;
}

function opCounts(nodes: Iterable<NodeDef>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of nodes) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
  return counts;
}

for (const name of FIXTURE_NAMES) {
  test(`${name}: chunked graphs (1 row, 2 rows with a ragged last chunk, the default) give the whole-batch output, PyLate-exact`, async () => {
    const exp = expected(name);
    const seq = exp.raw_batch.input_ids[0]!.length;
    assert.equal(exp.raw_batch.input_ids.length, 3, "three rows: chunks of two leave a ragged last one");
    const whole = await exported(name, 0);
    const withTypes = (await readModel(path.join(whole, "model.onnx"))).model.inputs.some((i) => i.name === "token_type_ids");
    const reference = await runModel(path.join(whole, "model.onnx"), exp.raw_batch, withTypes);
    for (const chunkTokens of [1, 2 * seq, DEFAULT_CHUNK_TOKENS]) {
      const dir = await exported(name, chunkTokens);
      const out = await runModel(path.join(dir, "model.onnx"), exp.raw_batch, withTypes);
      // Every position, padding included: each row is computed on its own either way.
      assert.ok(maxDiff(out, reference) <= 1e-6, `--chunk-tokens ${chunkTokens}: max |diff| ${maxDiff(out, reference)} vs the whole-batch graph`);
      const diff = maxDiffOnAttended(out, exp.raw_batch.output, exp.raw_batch.attention_mask);
      assert.ok(diff <= FP32_TOLERANCE, `--chunk-tokens ${chunkTokens}: max |diff| ${diff} vs PyLate`);
    }
  });
}

for (const name of FIXTURE_NAMES) {
  test(`${name}: the runtime on a one-row-per-chunk export gives PyLate's queries (expansion included) and documents`, async () => {
    const exp = expected(name);
    const enc = await ColbertEncoder.load(await exported(name, 1), { batchSize: 32 });
    try {
      await assertEncodesLikePyLate(enc, exp);
    } finally {
      await enc.close();
    }
  });
}

test("the chunked graph is one Loop over the batch holding the whole encoder; INT8 quantizes inside it", async () => {
  const whole = await exported("bert-tiny-colbert", 0, true);
  const chunked = await exported("bert-tiny-colbert", DEFAULT_CHUNK_TOKENS, true);
  const fp32 = readModel(path.join(chunked, "model.onnx"));
  fp32.close();
  const loops = fp32.model.nodes.filter((n) => n.opType === "Loop");
  assert.equal(loops.length, 1);
  const body = loops[0]!.attributes["body"];
  assert.ok(body?.kind === "graph");
  assert.deepEqual(body.value.inputs.map((i) => i.shape), [[], [], undefined], "iteration, condition, rows so far (length grows)");
  const plain = readModel(path.join(whole, "model.onnx"));
  plain.close();
  const inBody = opCounts(allNodes(body.value.nodes));
  const wholeOps = opCounts(plain.model.nodes);
  assert.equal(inBody.get("MatMul"), wholeOps.get("MatMul"), "every MatMul runs per chunk");
  assert.equal(fp32.model.initializers.length >= plain.model.initializers.length, true, "weights stay in the main graph");

  const q = readModel(path.join(chunked, "model_int8.onnx"));
  q.close();
  const qWhole = readModel(path.join(whole, "model_int8.onnx"));
  qWhole.close();
  const qOps = opCounts(allNodes(q.model.nodes));
  const qWholeOps = opCounts(qWhole.model.nodes);
  assert.ok((qOps.get("MatMulInteger") ?? 0) > 0);
  for (const op of ["MatMulInteger", "DynamicQuantizeLinear", "MatMul"]) assert.equal(qOps.get(op), qWholeOps.get(op), op);
});

test("a view for GPU-like providers runs whole batches: chunk_tokens raised, same output", async () => {
  const exp = expected("bert-tiny-colbert");
  const model = path.join(await exported("bert-tiny-colbert", 180), "model.onnx");
  const chunkTokensIn = (file: string) => {
    const read = readModel(file);
    try {
      const t = read.model.initializers.find((i) => i.name === CHUNK_TOKENS_INITIALIZER)!;
      const d = t.data();
      return new BigInt64Array(d.buffer.slice(d.byteOffset, d.byteOffset + 8))[0];
    } finally {
      read.close();
    }
  };
  assert.equal(chunkTokensIn(model), 180n);
  const seen: bigint[] = [];
  for (const wholeBatches of [false, true]) {
    const out = await withModelView(model, async (file) => {
      seen.push(chunkTokensIn(file)!);
      return runModel(file, exp.raw_batch, true);
    }, { wholeBatches });
    assert.ok(maxDiffOnAttended(out, exp.raw_batch.output, exp.raw_batch.attention_mask) <= FP32_TOLERANCE);
  }
  assert.deepEqual(seen, [180n, WHOLE_BATCH_TOKENS]);
  assert.equal(chunkTokensIn(model), 180n, "the model itself is unchanged");
});

test("empty batches and empty sequences give empty outputs, chunked as whole", async () => {
  for (const chunkTokens of [0, DEFAULT_CHUNK_TOKENS]) {
    const session = await ort.InferenceSession.create(path.join(await exported("bert-tiny-colbert", chunkTokens), "model.onnx"));
    for (const dims of [[2, 0], [0, 5]]) {
      const z = new ort.Tensor("int64", new BigInt64Array(0), dims);
      const out = (await session.run({ input_ids: z, attention_mask: z, token_type_ids: z }))["output"]!;
      assert.deepEqual(out.dims, [...dims, 16], `--chunk-tokens ${chunkTokens}, input [${dims}]`);
    }
    await session.release();
  }
});

const isMatMulWithWeight = (n: NodeDef, inits: Set<string>) => n.opType === "MatMul" && inits.has(n.inputs[1]!);

test("by default model.onnx is a plain graph (what onnxruntime's quantize_dynamic quantizes) and model_int8.onnx runs in chunks", async () => {
  const dir = (await exportModel({ model: fixtureModelDir("bert-tiny-colbert"), outputDir: tempDir(), logger: silentLogger })).dir;
  const fp32 = readModel(path.join(dir, "model.onnx"));
  fp32.close();
  // quantize_dynamic walks the main graph's nodes and quantizes each MatMul whose weight is an
  // initializer: here every one of them is there, no node holds a subgraph.
  assert.equal(fp32.model.nodes.filter((n) => Object.values(n.attributes).some((a) => a.kind === "graph")).length, 0, "no Loop / If / Scan");
  assert.equal(fp32.model.initializers.find((t) => t.name === CHUNK_TOKENS_INITIALIZER), undefined);
  const inits = new Set(fp32.model.initializers.map((t) => t.name));
  const quantizable = fp32.model.nodes.filter((n) => isMatMulWithWeight(n, inits)).length;
  assert.equal(quantizable, [...allNodes(fp32.model.nodes)].filter((n) => n.opType === "MatMul" && inits.has(n.inputs[1]!)).length);
  assert.ok(quantizable >= 2 * 6 + 1, `${quantizable} weight MatMuls at the top level (2 layers × 6 + the projection)`);
  assert.equal(fp32.model.metadata?.["chunk_tokens"], "0");

  const q = readModel(path.join(dir, "model_int8.onnx"));
  const raw = q.model.initializers.find((t) => t.name === CHUNK_TOKENS_INITIALIZER)!.data();
  const chunkTokens = new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + 8))[0];
  q.close();
  const loop = q.model.nodes.filter((n) => n.opType === "Loop");
  assert.equal(loop.length, 1, "model_int8.onnx runs its batch in chunks");
  assert.equal(chunkTokens, BigInt(DEFAULT_CHUNK_TOKENS));
  const qOps = opCounts(allNodes(q.model.nodes));
  assert.equal(qOps.get("MatMulInteger"), quantizable, "every weight MatMul quantized, inside the loop");
  // The whole INT8 graph runs per chunk: it matches the FP32 model as closely as the plain INT8 does.
  const exp = expected("bert-tiny-colbert");
  const ref = await runModel(path.join(dir, "model.onnx"), exp.raw_batch, true);
  const int8 = await runModel(path.join(dir, "model_int8.onnx"), exp.raw_batch, true);
  const plainInt8 = await runModel(path.join(await exported("bert-tiny-colbert", 0, true), "model_int8.onnx"), exp.raw_batch, true);
  assert.ok(maxDiff(int8, ref) < 0.05 && maxDiff(plainInt8, ref) < 0.05, `INT8 vs FP32: chunked ${maxDiff(int8, ref)}, plain ${maxDiff(plainInt8, ref)}`);
});

test("a plain graph wrapped in the batch loop (how model_int8.onnx gets its chunks) computes the plain graph's rows", async () => {
  const { wrapInBatchLoop, chunkable, hasBatchLoop } = await import("../src/export/chunks.js");
  const { writeModel } = await import("../src/onnx/writer.js");
  const exp = expected("modernbert-tiny-colbert");
  const plainDir = await exported("modernbert-tiny-colbert", 0);
  const plain = readModel(path.join(plainDir, "model.onnx"));
  try {
    assert.ok(chunkable(plain.model));
    for (const tokens of [1, DEFAULT_CHUNK_TOKENS]) {
      const wrapped = wrapInBatchLoop(plain.model, tokens);
      assert.ok(hasBatchLoop(wrapped) && !chunkable(wrapped));
      const file = path.join(tempDir(), "wrapped.onnx");
      writeModel(file, wrapped);
      const out = await runModel(file, exp.raw_batch, false);
      const reference = await runModel(path.join(plainDir, "model.onnx"), exp.raw_batch, false);
      assert.ok(maxDiff(out, reference) <= 1e-6, `chunks of ${tokens} tokens: max |diff| ${maxDiff(out, reference)}`);
    }
  } finally {
    plain.close();
  }
});

for (const name of FIXTURE_NAMES) {
  test(`${name}: the runtime splits a plain graph's batches itself on CPU (one row per piece here), PyLate-exact`, async () => {
    const dir = await exported(name, 0);
    const enc = await ColbertEncoder.load(dir, { batchSize: 32, chunkTokens: 1 });
    try {
      assert.equal(enc.chunkTokens, 1);
      await assertEncodesLikePyLate(enc, expected(name));
    } finally {
      await enc.close();
    }
  });
}

test("the runtime leaves batching to a model that chunks in its graph, and defaults to 1024-token pieces for a plain one", async () => {
  const chunked = await ColbertEncoder.load(await exported("bert-tiny-colbert", DEFAULT_CHUNK_TOKENS), { sessions: 1 });
  const plain = await ColbertEncoder.load(await exported("bert-tiny-colbert", 0), { sessions: 1 });
  try {
    assert.equal(chunked.chunkTokens, 0);
    assert.equal(plain.chunkTokens, DEFAULT_CHUNK_TOKENS);
  } finally {
    await chunked.close();
    await plain.close();
  }
});
