import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { openProbeSession } from "../src/runtime/probe-session.js";
import { exportedFixtureCopy } from "./helpers/exported.js";
import { expected, maxDiffOnAttended } from "./helpers/fixtures.js";

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

for (const name of ["modernbert-tiny-colbert", "xlmr-tiny-colbert"]) {
  test(`probe session: ${name} reproduces PyLate's raw_batch through the view, which is removed on close`, async () => {
    const dir = await exportedFixtureCopy(name);
    const before = fs.readdirSync(dir).sort();
    const probe = await openProbeSession(path.join(dir, "model.onnx"));
    assert.equal(fs.readdirSync(dir).length, before.length + 1, "the view sits beside the model while open");
    const out = await runRawBatch(probe.session, name);
    await probe.close();
    const raw = expected(name).raw_batch;
    const diff = maxDiffOnAttended(out, raw.output, raw.attention_mask);
    assert.ok(diff <= 1e-5, `max |diff| ${diff}`);
    assert.deepEqual(fs.readdirSync(dir).sort(), before);
  });
}

test("probe session: loads the model itself when no view can be written beside it", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert");
  const model = path.join(dir, "model.onnx");
  // Something already occupies the view's name, as an unwritable folder would make it fail.
  const blocker = path.join(dir, `.model.onnx.${process.pid}.probe.onnx`);
  fs.mkdirSync(blocker);
  const probe = await openProbeSession(model);
  const out = await runRawBatch(probe.session, "bert-tiny-colbert");
  await probe.close();
  const raw = expected("bert-tiny-colbert").raw_batch;
  assert.ok(maxDiffOnAttended(out, raw.output, raw.attention_mask) <= 1e-5);
  assert.ok(fs.statSync(blocker).isDirectory());
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes(".tmp")), []);
});
