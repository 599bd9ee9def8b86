/**
 * INT8 fidelity, per-tensor vs per-channel weight scales (both at ±64 levels, saturation-safe),
 * and onnxruntime quantize_dynamic's default (per tensor, ±127 — what the Python tool ships; exact
 * only on VNNI/ARM CPUs) as the baseline in the same run:
 * cosine of INT8 vs FP32 output rows on the probe texts, on (1) the sensitive BERT fixture
 * (activations O(1)), (2) the same with outlier output channels (3 % of each projection's output
 * features ×8, as trained transformers have), (3) the ModernBERT-base shapes (random weights), with
 * document throughput for (3), (4) ModernBERT-base and (5) BERT-base (ColBERTv2) shapes with
 * outlier channels.
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
import { bertBase, CACHE, machineLine, modernBertBase } from "./checkpoints.js";
import { fillerText } from "./common.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "bench-int8-"));

/** A copy of checkpoint `src` whose transformer projections have 3 % of their output features ×8. */
function withOutliers(src: string, name: string): string {
  const dst = path.join(work, name);
  fs.cpSync(src, dst, { recursive: true });
  const file = path.join(dst, "model.safetensors");
  const store = openSafetensors(file);
  const tensors = store.names().map((name) => {
    const info = store.info(name);
    const data = store.readF32(name);
    if (info.shape.length === 2 && /(encoder\.layer\.\d+\.|layers\.\d+\.(attn|mlp)\.).*weight$/.test(name)) {
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
  ["BERT sensitive + outlier channels", withOutliers(sensitive, "bert-outliers")],
  ["ModernBERT-base shapes", modernBertBase()],
  ["ModernBERT-base shapes + outlier channels", withOutliers(modernBertBase(), "modernbert-base-outliers")],
  ["BERT-base shapes (ColBERTv2) + outlier channels", withOutliers(bertBase(), "bert-base-outliers")],
];
for (const [label, model] of models) {
  const big = label === "ModernBERT-base shapes";
  const dir = (await exportModel({ model, outputDir: big ? path.join(CACHE, "exports") : work, quantize: false, logger: silentLogger })).dir;
  const line: string[] = [];
  const variants: [string, { perChannel: boolean; weightLevels?: number }][] = [
    ["onnxruntime default (per-tensor ±127)", { perChannel: false, weightLevels: 127 }],
    ["per-tensor ±64", { perChannel: false }],
    ["per-channel ±64 (ours)", { perChannel: true }],
  ];
  for (const [name, opts] of variants) {
    const out = path.join(dir, `model_int8_variant.onnx`);
    const r = await quantizeModel(path.join(dir, "model.onnx"), out, silentLogger, opts);
    let speed = "";
    if (big) {
      fs.copyFileSync(out, path.join(dir, "model_int8.onnx"));
      const docs = Array.from({ length: 64 }, (_, i) => fillerText(i, 400));
      const enc = await ColbertEncoder.load(dir, { int8: true, batchSize: 32 });
      await enc.encodeDocuments(docs.slice(0, 32));
      const t = performance.now();
      await enc.encodeDocuments(docs);
      speed = `, ${(64 / ((performance.now() - t) / 1000)).toFixed(2)} docs/s`;
      await enc.close();
    }
    line.push(`${name} mean ${r.cosine.mean.toFixed(5)} / min ${r.cosine.min.toFixed(5)}${speed}`);
    fs.rmSync(out, { force: true });
  }
  console.log(`${label}: ${line.join("; ")}`);
}
fs.rmSync(work, { recursive: true, force: true });
