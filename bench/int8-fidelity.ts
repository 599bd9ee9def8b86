/**
 * INT8 fidelity, per-tensor vs per-channel weight scales (both at ±64 levels, saturation-safe):
 * cosine of INT8 vs FP32 output rows on the probe texts, on (1) the sensitive BERT fixture
 * (activations O(1)), (2) the same with outlier output channels (3 % of each projection's output
 * features ×8, as trained transformers have), (3) the ModernBERT-base shapes (random weights), with
 * document throughput for (3).
 *   node --import tsx bench/int8-fidelity.ts
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { exportModel } from "../src/export/exporter.js";
import { quantizeModel } from "../src/quantize/index.js";
import { ColbertEncoder } from "../src/runtime/encoder.js";
import { openSafetensors, writeSafetensors } from "../src/checkpoint/safetensors.js";
import { silentLogger } from "../src/util/log.js";
import { CACHE, machineLine, modernBertBase } from "./checkpoints.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "bench-int8-"));

function withOutliers(src: string): string {
  const dst = path.join(work, "bert-outliers");
  fs.cpSync(src, dst, { recursive: true });
  const file = path.join(dst, "model.safetensors");
  const store = openSafetensors(file);
  const tensors = store.names().map((name) => {
    const info = store.info(name);
    const data = store.readF32(name);
    if (info.shape.length === 2 && /encoder\.layer\.\d+\..*\.weight$/.test(name)) {
      const [out, inF] = info.shape as [number, number];
      for (let o = 0; o < out; o++) if (o % 33 === 7) for (let i = 0; i < inF; i++) data[o * inF + i]! *= 8;
    }
    return { name, dtype: "F32" as const, shape: info.shape, data: new Uint8Array(data.buffer) };
  });
  store.close();
  writeSafetensors(file, tensors);
  return dst;
}

console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}`);
const sensitive = path.join(root, "test", "fixtures-derived", "bert-sensitive", "model");
const models: [string, string][] = [
  ["BERT sensitive fixture", sensitive],
  ["BERT sensitive + outlier channels", withOutliers(sensitive)],
  ["ModernBERT-base shapes", modernBertBase()],
];
for (const [label, model] of models) {
  const big = label.startsWith("ModernBERT");
  const dir = (await exportModel({ model, outputDir: big ? path.join(CACHE, "exports") : work, quantize: false, logger: silentLogger })).dir;
  const line: string[] = [];
  for (const perChannel of [false, true]) {
    const out = path.join(dir, perChannel ? "model_int8_pc.onnx" : "model_int8_pt.onnx");
    const r = await quantizeModel(path.join(dir, "model.onnx"), out, silentLogger, { perChannel });
    let speed = "";
    if (big) {
      fs.copyFileSync(out, path.join(dir, "model_int8.onnx"));
      const words = fs.readFileSync(path.join(root, "test", "fixtures", "bert-tiny-colbert", "expected.json"), "utf8").match(/[A-Za-z]{3,}/g)!;
      const docs = Array.from({ length: 64 }, (_, i) => Array.from({ length: 400 }, (_, j) => words[(i * 7919 + j * 31) % words.length]).join(" "));
      const enc = await ColbertEncoder.load(dir, { int8: true, batchSize: 32 });
      await enc.encodeDocuments(docs.slice(0, 32));
      const t = performance.now();
      await enc.encodeDocuments(docs);
      speed = `, ${(64 / ((performance.now() - t) / 1000)).toFixed(2)} docs/s`;
      await enc.close();
    }
    line.push(`${perChannel ? "per-channel" : "per-tensor"} mean ${r.cosine.mean.toFixed(5)} / min ${r.cosine.min.toFixed(5)}${speed}`);
    fs.rmSync(out, { force: true });
  }
  console.log(`${label}: ${line.join("; ")}`);
}
fs.rmSync(work, { recursive: true, force: true });
