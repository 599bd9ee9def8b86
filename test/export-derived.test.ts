/**
 * Cases the PyLate fixtures do not show, on checkpoints derived from them (see
 * test/fixtures-derived/generate.py: expected outputs computed by PyTorch + transformers).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { exportModel } from "../src/export/exporter.js";
import { silentLogger } from "../src/util/log.js";
import { maxDiffOnAttended, runModel, tempDir, type Expected, FP32_TOLERANCE } from "./helpers/fixtures.js";

const DERIVED = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures-derived");
const CASES: Record<string, string> = {
  "bert-gelu-new": "BERT with hidden_act gelu_new (tanh approximation)",
  "modernbert-layer-types": "ModernBERT with layer_types + rope_parameters (newer config spelling), window 8",
  "modernbert-every-3": "ModernBERT with global_attn_every_n_layers 3 and its own rope thetas, window 6",
  "bert-three-dense": "three Dense layers with bias, Tanh/ReLU activations and residuals",
  "xlmr-bf16": "XLM-RoBERTa with bf16 weights",
  "distilbert-tiny": "DistilBERT (no token types, its own module names)",
  "electra-tiny": "ELECTRA with embedding_size < hidden_size (embeddings_project)",
};

for (const [name, what] of Object.entries(CASES)) {
  test(`${name}: ${what} matches PyTorch within ${FP32_TOLERANCE}`, async () => {
    const exp = JSON.parse(fs.readFileSync(path.join(DERIVED, name, "expected.json"), "utf8")) as Pick<Expected, "raw_batch">;
    const result = await exportModel({ model: path.join(DERIVED, name, "model"), outputDir: tempDir(), logger: silentLogger });
    const out = await runModel(path.join(result.dir, "model.onnx"), exp.raw_batch, result.onnxConfig.uses_token_type_ids);
    // Every row, padding included (PyTorch's sdpa, as PyLate runs it, defines those too).
    const all = exp.raw_batch.attention_mask.map((r) => r.map(() => 1));
    const diff = maxDiffOnAttended(out, exp.raw_batch.output, all);
    assert.ok(diff <= FP32_TOLERANCE, `max |diff| ${diff} > ${FP32_TOLERANCE}`);
  });
}
