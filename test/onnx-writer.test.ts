import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../src/onnx/graph.js";
import { DataType, tensorFromArray } from "../src/onnx/model.js";
import { writeModel } from "../src/onnx/writer.js";
import { readModel } from "../src/onnx/reader.js";
import { tempDir } from "./helpers/fixtures.js";

/** y = relu(x @ W + b) with W [4, 3] and b [3]. */
function tinyModel() {
  const g = new GraphBuilder();
  const x = g.input("x", DataType.FLOAT, ["batch", 4]);
  const W = Float32Array.from({ length: 12 }, (_, i) => (i - 6) / 4);
  const w = g.initializer(tensorFromArray("W", DataType.FLOAT, [4, 3], W));
  // A bigger tensor too, so "external" has something above the inline threshold.
  const big = g.initializer(tensorFromArray("big", DataType.FLOAT, [1024], new Float32Array(1024).fill(0.5)));
  const bigSum = g.op("ReduceSum", [big], { keepdims: { kind: "int", value: 0 } });
  const y = g.op("Relu", [g.add(g.add(g.matmul(x, w), g.constF32([1, -1, 0.5])), bigSum)]);
  g.output(y, "y", DataType.FLOAT, ["batch", 3]);
  return { model: g.toModel("tiny", "test"), W };
}

function reference(x: number[], W: Float32Array): number[] {
  return [0, 1, 2].map((j) => Math.max(0, x.reduce((s, v, i) => s + v * W[i * 3 + j]!, 0) + [1, -1, 0.5][j]! + 512));
}

async function run(file: string, x: number[]): Promise<number[]> {
  const s = await ort.InferenceSession.create(file);
  const out = await s.run({ x: new ort.Tensor("float32", Float32Array.from(x), [1, 4]) });
  await s.release();
  return Array.from(out["y"]!.data as Float32Array);
}

for (const externalData of ["never", "always"] as const) {
  test(`writer: a model written with externalData=${externalData} runs in onnxruntime with the right values`, async () => {
    const dir = tempDir();
    const file = path.join(dir, "model.onnx");
    const { model, W } = tinyModel();
    const result = writeModel(file, model, { externalData });
    const x = [0.5, -1, 2, 3];
    const y = await run(file, x);
    reference(x, W).forEach((v, i) => assert.ok(Math.abs(v - y[i]!) < 1e-5, `${v} vs ${y[i]}`));
    assert.equal(fs.existsSync(file + ".data"), externalData === "always");
    assert.deepEqual(result.files.map((f) => path.basename(f)), externalData === "always" ? ["model.onnx", "model.onnx.data"] : ["model.onnx"]);
    assert.deepEqual(fs.readdirSync(dir).sort(), result.files.map((f) => path.basename(f)).sort(), "no temp files left");
  });
}

test("writer: a failing tensor producer leaves no file behind and keeps the previous model", () => {
  const dir = tempDir();
  const file = path.join(dir, "model.onnx");
  fs.writeFileSync(file, "previous");
  const { model } = tinyModel();
  model.initializers[0] = { ...model.initializers[0]!, data: () => { throw new Error("disk on fire"); } };
  assert.throws(() => writeModel(file, model), /disk on fire/);
  assert.deepEqual(fs.readdirSync(dir), ["model.onnx"]);
  assert.equal(fs.readFileSync(file, "utf8"), "previous");
});

for (const externalData of ["never", "always"] as const) {
  test(`writer: referenceStored (source written with externalData=${externalData}) points at the source's bytes instead of copying them`, async () => {
    const dir = tempDir();
    const file = path.join(dir, "model.onnx");
    const { model, W } = tinyModel();
    writeModel(file, model, { externalData });
    const read = readModel(file);
    const view = path.join(dir, "view.onnx");
    try {
      writeModel(view, read.model, { referenceStored: true });
    } finally {
      read.close();
    }
    // The 4 KB tensor is referenced, not copied; the 48-byte W is small enough to stay inline.
    assert.ok(fs.statSync(view).size < 1024, `view is ${fs.statSync(view).size} bytes`);
    assert.ok(!fs.existsSync(view + ".data"));
    const x = [1, 2, -0.5, 0.25];
    const y = await run(view, x);
    assert.deepEqual(y, await run(file, x));
    reference(x, W).forEach((v, i) => assert.ok(Math.abs(v - y[i]!) < 1e-5, `${v} vs ${y[i]}`));
  });
}

test("writer: referenceStored refuses bytes outside the new model's folder", () => {
  const dir = tempDir();
  const file = path.join(dir, "model.onnx");
  writeModel(file, tinyModel().model);
  const read = readModel(file);
  try {
    const sub = path.join(dir, "sub");
    fs.mkdirSync(sub);
    assert.throws(() => writeModel(path.join(sub, "view.onnx"), read.model, { referenceStored: true }), /outside the folder/);
    assert.deepEqual(fs.readdirSync(sub), []);
  } finally {
    read.close();
  }
});
