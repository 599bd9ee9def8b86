/**
 * Corpus encoding: peak RSS of `colbert-encode --format f32` (built dist/, its own process) on 10 k
 * and 100 k short documents with the tiny BERT fixture — it must stay flat — and throughput of the
 * streamed path against the library's in-memory `encodeDocuments` on the ModernBERT-base shapes.
 *   npm run build && node --import tsx bench/encode-stream.ts [--docs 96]
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { exportModel } from "../src/export/exporter.js";
import { ColbertEncoder } from "../src/runtime/encoder.js";
import { encodeCorpus } from "../src/encode/corpus.js";
import { CACHE, machineLine, modernBertBase } from "./checkpoints.js";
import { fillerText } from "./common.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name: string, fallback: number) => Number(process.argv[process.argv.indexOf(name) + 1]) || fallback;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "bench-stream-"));
const doc = fillerText;

console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}`);

// 1. Peak RSS, tiny model, 10 k vs 100 k documents of ~30 words.
const tiny = (await exportModel({ model: path.join(root, "test", "fixtures", "bert-tiny-colbert", "model"), outputDir: work, quiet: true })).dir;
for (const n of [10_000, 100_000]) {
  const input = path.join(work, `corpus-${n}.txt`);
  const out = fs.openSync(input, "w");
  for (let i = 0; i < n; i++) fs.writeSync(out, doc(i, 30) + "\n");
  fs.closeSync(out);
  const t = performance.now();
  const r = spawnSync("/usr/bin/time", ["-f", "%M", process.execPath, path.join(root, "dist", "cli", "encode.js"), "--model", tiny, "-i", input, "--format", "f32", "-o", path.join(work, `out-${n}.f32`), "--quiet", "--json"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  const peakKB = Number(r.stderr.trim().split("\n").pop());
  const summary = JSON.parse(r.stdout) as { texts: number; rows: number };
  console.log(`${n} documents (tiny BERT, f32): peak RSS ${(peakKB / 1024).toFixed(0)} MB, ${summary.rows} rows, ${((performance.now() - t) / 1000).toFixed(1)} s, ${(fs.statSync(path.join(work, `out-${n}.f32`)).size / 2 ** 20).toFixed(0)} MB written`);
}

// 2. Throughput, ModernBERT-base shapes: streamed (chunks of 32) vs in memory, same process, same encoder.
const N = arg("--docs", 96);
const dir = (await exportModel({ model: modernBertBase(), outputDir: path.join(CACHE, "exports"), quiet: true })).dir;
const docs = Array.from({ length: N }, (_, i) => doc(i, 400));
const input = path.join(work, "mb.txt");
fs.writeFileSync(input, docs.join("\n") + "\n");
const enc = await ColbertEncoder.load(dir, { batchSize: 32 });
await enc.encodeDocuments(docs.slice(0, 32)); // warm-up
let t = performance.now();
await enc.encodeDocuments(docs);
const inMemory = N / ((performance.now() - t) / 1000);
t = performance.now();
await encodeCorpus(enc, { input, jsonl: false, output: path.join(work, "mb.f32"), format: "f32", type: "document", chunkSize: 32, skipBad: false, force: true });
const streamed = N / ((performance.now() - t) / 1000);
await enc.close();
console.log(`ModernBERT-base shapes, ${N} × 180-token documents (FP32): in memory ${inMemory.toFixed(2)} docs/s, streamed (f32, chunks of 32) ${streamed.toFixed(2)} docs/s, ratio ${(streamed / inMemory).toFixed(2)}×`);
fs.rmSync(work, { recursive: true, force: true });
