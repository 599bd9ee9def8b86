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

/**
 * Score-matrix block for assignment: rows × K floats kept ≤ this many (8 MiB). onnxruntime-node
 * runs a graph synchronously on the calling thread, so a block is also the longest a search on
 * the index thread waits behind a write's assignment (~10–20 ms at K 8 192 on two cores).
 */
const BLOCK_FLOATS = 2 * 2 ** 20;

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

/**
 * MaxSim of padded documents: emb [n, l, d] (n documents of up to l tokens) × the query transposed
 * [d, q], each token's scores times its `scale` ([n, l, 1]: 1/‖token‖, decompressed rows are not
 * normalised) plus its `mask` ([n, l, 1]: 0, or −∞ on padding rows), then the max over l: [n, q].
 * The big [n·l, q] product stays inside onnxruntime (its arena is reused across runs); only the
 * small [n, q] maxima come back (a fresh multi-megabyte output per search costs ~15 µs a page in
 * faults on this kind of VM).
 */
function maxSimGraph(): Uint8Array {
  const g = new GraphBuilder();
  const emb = g.input("emb", DataType.FLOAT, ["n", "l", "d"]);
  const qt = g.input("qt", DataType.FLOAT, ["d", "q"]);
  const scale = g.input("scale", DataType.FLOAT, ["n", "l", 1]);
  const mask = g.input("mask", DataType.FLOAT, ["n", "l", 1]);
  const scores = g.add(g.mul(g.matmul(emb, qt), scale), mask);
  g.output(g.op("ReduceMax", [scores], { axes: { kind: "ints", value: [1] }, keepdims: { kind: "int", value: 0 } }), "best", DataType.FLOAT, ["n", "q"]);
  return encodeModel(g.toModel("max_sim", VERSION));
}

function matmulGraph(): Uint8Array {
  const g = new GraphBuilder();
  const a = g.input("a", DataType.FLOAT, ["m", "k"]);
  const b = g.input("b", DataType.FLOAT, ["k", "n"]);
  g.output(g.matmul(a, b), "c", DataType.FLOAT, ["m", "n"]);
  return encodeModel(g.toModel("matmul", VERSION));
}

/**
 * Stopping the index thread while onnxruntime runs a graph for it aborts the whole process (the
 * binding's completion callback throws into a torn-down environment), so runs pass a gate shared
 * with the thread's owner (client.ts): [0] = a stop was requested, [1] = runs in flight. A run
 * counts itself in, then checks the stop flag — the owner sets the flag, then waits for zero runs
 * before terminating — so no run is in flight when the thread stops, and none starts after.
 */
export class KernelGate {
  constructor(readonly state: Int32Array) {}

  static create(): KernelGate {
    return new KernelGate(new Int32Array(new SharedArrayBuffer(8)));
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    Atomics.add(this.state, 1, 1);
    try {
      if (Atomics.load(this.state, 0) !== 0) throw new Error("The index thread is stopping: its operation ran past its time budget");
      return await fn();
    } finally {
      Atomics.sub(this.state, 1, 1);
    }
  }

  /** Throws when a stop was requested (called before a write commits, so a stopped write commits nothing). */
  check(): void {
    if (Atomics.load(this.state, 0) !== 0) throw new Error("The index thread is stopping: its operation ran past its time budget");
  }

  /** Runs in flight now. */
  inFlight(): number {
    return Atomics.load(this.state, 1);
  }

  /** Owner side: asks the thread to start no more runs; true once none is in flight. */
  stopRequested(): boolean {
    Atomics.store(this.state, 0, 1);
    return Atomics.load(this.state, 1) === 0;
  }
}

const ungated = { run: <T>(fn: () => Promise<T>) => fn(), check: () => undefined };

export interface Assignment {
  /** Index of the best centroid per row. */
  codes: Int32Array;
  /** Its dot product with the row. */
  scores: Float32Array;
}

/** Longest a block of bulk assignment waits for searches in flight (so a stream of searches slows writes, never stops them). */
export const FOREGROUND_WAIT_MS = 100;

export class Kernels {
  /** Searches in flight on this thread (see foreground). */
  private searches = 0;
  private waiting: (() => void)[] = [];

  private constructor(
    private readonly assignSession: ort.InferenceSession,
    private readonly matmulSession: ort.InferenceSession,
    private readonly maxSimSession: ort.InferenceSession,
    private readonly gate: Pick<KernelGate, "run" | "check">,
    private readonly foregroundWaitMs: number,
  ) {}

  static async create(threads = Math.max(1, os.availableParallelism()), gate?: KernelGate, foregroundWaitMs = FOREGROUND_WAIT_MS): Promise<Kernels> {
    // No spinning: each session has its own pool, whose threads would otherwise spin on the cores
    // after every run — while the next run (another session's: a search runs three graphs) or the
    // HTTP thread wants them. Through colbert-serve on the 200 k index: p50 / p99 30 / 61 → 23 / 39 ms;
    // bulk assignment 1–3 % slower.
    const opts: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    };
    ort.env.logLevel = "fatal";
    const [a, m, x] = await Promise.all([assignGraph(), matmulGraph(), maxSimGraph()].map((graph) => ort.InferenceSession.create(graph, opts)));
    return new Kernels(a!, m!, x!, gate ?? ungated, foregroundWaitMs);
  }

  /**
   * Runs a search: while one is in flight, bulk assignment (updates, retrains, k-means: nearest)
   * pauses between its blocks — up to foregroundWaitMs per block — so the search has the cores
   * rather than sharing them with a write's GEMMs.
   */
  async foreground<T>(fn: () => Promise<T>): Promise<T> {
    this.searches++;
    try {
      return await fn();
    } finally {
      if (--this.searches === 0) for (const resume of this.waiting.splice(0)) resume();
    }
  }

  /** Resolves when no search is in flight, or after foregroundWaitMs. */
  private async yieldToSearches(): Promise<void> {
    if (this.searches === 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        const i = this.waiting.indexOf(done);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, this.foregroundWaitMs);
      this.waiting.push(done);
    });
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
      await this.yieldToSearches();
      const rows = Math.min(block, n - start);
      const out = await this.gate.run(() => this.assignSession.run({ x: new ort.Tensor("float32", x.subarray(start * d, (start + rows) * d), [rows, d]), ct: ctTensor, bias: biasTensor }));
      const c = out["code"]!.data as BigInt64Array;
      for (let i = 0; i < rows; i++) codes[start + i] = Number(c[i]!);
      scores.set(out["score"]!.data as Float32Array, start);
      for (const t of Object.values(out)) t.dispose();
    }
    return { codes, scores };
  }

  /**
   * a [m, k] × b [k, n] → [m, n], written into `into` when given (at least m · n long; onnxruntime
   * fills it in place): a buffer used again faults no fresh pages in (~15 µs a page measured on this
   * kind of VM; a search's centroid scores at K 32 768 × 32 query tokens are 4 MB, ~1 000 pages).
   */
  async matmul(a: Float32Array, m: number, k: number, b: Float32Array, n: number, into?: Float32Array): Promise<Float32Array> {
    if (m === 0 || n === 0) return new Float32Array(m * n);
    const feeds = { a: new ort.Tensor("float32", a.subarray(0, m * k), [m, k]), b: new ort.Tensor("float32", b.subarray(0, k * n), [k, n]) };
    if (into) {
      const c = into.subarray(0, m * n);
      await this.gate.run(() => this.matmulSession.run(feeds, { c: new ort.Tensor("float32", c, [m, n]) }));
      return c;
    }
    const out = await this.gate.run(() => this.matmulSession.run(feeds));
    return out["c"]!.data as Float32Array;
  }

  /**
   * For `n` documents padded to `l` tokens (`emb` [n, l, d]; `scale` and `mask` [n, l], see
   * maxSimGraph), each document's best scaled score per query token given the query transposed
   * (`queryT`, [d, q]): [n, q], −∞ where a document has no token.
   */
  async maxSim(emb: Float32Array, n: number, l: number, d: number, queryT: Float32Array, q: number, scale: Float32Array, mask: Float32Array): Promise<Float32Array> {
    if (n === 0 || q === 0) return new Float32Array(n * q);
    const out = await this.gate.run(() =>
      this.maxSimSession.run({
        emb: new ort.Tensor("float32", emb.subarray(0, n * l * d), [n, l, d]),
        qt: new ort.Tensor("float32", queryT.subarray(0, d * q), [d, q]),
        scale: new ort.Tensor("float32", scale.subarray(0, n * l), [n, l, 1]),
        mask: new ort.Tensor("float32", mask.subarray(0, n * l), [n, l, 1]),
      }),
    );
    return out["best"]!.data as Float32Array;
  }

  /** Throws when the thread's owner is stopping it (see KernelGate): called before a write commits. */
  checkStop(): void {
    this.gate.check();
  }

  async release(): Promise<void> {
    await Promise.all([this.assignSession.release(), this.matmulSession.release(), this.maxSimSession.release()]);
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

/**
 * The transpose of `a` ([rows, cols]) with `extra` ([more, cols]) appended as rows, from `aT`, a's
 * transpose ([cols, rows]): a row copy per column instead of transposing all of it again (an
 * update adding outlier centroids to tens of thousands).
 */
export function transposeAppended(aT: Float32Array, rows: number, cols: number, extra: Float32Array, more: number): Float32Array {
  const n = rows + more;
  const t = new Float32Array(n * cols);
  for (let c = 0; c < cols; c++) {
    t.set(aT.subarray(c * rows, (c + 1) * rows), c * n);
    for (let r = 0; r < more; r++) t[c * n + rows + r] = extra[r * cols + c]!;
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
