/**
 * Will this INT8 model lose accuracy on this CPU? onnxruntime's u8×s8 kernels for x86 without
 * VNNI (AVX2, AVX-512 without VNNI) add pairs of u8·s8 products in a saturating int16
 * (VPMADDUBSW), so int8 weights beyond ±64 can overflow it (see dynamic.ts). Our quantizer never
 * writes such weights; other tools' (onnxruntime's quantize_dynamic by default, the Python
 * pylate-onnx-export) do.
 */
import fs from "node:fs";
import { allNodes, DataType, type ModelDef } from "../onnx/model.js";
import { readModel } from "../onnx/reader.js";
import { MATMUL_WEIGHT_LEVELS } from "./dynamic.js";

/** Integer MatMul ops and the input index of their weight. */
const INTEGER_MATMULS: Record<string, number> = { MatMulInteger: 1, MatMulIntegerToFloat: 1, DynamicQuantizeMatMul: 1 };

/**
 * The CPU's feature flags (Linux /proc/cpuinfo); undefined where they cannot be read.
 * PYLATE_ONNX_CPU_FLAGS (space-separated) stands in for them: to check how a model would be served
 * on another CPU, and in tests.
 */
export function cpuFlags(): Set<string> | undefined {
  const forced = process.env["PYLATE_ONNX_CPU_FLAGS"];
  if (forced !== undefined) return new Set(forced.split(/\s+/).filter(Boolean));
  if (process.platform !== "linux" || process.arch !== "x64") return undefined;
  try {
    const line = /^flags\s*:(.*)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1];
    return line === undefined ? undefined : new Set(line.trim().split(/\s+/));
  } catch {
    return undefined;
  }
}

/** x86 with AVX2 but no VNNI: onnxruntime's u8×s8 kernels there saturate (per its platform dispatch). */
export function saturatingInt8Kernels(flags: Set<string> | undefined): boolean {
  return !!flags && flags.has("avx2") && !flags.has("avx512_vnni") && !flags.has("avx_vnni");
}

/** Largest |q| of the first signed int8 integer-MatMul weight in `model` (every quantizer uses one range for all). */
export function int8WeightPeak(model: ModelDef): number | undefined {
  const inits = new Map(model.initializers.map((t) => [t.name, t]));
  for (const n of allNodes(model.nodes)) {
    const index = INTEGER_MATMULS[n.opType];
    const w = index === undefined ? undefined : inits.get(n.inputs[index] ?? "");
    if (!w || w.dataType !== DataType.INT8) continue;
    const d = w.data();
    const q = new Int8Array(d.buffer, d.byteOffset, d.byteLength);
    let peak = 0;
    for (let i = 0; i < q.length; i++) peak = Math.max(peak, q[i]! < 0 ? -q[i]! : q[i]!);
    return peak;
  }
  return undefined;
}

/** A warning for an INT8 model whose weights this CPU's kernels can saturate; undefined when safe. */
export function int8SaturationWarning(modelFile: string, flags: Set<string> | undefined): string | undefined {
  if (!saturatingInt8Kernels(flags)) return undefined;
  let peak: number | undefined;
  try {
    const read = readModel(modelFile);
    try {
      peak = int8WeightPeak(read.model);
    } finally {
      read.close();
    }
  } catch {
    return undefined; // not readable here: loading it reports what is wrong
  }
  if (peak === undefined || peak <= MATMUL_WEIGHT_LEVELS) return undefined;
  return (
    `${modelFile} has full-range int8 weights (up to ±${peak}), which onnxruntime's INT8 kernels for this CPU ` +
    `(x86 without VNNI) can saturate: expect less accurate embeddings. Re-quantize it with colbert-quantize (weights within ±${MATMUL_WEIGHT_LEVELS}), or use the FP32 model`
  );
}
