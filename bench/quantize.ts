/**
 * Quantization benchmark on the ModernBERT-base-shaped export: quantization time (best of 3,
 * process warm), model_int8.onnx size, INT8 vs FP32 fidelity on probe texts, and document
 * throughput (batches of 32 × 180-token documents) of both models in onnxruntime-node.
 *   node --import tsx bench/quantize.ts
 */
import path from "node:path";
import fs from "node:fs";
import { execFileSync, spawnSync } from "node:child_process";
import { exportModel } from "../src/export/exporter.js";
import { quantizeModel } from "../src/quantize/index.js";
import { ColbertEncoder } from "../src/runtime/encoder.js";
import { CACHE, machineLine, modernBertBase } from "./checkpoints.js";
import { fillerText } from "./common.js";

const dir = (await exportModel({ model: modernBertBase(), outputDir: path.join(CACHE, "exports"), quiet: true })).dir;
const input = path.join(dir, "model.onnx");
const output = path.join(dir, "model_int8.onnx");
const runs = [];
for (let i = 0; i < 3; i++) runs.push(await quantizeModel(input, output));
const best = runs.reduce((a, b) => (a.seconds < b.seconds ? a : b));
console.log(`machine: ${machineLine()}`);
console.log(
  `quantization: best ${best.seconds.toFixed(2)} s (runs ${runs.map((r) => r.seconds.toFixed(2)).join(", ")}); ` +
    `model.onnx ${(best.inputBytes / 1e6).toFixed(1)} MB → model_int8.onnx ${(best.outputBytes / 1e6).toFixed(1)} MB ` +
    `(${(best.outputBytes / 2 ** 20).toFixed(1)} MiB); probe cosine mean ${best.cosine.mean.toFixed(5)}, min ${best.cosine.min.toFixed(5)} over ${best.cosine.rows} rows`,
);

// The whole `colbert-quantize` job in a fresh process (quantize + the INT8-vs-FP32 probe): wall and peak RSS.
const root = path.join(import.meta.dirname, "..");
if (!fs.existsSync(path.join(root, "dist", "quantize", "index.js"))) execFileSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
const job = `const { quantizeModel } = await import(${JSON.stringify(path.join(root, "dist", "quantize", "index.js"))});
  await quantizeModel(${JSON.stringify(input)}, ${JSON.stringify(output)});
  process.stdout.write(String(process.resourceUsage().maxRSS / 1024));`;
const t0 = performance.now();
const child = spawnSync(process.execPath, ["--input-type=module", "-e", job], { encoding: "utf8" });
if (child.status !== 0) throw new Error(child.stderr);
console.log(`colbert-quantize job, fresh process: wall ${((performance.now() - t0) / 1000).toFixed(2)} s, peak RSS ${Number(child.stdout).toFixed(0)} MB`);

const docs = Array.from({ length: 64 }, (_, i) => fillerText(i, 400));
const rate: Record<string, number> = {};
for (const int8 of [false, true]) {
  const enc = await ColbertEncoder.load(dir, { int8, batchSize: 32 });
  await enc.encodeDocuments(docs.slice(0, 4));
  const t = performance.now();
  await enc.encodeDocuments(docs);
  rate[int8 ? "int8" : "fp32"] = docs.length / ((performance.now() - t) / 1000);
  await enc.close();
}
console.log(`document encoding (64 × 180 tokens, batch 32): FP32 ${rate["fp32"]!.toFixed(2)} docs/s, INT8 ${rate["int8"]!.toFixed(2)} docs/s, speed-up ${(rate["int8"]! / rate["fp32"]!).toFixed(2)}×`);
