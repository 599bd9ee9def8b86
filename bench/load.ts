/**
 * Serving start-up benchmark on the ModernBERT-base-shaped export: in a fresh process, load the
 * encoder (1 or 2 sessions) and encode 32 documents of 180 tokens; report load time and peak
 * RSS. Baseline in the same run: onnxruntime sessions created from model.onnx directly with the
 * same options, fed the same token ids.
 *   npm run build && node --import tsx bench/load.ts
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { exportModel } from "../src/export/exporter.js";
import { ColbertTokenizer } from "../src/runtime/tokenizer.js";
import type { OnnxConfig } from "../src/colbert/onnx-config.js";
import { CACHE, machineLine, modernBertBase } from "./checkpoints.js";
import { fillerText } from "./common.js";

const root = path.resolve(import.meta.dirname, "..");
if (!fs.existsSync(path.join(root, "dist", "runtime", "encoder.js"))) execFileSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
const dir = (await exportModel({ model: modernBertBase(), outputDir: path.join(CACHE, "exports"), quiet: true })).dir;
const docs = Array.from({ length: 32 }, (_, i) => fillerText(i, 400));

const readJson = (f: string) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as Record<string, unknown>;
const tokenizer = await ColbertTokenizer.create(readJson("tokenizer.json"), readJson("tokenizer_config.json"), readJson("onnx_config.json") as unknown as OnnxConfig);
const ids = (await tokenizer.encodeBatch(docs, "document")).map((t) => t.ids);

/** One fresh process: load (timed), encode the documents once per session; peak RSS. */
function job(kind: "runtime" | "direct", sessions: number): { loadS: number; rssMB: number } {
  const runtime = `
    const { ColbertEncoder } = await import(${JSON.stringify(path.join(root, "dist", "runtime", "encoder.js"))});
    const t = performance.now();
    const enc = await ColbertEncoder.load(${JSON.stringify(dir)}, { sessions: ${sessions}, batchSize: ${docs.length} });
    const loadS = (performance.now() - t) / 1000;
    const docs = ${JSON.stringify(docs)};
    await Promise.all(Array.from({ length: ${sessions} }, () => enc.encodeDocuments(docs)));`;
  // The same options as the runtime, sessions created from model.onnx itself, the same token ids.
  const direct = `
    const ort = await import("onnxruntime-node");
    const t = performance.now();
    const ss = [];
    for (let i = 0; i < ${sessions}; i++) ss.push(await ort.InferenceSession.create(${JSON.stringify(path.join(dir, "model.onnx"))}, { graphOptimizationLevel: "all", intraOpNumThreads: ${Math.max(1, Math.floor(os.availableParallelism() / sessions))} }));
    const loadS = (performance.now() - t) / 1000;
    const ids = ${JSON.stringify(ids)};
    const seq = Math.max(...ids.map((r) => r.length));
    const flat = new BigInt64Array(ids.length * seq), mask = new BigInt64Array(ids.length * seq);
    ids.forEach((r, b) => r.forEach((id, j) => ((flat[b * seq + j] = BigInt(id)), (mask[b * seq + j] = 1n))));
    await Promise.all(ss.map((s) => s.run({ input_ids: new ort.Tensor("int64", flat, [ids.length, seq]), attention_mask: new ort.Tensor("int64", mask, [ids.length, seq]) })));`;
  const script = `${kind === "runtime" ? runtime : direct}
    process.stdout.write(JSON.stringify({ loadS, rssMB: process.resourceUsage().maxRSS / 1024 }));`;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", cwd: root });
  if (child.status !== 0) throw new Error(child.stderr);
  return JSON.parse(child.stdout) as { loadS: number; rssMB: number };
}

console.log(`machine: ${machineLine()}; ModernBERT-base-shaped FP32 export, 32 documents of 180 tokens per session`);
for (const sessions of [1, 2]) {
  const ours = job("runtime", sessions);
  const base = job("direct", sessions);
  console.log(
    `${sessions} session(s): runtime load ${ours.loadS.toFixed(2)} s, peak RSS ${ours.rssMB.toFixed(0)} MB; ` +
      `sessions from model.onnx directly: load ${base.loadS.toFixed(2)} s, peak RSS ${base.rssMB.toFixed(0)} MB`,
  );
}
