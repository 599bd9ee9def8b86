/**
 * A/B of two export folders' model files on the same token ids, in one process, alternating runs
 * (this VM is noisy): documents/s of a plain onnxruntime loop (batches of 32 × 180 tokens), best of
 * `--rounds`. Any export folder works (ours, the Python tool's), FP32 or --int8.
 *   node --import tsx bench/ab.ts DIR_A DIR_B [--int8] [--rounds 3] [--docs 64]
 */
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import * as ort from "onnxruntime-node";
import { machineLine } from "./checkpoints.js";

const argv = process.argv.slice(2);
const flag = (n: string) => argv.includes(n);
const value = (n: string, d: number) => (argv.includes(n) ? Number(argv[argv.indexOf(n) + 1]) : d);
const dirs = argv.filter((a, i) => !a.startsWith("--") && !(i > 0 && ["--rounds", "--docs"].includes(argv[i - 1]!)));
const file = flag("--int8") ? "model_int8.onnx" : "model.onnx";
const N = value("--docs", 64);
const rounds = value("--rounds", 3);

const sessions = await Promise.all(dirs.map((d) => ort.InferenceSession.create(path.join(d, file), { graphOptimizationLevel: "all", intraOpNumThreads: os.availableParallelism(), interOpNumThreads: 1 })));
const withTypes = sessions.map((s) => s.inputNames.includes("token_type_ids"));
const vocab = 2000;
const ids = Array.from({ length: N }, (_, i) => Array.from({ length: 180 }, (_, j) => (j === 0 ? 1 : 5 + ((i * 7919 + j * 31) % vocab))));

async function rate(k: number): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < N; i += 32) {
    const batch = ids.slice(i, i + 32);
    const seq = batch[0]!.length;
    const flat = BigInt64Array.from(batch.flat().map(BigInt));
    const mask = new BigInt64Array(flat.length).fill(1n);
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor("int64", flat, [batch.length, seq]), attention_mask: new ort.Tensor("int64", mask, [batch.length, seq]) };
    if (withTypes[k]) feeds["token_type_ids"] = new ort.Tensor("int64", new BigInt64Array(flat.length), [batch.length, seq]);
    await sessions[k]!.run(feeds);
  }
  return N / ((performance.now() - t) / 1000);
}

console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}; ${file}, ${N} × 180 tokens, batch 32, best of ${rounds}`);
for (let k = 0; k < sessions.length; k++) await rate(k); // warm-up
const best = sessions.map(() => 0);
for (let r = 0; r < rounds; r++) for (let k = 0; k < sessions.length; k++) best[k] = Math.max(best[k]!, await rate(k));
dirs.forEach((d, k) => console.log(`${d}: ${best[k]!.toFixed(2)} docs/s${k > 0 ? ` (${(best[k]! / best[0]!).toFixed(3)}× of the first)` : ""}`));
if (!fs.existsSync(dirs[0]!)) process.exitCode = 1;
