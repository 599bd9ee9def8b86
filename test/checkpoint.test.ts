/** Checkpoint readers: dtype conversion, F16 weights, pytorch_model.bin tensors. */
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { bf16ToF32, f16ToF32, f32ToF16 } from "../src/checkpoint/dtype.js";
import { openSafetensors, writeSafetensors } from "../src/checkpoint/safetensors.js";
import { openPytorchBin } from "../src/checkpoint/pytorch.js";
import { exportModel } from "../src/export/exporter.js";
import { silentLogger } from "../src/util/log.js";
import { copyFixture, expected, fixtureModelDir, runModel, tempDir } from "./helpers/fixtures.js";

test("f16 and bf16 decode exactly, edge values included", () => {
  const half = f16ToF32(Uint16Array.from([0x0000, 0x8000, 0x0001, 0x03ff, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00]));
  assert.deepEqual(Array.from(half.subarray(0, 9)), [0, -0, 2 ** -24, 1023 * 2 ** -24, 1, -2, 65504, Infinity, -Infinity]);
  assert.ok(Object.is(half[1], -0));
  assert.ok(Number.isNaN(half[9]));
  const bf = bf16ToF32(Uint16Array.from([0x3f80, 0xc000, 0x7f80, 0x0001]));
  assert.deepEqual(Array.from(bf), [1, -2, Infinity, Math.fround(2 ** -133)]);
});

test("f32 → f16 rounds to nearest even and round-trips every half value", () => {
  const all = f16ToF32(Uint16Array.from({ length: 65536 }, (_, i) => i));
  const back = f32ToF16(all);
  for (let i = 0; i < 65536; i++) if (!Number.isNaN(all[i])) assert.equal(back[i], i, `0x${i.toString(16)}`);
  assert.deepEqual(Array.from(f32ToF16(Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e6, 2 ** -26]))), [0x3c00, 0x3c02, 0x7c00, 0]);
});

test("a checkpoint stored as F16 exports exactly like its F32 twin", async () => {
  const f16Dir = copyFixture("bert-tiny-colbert");
  const f32Dir = copyFixture("bert-tiny-colbert");
  const src = openSafetensors(path.join(fixtureModelDir("bert-tiny-colbert"), "model.safetensors"));
  const half = src.names().map((name) => ({ name, shape: src.info(name).shape, bits: f32ToF16(src.readF32(name)) }));
  src.close();
  writeSafetensors(path.join(f16Dir, "model.safetensors"), half.map((t) => ({ name: t.name, dtype: "F16" as const, shape: t.shape, data: new Uint8Array(t.bits.buffer) })));
  writeSafetensors(
    path.join(f32Dir, "model.safetensors"),
    half.map((t) => ({ name: t.name, dtype: "F32" as const, shape: t.shape, data: new Uint8Array(f16ToF32(t.bits).buffer) })),
  );
  const batch = expected("bert-tiny-colbert").raw_batch;
  const outs = [];
  for (const dir of [f16Dir, f32Dir]) {
    const r = await exportModel({ model: dir, outputDir: tempDir(), logger: silentLogger });
    outs.push(await runModel(path.join(r.dir, "model.onnx"), batch, true));
  }
  assert.deepEqual(outs[0], outs[1]);
});

test("pytorch_model.bin: tensors of a Stanford checkpoint are read through the restricted unpickler", () => {
  const store = openPytorchBin(path.join(fixtureModelDir("stanford-colbert-tiny"), "pytorch_model.bin"));
  try {
    assert.deepEqual(store.info("bert.embeddings.word_embeddings.weight").shape, [3000, 32]);
    assert.deepEqual(store.info("linear.weight").shape, [16, 32]);
    assert.equal(store.info("linear.weight").dtype, "F32");
    const w = store.readF32("bert.encoder.layer.1.output.LayerNorm.weight");
    assert.equal(w.length, 32);
    assert.ok(w.every(Number.isFinite));
    assert.ok(store.names().filter((n) => n.startsWith("bert.encoder.layer.")).length >= 32);
  } finally {
    store.close();
  }
});
