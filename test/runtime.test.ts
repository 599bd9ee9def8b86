/** The encoder runtime reproduces PyLate's encode() on every fixture (SPEC §6). */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { ColbertEncoder } from "../src/runtime/encoder.js";
import { poolDocument } from "../src/runtime/pooling.js";
import { assertEncodesLikePyLate, embeddingMaxDiff as maxDiff, expected, FIXTURE_NAMES, FP32_TOLERANCE } from "./helpers/fixtures.js";
import { exportedFixture, exportedFixtureCopy } from "./helpers/exported.js";


for (const name of FIXTURE_NAMES) {
  test(`${name}: tokenization gives PyLate's input_ids and attention masks`, async () => {
    const exp = expected(name);
    const enc = await ColbertEncoder.load(await exportedFixture(name));
    try {
      for (const q of exp.queries) assert.deepEqual(await enc.tokenizer.encode(q.text, "query"), { ids: q.input_ids, mask: q.attention_mask }, q.text);
      for (const d of exp.documents) assert.deepEqual(await enc.tokenizer.encode(d.text, "document"), { ids: d.input_ids, mask: d.attention_mask }, d.text);
    } finally {
      await enc.close();
    }
  });

  for (const batchSize of [1, 3, 32]) {
    test(`${name}: query and document embeddings within ${FP32_TOLERANCE} of PyLate (batch size ${batchSize})`, async () => {
      const exp = expected(name);
      const dir = await exportedFixture(name);
      const files = fs.readdirSync(dir).sort();
      const enc = await ColbertEncoder.load(dir, { batchSize, sessions: batchSize === 3 ? 2 : 1 });
      assert.deepEqual(fs.readdirSync(dir).sort(), files, "loading leaves nothing in the export folder");
      try {
        await assertEncodesLikePyLate(enc, exp);
      } finally {
        await enc.close();
      }
    });
  }

  const pooled = expected(name).documents_pool_factor_2;
  if (pooled) {
    test(`${name}: pool_factor 2 gives PyLate's pooled documents`, async () => {
      const enc = await ColbertEncoder.load(await exportedFixture(name));
      try {
        const out = await enc.encodeDocuments(pooled.map((p) => p.text), { poolFactor: 2 });
        out.forEach((e, i) => assert.ok(maxDiff(e, pooled[i]!.embeddings) <= FP32_TOLERANCE, pooled[i]!.text));
      } finally {
        await enc.close();
      }
    });
  }
}

test("pooling leaves a document alone when it cannot reduce it", () => {
  const data = Float32Array.from([1, 0, 0, 1, 0.6, 0.8]);
  assert.deepEqual(poolDocument(data, 3, 2, 1).rows, 3);
  assert.deepEqual(poolDocument(data.subarray(0, 4), 2, 2, 2).rows, 2);
});

// Query expansion off and attend_to_expansion_tokens on: test/encode-derived.test.ts, against PyLate's own output.

test("a missing INT8 model and an unavailable execution provider are clear errors", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert");
  fs.rmSync(path.join(dir, "model_int8.onnx"));
  await assert.rejects(ColbertEncoder.load(dir, { int8: true }), /No model_int8\.onnx .*colbert-quantize/);
  await assert.rejects(ColbertEncoder.load(dir, { executionProvider: "no-such-ep" }), /Execution provider "no-such-ep" is not available/);
});

test("a damaged model.onnx is a clear error", async () => {
  const dir = await exportedFixtureCopy("modernbert-tiny-colbert");
  const model = path.join(dir, "model.onnx");
  fs.truncateSync(model, Math.floor(fs.statSync(model).size / 2));
  await assert.rejects(ColbertEncoder.load(dir), /onnxruntime cannot load .*model\.onnx \(.*\); re-export the model/);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith(".") && f !== ".pylate-onnx-export.json"), []);
});

test("lengths beyond the model's position embeddings are refused up front", async () => {
  const dir = await exportedFixture("xlmr-tiny-colbert"); // 514 positions, padding_idx 1 → 512 tokens
  await assert.rejects(ColbertEncoder.load(dir, { documentLength: 513 }), /document_length 513 exceeds the 512 positions/);
  const enc = await ColbertEncoder.load(dir, { documentLength: 512 });
  await enc.close();
});
