import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "tokenizers";
import { exportModel } from "../src/export/exporter.js";
import { silentLogger } from "../src/util/log.js";
import { expected, FIXTURE_NAMES, fixtureModelDir, maxDiffOnAttended, runModel, tempDir, FP32_TOLERANCE } from "./helpers/fixtures.js";

for (const name of FIXTURE_NAMES) {
  test(`${name}: model.onnx reproduces PyLate's raw_batch output within ${FP32_TOLERANCE}`, async () => {
    const exp = expected(name);
    const result = await exportModel({ model: fixtureModelDir(name), outputDir: tempDir(), logger: silentLogger });
    const cfg = result.onnxConfig;
    const out = await runModel(path.join(result.dir, "model.onnx"), exp.raw_batch, cfg.uses_token_type_ids);
    const diff = maxDiffOnAttended(out, exp.raw_batch.output, exp.raw_batch.attention_mask);
    assert.ok(diff <= FP32_TOLERANCE, `max |diff| ${diff} > ${FP32_TOLERANCE}`);
  });

  test(`${name}: onnx_config.json matches PyLate's resolved settings`, async () => {
    const exp = expected(name);
    const result = await exportModel({ model: fixtureModelDir(name), outputDir: tempDir(), logger: silentLogger });
    const cfg = JSON.parse(fs.readFileSync(path.join(result.dir, "onnx_config.json"), "utf8")) as Record<string, unknown>;
    for (const [key, value] of Object.entries(exp.pylate_config)) {
      if (key === "vocab_size_after_prefixes" || key === "skiplist_words") continue;
      assert.deepEqual(cfg[key], value, key);
    }
    // NextPlaid looks each skiplist word up and drops the missing ones; PyLate maps those to the
    // unknown token. The written list gives NextPlaid PyLate's set of ids.
    const rust = Tokenizer.fromFile(path.join(result.dir, "tokenizer.json"));
    const model = (JSON.parse(fs.readFileSync(path.join(result.dir, "tokenizer.json"), "utf8")) as { model: { unk_token?: string | null; unk_id?: number } }).model;
    const unk = model.unk_id ?? (model.unk_token ? rust.tokenToId(model.unk_token) : null);
    const pylateIds = new Set((exp.pylate_config["skiplist_words"] as string[]).map((w) => rust.tokenToId(w) ?? unk).filter((id) => id !== null));
    const nextPlaidIds = new Set((cfg["skiplist_words"] as string[]).map((w) => rust.tokenToId(w)).filter((id) => id !== null));
    assert.deepEqual([...nextPlaidIds].sort(), [...pylateIds].sort());
    assert.deepEqual((cfg["skiplist_words"] as string[]).slice(0, 32), exp.pylate_config["skiplist_words"]);
    assert.equal(cfg["model_type"], "ColBERT");
    assert.equal(cfg["model_name"], fixtureModelDir(name));
    const hf = JSON.parse(fs.readFileSync(path.join(result.dir, "config.json"), "utf8")) as Record<string, unknown>;
    assert.equal(hf["vocab_size"], exp.pylate_config.vocab_size_after_prefixes);
    const tok = JSON.parse(fs.readFileSync(path.join(result.dir, "tokenizer.json"), "utf8")) as Record<string, unknown>;
    assert.equal(tok["truncation"], null);
    assert.equal(tok["padding"], null);
  });
}
