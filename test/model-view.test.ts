import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import * as ort from "onnxruntime-node";
import { PROBE_SESSION_OPTIONS, withModelView } from "../src/runtime/model-view.js";
import { exportedFixtureCopy } from "./helpers/exported.js";
import { expected, maxDiffOnAttended, tempDir, FP32_TOLERANCE } from "./helpers/fixtures.js";

/** Runs a fixture's raw_batch through `session`; returns output as nested rows. */
async function runRawBatch(session: ort.InferenceSession, name: string): Promise<number[][][]> {
  const raw = expected(name).raw_batch;
  const [b, s] = [raw.input_ids.length, raw.input_ids[0]!.length];
  const t = (rows: number[][]) => new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [b, s]);
  const feeds: Record<string, ort.Tensor> = { input_ids: t(raw.input_ids), attention_mask: t(raw.attention_mask) };
  if (session.inputNames.includes("token_type_ids")) feeds["token_type_ids"] = t(raw.token_type_ids ?? raw.input_ids.map((r) => r.map(() => 0)));
  const out = (await session.run(feeds))["output"]!;
  const dim = out.dims[2]!;
  const data = out.data as Float32Array;
  return Array.from({ length: b }, (_, i) => Array.from({ length: s }, (_, j) => Array.from(data.subarray((i * s + j) * dim, (i * s + j + 1) * dim))));
}

for (const [name, options] of [
  ["modernbert-tiny-colbert", PROBE_SESSION_OPTIONS],
  ["xlmr-tiny-colbert", { graphOptimizationLevel: "all" }],
] as const) {
  test(`model view: ${name} (${options.graphOptimizationLevel} optimisations) reproduces PyLate's raw_batch; the view is gone once loaded`, async () => {
    const dir = await exportedFixtureCopy(name);
    const before = fs.readdirSync(dir).sort();
    let during: string[] = [];
    const session = await withModelView(path.join(dir, "model.onnx"), (file) => {
      during = fs.readdirSync(dir);
      assert.equal(path.dirname(file), dir);
      return ort.InferenceSession.create(file, options);
    });
    assert.equal(during.length, before.length + 1, "the view sits beside the model while loading");
    assert.deepEqual(fs.readdirSync(dir).sort(), before);
    const out = await runRawBatch(session, name);
    await session.release();
    const raw = expected(name).raw_batch;
    const diff = maxDiffOnAttended(out, raw.output, raw.attention_mask);
    assert.ok(diff <= FP32_TOLERANCE, `max |diff| ${diff}`);
  });
}

test("model view: removed when loading fails too", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert");
  const before = fs.readdirSync(dir).sort();
  await assert.rejects(withModelView(path.join(dir, "model.onnx"), () => Promise.reject(new Error("no EP"))), /no EP/);
  assert.deepEqual(fs.readdirSync(dir).sort(), before);
});

test("model view: the model itself is loaded when no view can be written beside it", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert");
  const model = path.join(dir, "model.onnx");
  // Something already occupies the view's name, as an unwritable folder would make writing fail.
  const blocker = path.join(dir, `.model.onnx.${process.pid}.view.onnx`);
  fs.mkdirSync(blocker);
  const session = await withModelView(model, (file) => {
    assert.equal(file, model);
    return ort.InferenceSession.create(file, PROBE_SESSION_OPTIONS);
  });
  const out = await runRawBatch(session, "bert-tiny-colbert");
  await session.release();
  const raw = expected("bert-tiny-colbert").raw_batch;
  assert.ok(maxDiffOnAttended(out, raw.output, raw.attention_mask) <= FP32_TOLERANCE);
  assert.ok(fs.statSync(blocker).isDirectory());
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith(".tmp")), []);
});

/** y = 2x + 1 + w, w[i] = i / 256, for x = 1 (see test/fixtures-onnx/generate.py). */
async function checkTwicePlusOne(session: ort.InferenceSession): Promise<void> {
  const y = (await session.run({ x: new ort.Tensor("float32", new Float32Array(256).fill(1), [1, 256]) }))["y"]!.data as Float32Array;
  y.forEach((v, i) => assert.ok(Math.abs(v - (3 + i / 256)) < 1e-6, `y[${i}] = ${v}`));
}

for (const [file, expectedLoads] of [
  ["double-weights.onnx", "the model itself only: the reader does not handle DOUBLE tensors, so no view is made"],
  ["local-function.onnx", "the view, refused (it drops model-local functions), then the model itself"],
] as const) {
  test(`model view: ${file} loads — ${expectedLoads}`, async () => {
    const dir = tempDir();
    const model = path.join(dir, file);
    fs.copyFileSync(path.join(import.meta.dirname, "fixtures-onnx", file), model);
    const tried: string[] = [];
    const session = await withModelView(model, (f) => {
      tried.push(path.basename(f));
      return ort.InferenceSession.create(f, PROBE_SESSION_OPTIONS);
    });
    await checkTwicePlusOne(session);
    await session.release();
    assert.deepEqual(tried, file === "double-weights.onnx" ? [file] : [`.${file}.${process.pid}.view.onnx`, file]);
    assert.deepEqual(fs.readdirSync(dir), [file]);
  });
}

test("model view: work files left by a killed process are removed (any model's), a live process's are kept", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert");
  const dead = spawnSync(process.execPath, ["-e", ""]).pid;
  const stale = path.join(dir, `.model.onnx.${dead}.view.onnx`);
  const live = path.join(dir, `.model.onnx.${process.ppid}.view.onnx`);
  const other = path.join(dir, `.model_int8.onnx.${dead}.view.onnx`);
  for (const f of [stale, live, other]) fs.writeFileSync(f, "view");
  const session = await withModelView(path.join(dir, "model.onnx"), (file) => ort.InferenceSession.create(file, PROBE_SESSION_OPTIONS));
  await session.release();
  assert.equal(fs.existsSync(stale), false);
  assert.equal(fs.existsSync(live), true, "its process may still be loading");
  assert.equal(fs.existsSync(other), false, "a dead process's view of another model is garbage too");
});
