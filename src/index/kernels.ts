/**
 * The index's dense math as onnxruntime graphs (MLAS GEMMs on every core), not scalar loops:
 * nearest-centroid assignment for k-means and compression, and plain matrix products for search
 * (query × centroids, query × decompressed candidates). The graphs have no weights; their inputs
 * are fed as tensors over the caller's typed arrays.
 */
import os from "node:os";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../onnx/graph.js";
import { DataType } from "../onnx/model.js";
import { encodeModel } from "../onnx/writer.js";
import { VERSION } from "../version.js";

/** Score-matrix block for assignment: rows × K floats kept ≤ this many (16 MiB; a block is also the longest the index thread is busy in one go). */
const BLOCK_FLOATS = 4 * 2 ** 20;

function assignGraph(): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input("x", DataType.FLOAT, ["n", "d"]);
  const ct = g.input("ct", DataType.FLOAT, ["d", "k"]);
  const bias = g.input("bias", DataType.FLOAT, ["k"]);
  const s = g.add(g.matmul(x, ct), bias);
  g.output(g.op("ArgMax", [s], { axis: { kind: "int", value: 1 }, keepdims: { kind: "int", value: 0 } }), "code", DataType.INT64, ["n"]);
  g.output(g.op("ReduceMax", [s], { axes: { kind: "ints", value: [1] }, keepdims: { kind: "int", value: 0 } }), "score", DataType.FLOAT, ["n"]);
  return encodeModel(g.toModel("nearest_centroid", VERSION));
}

function matmulGraph(): Uint8Array {
  const g = new GraphBuilder();
  const a = g.input("a", DataType.FLOAT, ["m", "k"]);
  const b = g.input("b", DataType.FLOAT, ["k", "n"]);
  g.output(g.matmul(a, b), "c", DataType.FLOAT, ["m", "n"]);
  return encodeModel(g.toModel("matmul", VERSION));
}

export interface Assignment {
  /** Index of the best centroid per row. */
  codes: Int32Array;
  /** Its dot product with the row. */
  scores: Float32Array;
}

export class Kernels {
  private constructor(
    private readonly assignSession: ort.InferenceSession,
    private readonly matmulSession: ort.InferenceSession,
  ) {}

  static async create(threads = Math.max(1, os.availableParallelism())): Promise<Kernels> {
    const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" };
    ort.env.logLevel = "fatal";
    const [a, m] = await Promise.all([ort.InferenceSession.create(assignGraph(), opts), ort.InferenceSession.create(matmulGraph(), opts)]);
    return new Kernels(a, m);
  }

  /**
   * For each of the `n` rows of `x` ([n, d]), the centroid with the largest dot product, given the
   * centroids transposed (`ct`, [d, k]), plus an optional per-centroid `bias` (k-means passes
   * −½‖c‖², making it the L2-nearest); rows are processed in blocks so the score matrix stays small.
   */
  async nearest(x: Float32Array, n: number, d: number, ct: Float32Array, k: number, bias?: Float32Array): Promise<Assignment> {
    const codes = new Int32Array(n);
    const scores = new Float32Array(n);
    const ctTensor = new ort.Tensor("float32", ct, [d, k]);
    const biasTensor = new ort.Tensor("float32", bias ?? new Float32Array(k), [k]);
    const block = Math.max(64, Math.floor(BLOCK_FLOATS / k));
    for (let start = 0; start < n; start += block) {
      const rows = Math.min(block, n - start);
      const out = await this.assignSession.run({ x: new ort.Tensor("float32", x.subarray(start * d, (start + rows) * d), [rows, d]), ct: ctTensor, bias: biasTensor });
      const c = out["code"]!.data as BigInt64Array;
      for (let i = 0; i < rows; i++) codes[start + i] = Number(c[i]!);
      scores.set(out["score"]!.data as Float32Array, start);
      for (const t of Object.values(out)) t.dispose();
    }
    return { codes, scores };
  }

  /** a [m, k] × b [k, n] → [m, n]. */
  async matmul(a: Float32Array, m: number, k: number, b: Float32Array, n: number): Promise<Float32Array> {
    if (m === 0 || n === 0) return new Float32Array(m * n);
    const out = await this.matmulSession.run({ a: new ort.Tensor("float32", a.subarray(0, m * k), [m, k]), b: new ort.Tensor("float32", b.subarray(0, k * n), [k, n]) });
    return out["c"]!.data as Float32Array;
  }

  async release(): Promise<void> {
    await Promise.all([this.assignSession.release(), this.matmulSession.release()]);
  }
}

/** [rows, cols] → [cols, rows]. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) t[c * rows + r] = a[base + c]!;
  }
  return t;
}

/** L2-normalises each row of `a` ([rows, d]) in place; zero rows stay zero. */
export function normalizeRows(a: Float32Array, rows: number, d: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    let s = 0;
    for (let j = 0; j < d; j++) s += a[base + j]! * a[base + j]!;
    if (s > 0) {
      const inv = 1 / Math.sqrt(s);
      for (let j = 0; j < d; j++) a[base + j]! *= inv;
    }
  }
}
