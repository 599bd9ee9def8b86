/** PyLate semantics of the export: prefix tokens, settings precedence, layouts, reuse. */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { exportModel, readCompleteExport } from "../src/export/exporter.js";
import { readModel } from "../src/onnx/reader.js";
import { writeModel } from "../src/onnx/writer.js";
import { silentLogger, type Logger } from "../src/util/log.js";
import { GraphBuilder } from "../src/onnx/graph.js";
import { Weights } from "../src/backbones/weights.js";
import { wordEmbeddingTable } from "../src/backbones/embeddings.js";
import { openSafetensors, writeSafetensors } from "../src/checkpoint/safetensors.js";
import { copyFixture, expected, fixtureModelDir, maxDiffOnAttended, runModel, tempDir, FP32_TOLERANCE } from "./helpers/fixtures.js";

function readJson(file: string): Record<string, any> {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}
function editJson(file: string, fn: (v: Record<string, any>) => void): void {
  const v = readJson(file);
  fn(v);
  fs.writeFileSync(file, JSON.stringify(v, null, 2));
}
function capturingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { ...silentLogger, warnings, warn: (m: string) => warnings.push(m) };
}

async function parity(dir: string, fixture: string): Promise<number> {
  const exp = expected(fixture);
  const result = await exportModel({ model: dir, outputDir: tempDir(), logger: silentLogger });
  const out = await runModel(path.join(result.dir, "model.onnx"), exp.raw_batch, result.onnxConfig.uses_token_type_ids);
  return maxDiffOnAttended(out, exp.raw_batch.output, exp.raw_batch.attention_mask);
}

test("prefix tokens missing from the tokenizer are added exactly as PyLate adds them", async () => {
  const dir = copyFixture("bert-tiny-colbert");
  const original = readJson(path.join(dir, "tokenizer.json"));
  editJson(path.join(dir, "tokenizer.json"), (t) => (t.added_tokens = t.added_tokens.filter((a: any) => a.id < 3000)));
  const result = await exportModel({ model: dir, outputDir: tempDir(), logger: silentLogger });
  const exported = readJson(path.join(result.dir, "tokenizer.json"));
  assert.deepEqual(exported.added_tokens, original.added_tokens);
  assert.equal(result.onnxConfig.query_prefix_id, 3000);
  assert.equal(result.onnxConfig.document_prefix_id, 3001);
  const decoder = readJson(path.join(result.dir, "tokenizer_config.json")).added_tokens_decoder;
  assert.deepEqual(decoder["3000"], { content: "[Q] ", lstrip: false, normalized: true, rstrip: false, single_word: false, special: false });
  const exp = expected("bert-tiny-colbert");
  const out = await runModel(path.join(result.dir, "model.onnx"), exp.raw_batch, true);
  assert.ok(maxDiffOnAttended(out, exp.raw_batch.output, exp.raw_batch.attention_mask) <= FP32_TOLERANCE);
});

test("embedding rows for new tokens get the mean of the existing rows, with a warning", () => {
  const dir = fixtureModelDir("bert-tiny-colbert");
  const store = openSafetensors(path.join(dir, "model.safetensors"));
  const g = new GraphBuilder();
  const logger = capturingLogger();
  const w = new Weights(store);
  const name = wordEmbeddingTable({ g, w, warn: logger.warn }, "embeddings.word_embeddings.weight", 3005);
  const table = g.initializers.find((t) => t.name === name)!;
  assert.deepEqual(table.dims, [3005, 32]);
  const data = table.data() as Float32Array;
  const src = w.read("embeddings.word_embeddings.weight");
  for (let c = 0; c < 32; c++) {
    let mean = 0;
    for (let r = 0; r < 3002; r++) mean += src[r * 32 + c]!;
    mean /= 3002;
    for (const r of [3002, 3004]) assert.ok(Math.abs(data[r * 32 + c]! - mean) < 1e-6);
  }
  assert.equal(data[5 * 32 + 7], src[5 * 32 + 7]);
  assert.equal(logger.warnings.length, 1);
  assert.match(logger.warnings[0]!, /3 embedding row/);
  store.close();
});

test("empty prefixes are real values: no prefix token, null prefix ids", async () => {
  const dir = copyFixture("xlmr-tiny-colbert");
  editJson(path.join(dir, "config_sentence_transformers.json"), (c) => {
    c.query_prefix = "";
    c.document_prefix = "";
  });
  editJson(path.join(dir, "tokenizer.json"), (t) => (t.added_tokens = t.added_tokens.filter((a: any) => a.id < 3000)));
  const logger = capturingLogger();
  const result = await exportModel({ model: dir, outputDir: tempDir(), logger });
  const cfg = result.onnxConfig;
  assert.equal(cfg.query_prefix, "");
  assert.equal(cfg.document_prefix, "");
  assert.equal(cfg.query_prefix_id, null);
  assert.equal(cfg.document_prefix_id, null);
  const tok = readJson(path.join(result.dir, "tokenizer.json"));
  assert.ok(!tok.added_tokens.some((a: any) => a.content === "" || a.id >= 3000));
  // The tokenizer has 3000 ids now: the embedding is cut to 3000 rows.
  assert.equal(readJson(path.join(result.dir, "config.json")).vocab_size, 3000);
  assert.deepEqual(logger.warnings, []);
});

test("settings precedence: flag > config_sentence_transformers.json > default; expansion off forces attend off", async () => {
  const dir = copyFixture("bert-tiny-colbert");
  editJson(path.join(dir, "config_sentence_transformers.json"), (c) => {
    c.query_length = 48;
    c.document_length = null; // null means default
    c.attend_to_expansion_tokens = true;
    delete c.skiplist_words;
  });
  let r = await exportModel({ model: dir, outputDir: tempDir(), logger: silentLogger });
  assert.equal(r.onnxConfig.query_length, 48);
  assert.equal(r.onnxConfig.document_length, 180);
  assert.equal(r.onnxConfig.attend_to_expansion_tokens, true);
  assert.equal(r.onnxConfig.do_query_expansion, true);
  // PyLate's default list; "[UNK]" too for NextPlaid, as some punctuation is missing from this vocabulary.
  assert.equal(readJson(path.join(r.dir, "config_sentence_transformers.json")).skiplist_words.length, 32);
  assert.deepEqual(r.onnxConfig.skiplist_words, [...readJson(path.join(r.dir, "config_sentence_transformers.json")).skiplist_words, "[UNK]"]);
  r = await exportModel({ model: dir, outputDir: tempDir(), logger: silentLogger, overrides: { queryLength: 16, doQueryExpansion: false } });
  assert.equal(r.onnxConfig.query_length, 16);
  assert.equal(r.onnxConfig.do_query_expansion, false);
  assert.equal(r.onnxConfig.attend_to_expansion_tokens, false);
  const st = readJson(path.join(r.dir, "config_sentence_transformers.json"));
  assert.equal(st.query_length, 16);
  assert.equal(st.do_query_expansion, false);
});

test("do_query_expansion false in the model's config is written as false", async () => {
  const dir = copyFixture("modernbert-tiny-colbert");
  editJson(path.join(dir, "config_sentence_transformers.json"), (c) => (c.do_query_expansion = false));
  const r = await exportModel({ model: dir, outputDir: tempDir(), logger: silentLogger });
  assert.equal(r.onnxConfig.do_query_expansion, false);
});

test("Stanford checkpoint without artifact.metadata uses [unused0]/[unused1] and default lengths", async () => {
  const dir = copyFixture("stanford-colbert-tiny");
  fs.rmSync(path.join(dir, "artifact.metadata"));
  const r = await exportModel({ model: dir, outputDir: tempDir(), logger: silentLogger });
  assert.equal(r.onnxConfig.query_prefix, "[unused0]");
  assert.equal(r.onnxConfig.query_prefix_id, 1);
  assert.equal(r.onnxConfig.document_prefix_id, 2);
  assert.equal(r.onnxConfig.document_length, 180);
});

test("sharded safetensors export identically", async () => {
  const dir = copyFixture("bert-tiny-colbert");
  const file = path.join(dir, "model.safetensors");
  const store = openSafetensors(file);
  const names = store.names();
  const shards: Record<string, string> = {};
  const half = Math.ceil(names.length / 2);
  [names.slice(0, half), names.slice(half)].forEach((part, i) => {
    const shard = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(
      path.join(dir, shard),
      part.map((n) => ({ name: n, dtype: "F32" as const, shape: store.info(n).shape, data: new Uint8Array(store.readF32(n).buffer) })),
    );
    for (const n of part) shards[n] = shard;
  });
  store.close();
  fs.rmSync(file);
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: shards }));
  assert.ok((await parity(dir, "bert-tiny-colbert")) <= FP32_TOLERANCE);
});

test("a plain encoder is refused, and accepted with --embedding-size and a loud warning", async () => {
  const dir = copyFixture("bert-tiny-colbert");
  fs.rmSync(path.join(dir, "1_Dense"), { recursive: true });
  editJson(path.join(dir, "modules.json") as string, () => {});
  fs.writeFileSync(path.join(dir, "modules.json"), JSON.stringify([{ idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" }]));
  await assert.rejects(exportModel({ model: dir, outputDir: tempDir(), logger: silentLogger }), /plain encoder.*--embedding-size/);
  const logger = capturingLogger();
  const r = await exportModel({ model: dir, outputDir: tempDir(), logger, embeddingSize: 24 });
  assert.equal(r.onnxConfig.embedding_dim, 24);
  assert.match(logger.warnings.join("\n"), /UNTRAINED/);
});

test("--embedding-size on a model with a trained projection is ignored, with a warning", async () => {
  const logger = capturingLogger();
  const r = await exportModel({ model: copyFixture("bert-tiny-colbert"), outputDir: tempDir(), logger, embeddingSize: 24 });
  assert.equal(r.onnxConfig.embedding_dim, 16);
  assert.match(logger.warnings.join("\n"), /--embedding-size 24 is ignored: .* has a trained ColBERT projection \(16 dims\)/);
});

test("a complete export is reused, --force re-exports, an incomplete one is redone", async () => {
  const out = tempDir();
  const model = fixtureModelDir("bert-tiny-colbert");
  const first = await exportModel({ model, outputDir: out, logger: silentLogger });
  assert.equal(first.reused, false);
  assert.equal(path.basename(first.dir), "bert-tiny-colbert-onnx");
  const again = await exportModel({ model, outputDir: out, logger: silentLogger });
  assert.equal(again.reused, true);
  const forced = await exportModel({ model, outputDir: out, logger: silentLogger, force: true });
  assert.equal(forced.reused, false);
  // Other settings than the existing export's: exported again, not silently reused.
  const other = await exportModel({ model, outputDir: out, logger: silentLogger, overrides: { queryLength: 48 } });
  assert.equal(other.reused, false);
  assert.equal(other.onnxConfig.query_length, 48);
  assert.equal((await exportModel({ model, outputDir: out, logger: silentLogger, overrides: { queryLength: 48 } })).reused, true);
  fs.rmSync(path.join(out, "bert-tiny-colbert-onnx", "tokenizer.json"));
  const redone = await exportModel({ model, outputDir: out, logger: silentLogger });
  assert.equal(redone.reused, false);
  assert.ok(fs.existsSync(path.join(out, "bert-tiny-colbert-onnx", "tokenizer.json")));
  assert.deepEqual(fs.readdirSync(out), ["bert-tiny-colbert-onnx"], "no staging folders left");
  // A truncated model.onnx is not a complete export either.
  const onnxFile = path.join(out, "bert-tiny-colbert-onnx", "model.onnx");
  fs.truncateSync(onnxFile, Math.floor(fs.statSync(onnxFile).size / 2));
  assert.equal((await exportModel({ model, outputDir: out, logger: silentLogger })).reused, false);
  // Nor is one whose external data file is missing.
  const dir = path.join(out, "bert-tiny-colbert-onnx");
  assert.ok(readCompleteExport(dir));
  const m = readModel(onnxFile);
  writeModel(onnxFile, m.model, { externalData: "always" });
  m.close();
  assert.ok(readCompleteExport(dir));
  fs.rmSync(onnxFile + ".data");
  assert.equal(readCompleteExport(dir), undefined);
});

/** Re-saves a fixture's backbone weights under other names (as a model with a head would store them). */
function renameWeights(dir: string, rename: (name: string) => string, extra: Record<string, unknown> = {}): void {
  const file = path.join(dir, "model.safetensors");
  const store = openSafetensors(file);
  const tensors = store.names().map((n) => ({ name: rename(n), dtype: "F32" as const, shape: store.info(n).shape, data: new Uint8Array(store.readF32(n).buffer) }));
  store.close();
  writeSafetensors(file, tensors);
  editJson(path.join(dir, "config.json"), (c) => Object.assign(c, extra));
}

test("checkpoints saved with a head (bert. / model. / roberta. prefixes, LayerNorm gamma/beta) load like base models", async () => {
  const bertDir = copyFixture("bert-tiny-colbert");
  renameWeights(bertDir, (n) => "bert." + n.replace(/LayerNorm\.weight$/, "LayerNorm.gamma").replace(/LayerNorm\.bias$/, "LayerNorm.beta"), { architectures: ["BertForMaskedLM"] });
  assert.ok((await parity(bertDir, "bert-tiny-colbert")) <= FP32_TOLERANCE);
  const modernDir = copyFixture("modernbert-tiny-colbert");
  renameWeights(modernDir, (n) => "model." + n, { architectures: ["ModernBertForMaskedLM"] });
  assert.ok((await parity(modernDir, "modernbert-tiny-colbert")) <= FP32_TOLERANCE);
  const xlmrDir = copyFixture("xlmr-tiny-colbert");
  renameWeights(xlmrDir, (n) => "roberta." + n, { architectures: ["XLMRobertaForMaskedLM"] });
  assert.ok((await parity(xlmrDir, "xlmr-tiny-colbert")) <= FP32_TOLERANCE);
});

test("a sentence-transformers folder with the transformer in 0_Transformer/ exports identically", async () => {
  const dir = copyFixture("xlmr-tiny-colbert");
  fs.mkdirSync(path.join(dir, "0_Transformer"));
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "sentence_bert_config.json"]) {
    fs.renameSync(path.join(dir, f), path.join(dir, "0_Transformer", f));
  }
  editJson(path.join(dir, "modules.json"), (m) => {
    (m as unknown as { path: string }[])[0]!.path = "0_Transformer";
  });
  assert.ok((await parity(dir, "xlmr-tiny-colbert")) <= FP32_TOLERANCE);
});
