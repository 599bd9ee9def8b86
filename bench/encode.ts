/**
 * Encoding benchmark on the ModernBERT-base-shaped export: documents/second for 180-token
 * documents through the runtime (tokenization, batching, row extraction included) against a plain
 * single-session onnxruntime-node loop over the same token ids in the same run; then server
 * throughput and latency under a bounded loopback load.
 *   node --import tsx bench/encode.ts [--docs 64] [--batch 32]
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import * as ort from "onnxruntime-node";
import { exportModel } from "../src/export/exporter.js";
import { ColbertEncoder } from "../src/runtime/encoder.js";
import { createServer } from "../src/server/server.js";
import { CACHE, machineLine, modernBertBase } from "./checkpoints.js";
import { fillerText } from "./common.js";

const arg = (name: string, fallback: number) => Number(process.argv[process.argv.indexOf(name) + 1]) || fallback;
const N = arg("--docs", 64);
const BATCH = arg("--batch", 32);

const dir = (await exportModel({ model: modernBertBase(), outputDir: path.join(CACHE, "exports"), quiet: true })).dir;
// Long enough to be truncated to exactly 180 tokens; each document different.
const docs = Array.from({ length: N }, (_, i) => fillerText(i, 400));

async function plainLoop(modelFile: string, ids: number[][], withTypes: boolean): Promise<number> {
  const session = await ort.InferenceSession.create(modelFile, { graphOptimizationLevel: "all", intraOpNumThreads: os.availableParallelism() });
  const t = performance.now();
  for (let i = 0; i < ids.length; i += BATCH) {
    const batch = ids.slice(i, i + BATCH);
    const seq = Math.max(...batch.map((r) => r.length));
    const flat = new BigInt64Array(batch.length * seq);
    const mask = new BigInt64Array(batch.length * seq);
    batch.forEach((r, b) => r.forEach((id, j) => ((flat[b * seq + j] = BigInt(id)), (mask[b * seq + j] = 1n))));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", flat, [batch.length, seq]),
      attention_mask: new ort.Tensor("int64", mask, [batch.length, seq]),
    };
    if (withTypes) feeds["token_type_ids"] = new ort.Tensor("int64", new BigInt64Array(batch.length * seq), [batch.length, seq]);
    await session.run(feeds);
  }
  const seconds = (performance.now() - t) / 1000;
  await session.release();
  return ids.length / seconds;
}

async function runtime(int8: boolean): Promise<{ rate: number; ids: number[][]; modelFile: string }> {
  const enc = await ColbertEncoder.load(dir, { int8, batchSize: BATCH });
  await enc.encodeDocuments(docs.slice(0, 2)); // warm-up
  const t = performance.now();
  await enc.encodeDocuments(docs);
  const rate = docs.length / ((performance.now() - t) / 1000);
  const ids = (await enc.tokenizer.encodeBatch(docs, "document")).map((t) => t.ids);
  await enc.close();
  return { rate, ids, modelFile: enc.modelFile };
}

console.log(`machine: ${machineLine()}; ${N} documents of 180 tokens, batch ${BATCH}`);
for (const int8 of [false, true]) {
  if (int8 && !fs.existsSync(path.join(dir, "model_int8.onnx"))) {
    console.log("INT8: no model_int8.onnx in the bench export (run the quantizer first)");
    continue;
  }
  const r = await runtime(int8);
  assertLength(r.ids);
  const plain = await plainLoop(r.modelFile, r.ids, false);
  console.log(`${int8 ? "INT8" : "FP32"}: runtime ${r.rate.toFixed(1)} docs/s, plain onnxruntime loop ${plain.toFixed(1)} docs/s, ratio ${(r.rate / plain).toFixed(2)}×`);
}

function assertLength(ids: number[][]): void {
  if (!ids.every((r) => r.length === 180)) throw new Error("bench documents are not 180 tokens");
}

// Server under a bounded loopback load: C clients, each sending R one-document requests.
const enc = await ColbertEncoder.load(dir, { batchSize: BATCH });
const server = createServer({ encoder: enc });
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/encode`;
const C = 16;
const R = Math.max(1, Math.floor(N / C));
const latencies: number[] = [];
const t0 = performance.now();
await Promise.all(
  Array.from({ length: C }, async (_, c) => {
    for (let r = 0; r < R; r++) {
      const t = performance.now();
      const res = await fetch(url, { method: "POST", headers: { "X-Embeddings-Format": "base64" }, body: JSON.stringify({ texts: [docs[(c * R + r) % N]], input_type: "document" }) });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      latencies.push(performance.now() - t);
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
console.log(`server (FP32, ${C} concurrent clients × ${R} one-document requests): ${(latencies.length / seconds).toFixed(1)} docs/s, p50 ${pct(50).toFixed(0)} ms, p99 ${pct(99).toFixed(0)} ms`);
await new Promise((r) => server.close(r));
await enc.close();
