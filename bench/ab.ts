/**
 * A/B of export folders' model files on the same token ids, in one process, alternating runs (this
 * VM is noisy): documents/s of a plain onnxruntime loop, per round, and each folder's ratio to the
 * first one in the same round (paired, so slow drifts of the machine cancel). Any export folder
 * works (ours, the Python tool's), FP32 or --int8. `DIR@N` runs that folder's batches in pieces of
 * ⌊N / seq⌋ rows, one after the other — what our runtime does on CPU for a plain graph
 * (runtime/session-worker.ts) — where `DIR` alone is fed whole batches, as NextPlaid feeds them.
 *   node --import tsx bench/ab.ts DIR_A DIR_B@1024 … [--int8] [--rounds 6] [--docs 32] [--seq 180] [--batch 32]
 *        [--no-mem-pattern]   (NextPlaid's session settings: memory pattern off)
 */
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { machineLine } from "./checkpoints.js";

const argv = process.argv.slice(2);
const valued = ["--rounds", "--docs", "--seq", "--batch"];
const flag = (n: string) => argv.includes(n);
const value = (n: string, d: number) => (argv.includes(n) ? Number(argv[argv.indexOf(n) + 1]) : d);
const entries = argv.filter((a, i) => !a.startsWith("--") && !(i > 0 && valued.includes(argv[i - 1]!)));
const dirs = entries.map((e) => e.replace(/@\d+$/, ""));
const pieces = entries.map((e) => (/@(\d+)$/.exec(e) ? Number(/@(\d+)$/.exec(e)![1]) : 0));
const file = flag("--int8") ? "model_int8.onnx" : "model.onnx";
const N = value("--docs", 32);
const rounds = value("--rounds", 6);
const seq = value("--seq", 180);
const batchSize = value("--batch", 32);

const options: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: "all",
  intraOpNumThreads: os.availableParallelism(),
  interOpNumThreads: 1,
  enableMemPattern: !flag("--no-mem-pattern"),
};
const sessions = await Promise.all(dirs.map((d) => ort.InferenceSession.create(path.join(d, file), options)));
const withTypes = sessions.map((s) => s.inputNames.includes("token_type_ids"));
const vocab = 2000;
const ids = Array.from({ length: N }, (_, i) => Array.from({ length: seq }, (_, j) => (j === 0 ? 1 : 5 + ((i * 7919 + j * 31) % vocab))));

async function rate(k: number): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < N; i += batchSize) {
    const batch = ids.slice(i, i + batchSize);
    const per = pieces[k]! > 0 ? Math.max(1, Math.floor(pieces[k]! / seq)) : batch.length;
    for (let p = 0; p < batch.length; p += per) {
      const part = batch.slice(p, p + per);
      const flat = BigInt64Array.from(part.flat().map(BigInt));
      const dims = [part.length, seq];
      const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor("int64", flat, dims), attention_mask: new ort.Tensor("int64", new BigInt64Array(flat.length).fill(1n), dims) };
      if (withTypes[k]) feeds["token_type_ids"] = new ort.Tensor("int64", new BigInt64Array(flat.length), dims);
      await sessions[k]!.run(feeds);
    }
  }
  return N / ((performance.now() - t) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}; ${file}, ${N} × ${seq} tokens, batch ${batchSize}, ${rounds} rounds${flag("--no-mem-pattern") ? ", memory pattern off" : ""}`);
for (let k = 0; k < sessions.length; k++) await rate(k); // warm-up
const rates = sessions.map(() => [] as number[]);
for (let r = 0; r < rounds; r++) {
  const order = sessions.map((_, k) => k);
  if (r % 2 === 1) order.reverse();
  for (const k of order) rates[k]!.push(await rate(k));
}
entries.forEach((d, k) => {
  const ratios = rates[k]!.map((x, r) => x / rates[0]![r]!);
  const paired = k > 0 ? `; ${median(ratios).toFixed(3)}× the first (paired, ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})` : "";
  console.log(`${d}: median ${median(rates[k]!).toFixed(2)} docs/s, best ${Math.max(...rates[k]!).toFixed(2)}${paired}`);
});
