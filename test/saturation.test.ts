/** INT8 models other quantizers write (full-range weights) get a warning on CPUs whose kernels saturate. */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { quantizeModel } from "../src/quantize/index.js";
import { cpuFlags, int8SaturationWarning, int8WeightPeak, saturatingInt8Kernels } from "../src/quantize/saturation.js";
import { readModel } from "../src/onnx/reader.js";
import { ColbertEncoder } from "../src/runtime/encoder.js";
import { exportedFixtureCopy } from "./helpers/exported.js";
import { fullRangeInt8 as fullRange } from "./helpers/onnx.js";

const AVX2 = new Set(["sse4_2", "avx", "avx2", "fma"]);
const AVX512_VNNI = new Set([...AVX2, "avx512f", "avx512bw", "avx512_vnni"]);
const AVX_VNNI = new Set([...AVX2, "avx_vnni"]);
const AVX512_NO_VNNI = new Set([...AVX2, "avx512f", "avx512bw"]);

test("the saturating kernels are the ones for x86 with AVX2 and no VNNI", () => {
  assert.equal(saturatingInt8Kernels(AVX2), true);
  assert.equal(saturatingInt8Kernels(AVX512_NO_VNNI), true);
  assert.equal(saturatingInt8Kernels(AVX512_VNNI), false);
  assert.equal(saturatingInt8Kernels(AVX_VNNI), false);
  assert.equal(saturatingInt8Kernels(new Set(["sse4_2"])), false, "no AVX2: onnxruntime's SSE kernels widen to int16 first");
  assert.equal(saturatingInt8Kernels(undefined), false, "not x86 Linux: nothing known, nothing said");
});

test("our INT8 weights stay within ±64 and are never warned about; full-range ones are, where kernels saturate", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert");
  await quantizeModel(path.join(dir, "model.onnx"), path.join(dir, "model_int8.onnx"));
  const ours = path.join(dir, "model_int8.onnx");
  const read = readModel(ours);
  assert.equal(int8WeightPeak(read.model), 64);
  read.close();
  for (const flags of [AVX2, AVX512_NO_VNNI, AVX512_VNNI, undefined]) assert.equal(int8SaturationWarning(ours, flags), undefined);

  // onnxruntime's default levels (the benches' baseline) are ±127 and are warned about.
  const ortDefault = path.join(dir, "model_int8_ort.onnx");
  await quantizeModel(path.join(dir, "model.onnx"), ortDefault, undefined, { perChannel: false, weightLevels: 127 });
  const ortRead = readModel(ortDefault);
  assert.equal(int8WeightPeak(ortRead.model), 127);
  ortRead.close();
  assert.match(int8SaturationWarning(ortDefault, AVX2) ?? "", /full-range/);
  fs.rmSync(ortDefault);

  fullRange(dir);
  const full = readModel(ours);
  assert.equal(int8WeightPeak(full.model), 127);
  full.close();
  assert.match(int8SaturationWarning(ours, AVX2) ?? "", /full-range int8 weights \(up to ±127\).*x86 without VNNI.*Re-quantize it with colbert-quantize/);
  assert.match(int8SaturationWarning(ours, AVX512_NO_VNNI) ?? "", /full-range/);
  assert.equal(int8SaturationWarning(ours, AVX512_VNNI), undefined);
  assert.equal(int8SaturationWarning(ours, undefined), undefined);
  assert.equal(int8SaturationWarning(path.join(dir, "model.onnx"), AVX2), undefined, "FP32: nothing to saturate");

  // The encoder passes it on where the CPU calls for it (flags injected, so both paths run on any
  // host); the model still loads and encodes.
  const saved = process.env["PYLATE_ONNX_CPU_FLAGS"];
  try {
    for (const [flags, count] of [[AVX2, 1], [AVX512_VNNI, 0]] as const) {
      process.env["PYLATE_ONNX_CPU_FLAGS"] = [...flags].join(" ");
      assert.deepEqual(cpuFlags(), flags);
      const warnings: string[] = [];
      const enc = await ColbertEncoder.load(dir, { int8: true, onWarning: (m) => warnings.push(m) });
      const [doc] = await enc.encodeDocuments(["full-range weights still load"]);
      await enc.close();
      assert.ok(doc!.rows > 0);
      assert.equal(warnings.length, count, warnings.join("\n"));
      if (count) assert.match(warnings[0]!, /full-range int8 weights .* re-quantize it with colbert-quantize/i);
    }
  } finally {
    if (saved === undefined) delete process.env["PYLATE_ONNX_CPU_FLAGS"];
    else process.env["PYLATE_ONNX_CPU_FLAGS"] = saved;
  }
});

test("an unreadable INT8 model gets no warning: loading it reports the problem", () => {
  assert.equal(int8SaturationWarning(path.join("/nonexistent", "model_int8.onnx"), AVX2), undefined);
});
