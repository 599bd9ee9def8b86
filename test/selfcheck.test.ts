import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { selfCheck } from "../src/export/selfcheck.js";
import type { OnnxConfig } from "../src/colbert/onnx-config.js";
import { readModel } from "../src/onnx/reader.js";
import { GraphBuilder } from "../src/onnx/graph.js";
import { DataType } from "../src/onnx/model.js";
import { writeModel } from "../src/onnx/writer.js";
import { exportedFixtureCopy } from "./helpers/exported.js";

/** A private copy of a fixture export, and the self-check's inputs read from it. */
async function exportCopy(name: string) {
  const dir = await exportedFixtureCopy(name);
  const json = (f: string) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as Record<string, unknown>;
  const cfg = json("onnx_config.json") as unknown as OnnxConfig;
  const check = () => selfCheck(path.join(dir, "model.onnx"), json("tokenizer.json"), json("tokenizer_config.json"), cfg);
  return { dir, cfg, check, files: () => fs.readdirSync(dir).sort() };
}

for (const name of ["bert-tiny-colbert", "modernbert-tiny-colbert"]) {
  test(`self-check: ${name} passes, and leaves nothing beside the model`, async () => {
    const e = await exportCopy(name);
    const before = e.files();
    const r = await e.check();
    assert.equal(r.dim, e.cfg.embedding_dim);
    // The probe query (expanded to query_length) and document: at least the query's rows.
    assert.ok(r.rows >= (e.cfg.attend_to_expansion_tokens ? e.cfg.query_length : 3), `${r.rows} rows`);
    assert.ok(r.maxNormError < 1e-5);
    assert.deepEqual(e.files(), before);
  });
}

test("self-check: NaN weights in model.onnx fail it (the weights onnxruntime runs are the file's bytes)", async () => {
  const e = await exportCopy("bert-tiny-colbert");
  const file = path.join(e.dir, "model.onnx");
  const read = readModel(file);
  // The first layer's query projection, overwritten in place with NaN.
  const victim = read.model.initializers.filter((t) => t.dataType === DataType.FLOAT && t.dims.length === 2).sort((a, b) => b.byteLength - a.byteLength)[1]!;
  read.close();
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, Buffer.from(new Float32Array(victim.byteLength / 4).fill(NaN).buffer), 0, victim.byteLength, victim.stored!.offset);
  fs.closeSync(fd);
  const before = e.files();
  await assert.rejects(e.check(), /Self-check failed: non-finite output values/);
  assert.deepEqual(e.files(), before);
});

test("self-check: a truncated model.onnx fails it with a clear error", async () => {
  const e = await exportCopy("modernbert-tiny-colbert");
  const file = path.join(e.dir, "model.onnx");
  fs.truncateSync(file, fs.statSync(file).size - 100);
  await assert.rejects(e.check(), /Self-check failed: onnxruntime cannot load .*model\.onnx \(.+\)/);
  assert.deepEqual(e.files().filter((f) => f.includes("selfcheck")), []);
});

test("self-check: a model onnxruntime refuses fails it with onnxruntime's reason, nothing left behind", async () => {
  const e = await exportCopy("bert-tiny-colbert");
  const g = new GraphBuilder();
  const ids = g.input("input_ids", DataType.INT64, ["batch", "seq"]);
  g.output(g.op("NoSuchOperator", [ids]), "output", DataType.FLOAT, ["batch", "seq", 128]);
  writeModel(path.join(e.dir, "model.onnx"), g.toModel("broken", "test"));
  const before = e.files();
  await assert.rejects(e.check(), /Self-check failed: onnxruntime cannot load .*NoSuchOperator/);
  assert.deepEqual(e.files(), before);
});
