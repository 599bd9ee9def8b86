/**
 * The exported models are plain ONNX: they also run in onnxruntime-web (WebAssembly), not only in
 * onnxruntime-node, with the same results.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import * as ortWeb from "onnxruntime-web";
import { quantizeModel } from "../src/quantize/index.js";
import { expected, FIXTURE_NAMES, maxDiffOnAttended, FP32_TOLERANCE, runModel } from "./helpers/fixtures.js";
import { exportedFixtureCopy } from "./helpers/exported.js";

ortWeb.env.wasm.numThreads = 1;

async function runWeb(file: string, batch: { input_ids: number[][]; attention_mask: number[][] }, tokenTypes: boolean): Promise<number[][][]> {
  const session = await ortWeb.InferenceSession.create(fs.readFileSync(file));
  const b = batch.input_ids.length;
  const n = batch.input_ids[0]!.length;
  const t = (rows: number[][]) => new ortWeb.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [b, n]);
  const feeds: Record<string, ortWeb.Tensor> = { input_ids: t(batch.input_ids), attention_mask: t(batch.attention_mask) };
  if (tokenTypes) feeds["token_type_ids"] = t(batch.input_ids.map((r) => r.map(() => 0)));
  const out = (await session.run(feeds))["output"]!;
  const data = out.data as Float32Array;
  const d = out.dims[2]!;
  await session.release();
  return Array.from({ length: b }, (_, i) => Array.from({ length: n }, (_, j) => Array.from(data.subarray((i * n + j) * d, (i * n + j + 1) * d))));
}

for (const name of FIXTURE_NAMES) {
  test(`${name}: FP32 and INT8 exports run in onnxruntime-web (WASM) like in onnxruntime-node`, async () => {
    const exp = expected(name);
    const dir = await exportedFixtureCopy(name, "m");
    await quantizeModel(path.join(dir, "model.onnx"), path.join(dir, "model_int8.onnx"));
    const tokenTypes = !!exp.raw_batch.token_type_ids;
    const fp32 = await runWeb(path.join(dir, "model.onnx"), exp.raw_batch, tokenTypes);
    assert.ok(maxDiffOnAttended(fp32, exp.raw_batch.output, exp.raw_batch.attention_mask) <= FP32_TOLERANCE);
    const int8 = await runWeb(path.join(dir, "model_int8.onnx"), exp.raw_batch, tokenTypes);
    const node = await runModel(path.join(dir, "model_int8.onnx"), exp.raw_batch, tokenTypes);
    const all = exp.raw_batch.attention_mask.map((r) => r.map(() => 1));
    const d = maxDiffOnAttended(int8, node, all);
    assert.ok(d <= 1e-6, `WASM vs node INT8: ${d}`);
  });
}
