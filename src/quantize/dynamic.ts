/**
 * Dynamic INT8 quantization, in the node pattern of onnxruntime's quantize_dynamic(QInt8) — the
 * pattern onnxruntime fuses at load time into DynamicQuantizeMatMul / MatMulIntegerToFloat:
 *
 *   MatMul(A, W)  →  DynamicQuantizeLinear(A) → MatMulInteger(A_q, W_q, A_zp, W_zp)
 *                    → Cast(float) → Mul(·, A_scale × W_scale)
 *
 * Weights are int8, symmetric (zero point 0), one scale per output column (max|w| / 64), round
 * half to even; one DynamicQuantizeLinear per activation, shared by all its consumers. Per-column
 * scales cost nothing in speed (onnxruntime fuses them the same way) and keep columns with small
 * weights from losing their levels to an outlier column: with 3 % of each projection's outputs ×8,
 * as trained transformers have, per-tensor scales gave mean / min cosine 0.9944 / 0.978 to FP32,
 * per-column 0.9991 / 0.993; without outliers both 0.99994 (BENCHMARKS.md, bench/int8-fidelity.ts). Embedding tables (Gather
 * over a constant) are stored int8 with one scale per row (±127: no integer product there).
 * Attention-score MatMuls (no constant input), normalisations and everything else stay float.
 *
 * Why ±64 and not ±127 (onnxruntime's reduce_range): on x86 CPUs without VNNI (AVX2, AVX-512
 * without VNNI — e.g. AMD Zen 2/3, Intel Skylake), onnxruntime's u8×s8 kernels multiply with
 * VPMADDUBSW, which adds two adjacent u8·s8 products into a saturating int16. With full-range
 * weights 2·255·127 = 64770 overflows it and the output drifts (measured on such a machine:
 * mean cosine to FP32 0.977–0.989 on the fixtures); with |w| ≤ 64, 2·255·64 = 32640 ≤ 32767
 * cannot. The file is served on hardware we do not know, so it must be exact on all of them; the
 * cost is one bit of weight resolution (mean cosine 0.9999 instead of 0.99996 where nothing
 * saturates) and no speed.
 */
import { allNodes, DataType, type ModelDef, type NodeDef, type TensorDef } from "../onnx/model.js";

export interface QuantizeOptions {
  /** One scale per output column of each weight (default true); false: one per tensor. */
  perChannel?: boolean;
  /** Quantize embedding tables too (default true). */
  embeddings?: boolean;
  /**
   * Largest |q| of MatMul weights (default MATMUL_WEIGHT_LEVELS = 64, saturation-safe). 127
   * reproduces onnxruntime's quantize_dynamic default — for comparisons only (benches): it is exact
   * on VNNI/ARM CPUs and saturates on AVX2-only ones.
   */
  weightLevels?: number;
}

export interface QuantizeStats {
  matmuls: number;
  gathers: number;
}

function asF32(t: TensorDef): Float32Array {
  const d = t.data();
  return d instanceof Float32Array ? d : new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4);
}

/**
 * Symmetric int8 of `src` seen as rows of `rowLength`; `scales` has one entry per row, one per
 * column (`perColumn`), or a single one. Rounds half to even, like numpy.rint.
 */
const ROUND = 6755399441055744;

/** Largest |q| of a MatMul weight: no int16 saturation in VPMADDUBSW (see above). */
export const MATMUL_WEIGHT_LEVELS = 64;
/** Largest |q| of an embedding row. */
const EMBEDDING_LEVELS = 127;

function quantizeSymmetric(src: Float32Array, rowLength: number, scales: Float32Array, perColumn: boolean, levels: number): Int8Array {
  const out = new Int8Array(src.length);
  const inv = scales.map((s) => 1 / s);
  const rows = src.length / rowLength;
  for (let r = 0; r < rows; r++) {
    const base = r * rowLength;
    const rowInv = inv.length === rows ? inv[r]! : inv[0]!;
    for (let c = 0; c < rowLength; c++) {
      // Adding and removing 1.5·2^52 rounds to an integer with IEEE ties-to-even, like numpy.rint.
      const v = src[base + c]! * (perColumn ? inv[c]! : rowInv) + ROUND - ROUND;
      out[base + c] = v > levels ? levels : v < -levels ? -levels : v;
    }
  }
  return out;
}

function scaleOf(absMax: number, levels: number): number {
  return absMax > 0 ? Math.fround(absMax / levels) : 1;
}

/** Per-tensor or per-column scales of a [K, N] weight. */
function weightScales(w: Float32Array, k: number, n: number, perChannel: boolean, levels: number): Float32Array {
  if (!perChannel) {
    let m = 0;
    for (let i = 0; i < w.length; i++) m = Math.max(m, Math.abs(w[i]!));
    return Float32Array.of(scaleOf(m, levels));
  }
  const m = new Float32Array(n);
  for (let r = 0; r < k; r++) for (let c = 0; c < n; c++) m[c] = Math.max(m[c]!, Math.abs(w[r * n + c]!));
  return m.map((x) => scaleOf(x, levels));
}

export function quantizeDynamic(model: ModelDef, opts: QuantizeOptions = {}): { model: ModelDef; stats: QuantizeStats } {
  const perChannel = opts.perChannel ?? true;
  const levels = opts.weightLevels ?? MATMUL_WEIGHT_LEVELS;
  const inits = new Map(model.initializers.map((t) => [t.name, t]));
  const taken = new Set<string>(inits.keys());
  for (const n of allNodes(model.nodes)) {
    for (const v of [...n.inputs, ...n.outputs]) taken.add(v);
    for (const a of Object.values(n.attributes)) if (a.kind === "graph") for (const v of a.value.inputs) taken.add(v.name);
  }
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };

  const added: TensorDef[] = [];
  const replaced = new Set<string>();
  const stats: QuantizeStats = { matmuls: 0, gathers: 0 };

  const isFloatMatrix = (name: string | undefined) => {
    const t = name === undefined ? undefined : inits.get(name);
    return t !== undefined && t.dataType === DataType.FLOAT && t.dims.length === 2;
  };

  /** The nodes of one graph, rewritten; subgraphs (a Loop body) too, their weights added to the main graph. */
  const rewrite = (graphNodes: NodeDef[]): NodeDef[] => {
    const nodes: NodeDef[] = [];
    const dql = new Map<string, [string, string, string]>();
    const node = (opType: string, inputs: string[], outputs: string[], attributes: NodeDef["attributes"] = {}) =>
      nodes.push({ name: fresh(`${outputs[0]}_${opType}`), opType, inputs, outputs, attributes });

    /** The shared DynamicQuantizeLinear of an activation (within this graph). */
    const quantizedActivation = (a: string): [string, string, string] => {
      if (!dql.has(a)) {
        const outs: [string, string, string] = [fresh(`${a}_quantized`), fresh(`${a}_scale`), fresh(`${a}_zero_point`)];
        node("DynamicQuantizeLinear", [a], outs);
        dql.set(a, outs);
      }
      return dql.get(a)!;
    };

    for (const n of graphNodes) {
      const plain = !n.domain || n.domain === "ai.onnx";
      if (plain && n.opType === "MatMul" && isFloatMatrix(n.inputs[1]) && !inits.has(n.inputs[0]!)) {
        const w = inits.get(n.inputs[1]!)!;
        const [k, cols] = w.dims as [number, number];
        const scalesDims = perChannel ? [cols] : [];
        const scales = new Float32Array(perChannel ? cols : 1);
        let computed = false;
        let q: Int8Array | undefined;
        // Quantized on demand, when the writer reaches the tensors (scale first, then weight).
        const compute = () => {
          if (computed) return;
          const f = asF32(w);
          scales.set(weightScales(f, k, cols, perChannel, levels));
          q = quantizeSymmetric(f, cols, scales, perChannel, levels);
          computed = true;
        };
        const wq = fresh(`${w.name}_quantized`);
        const ws = fresh(`${w.name}_scale`);
        const wz = fresh(`${w.name}_zero_point`);
        added.push(
          { name: ws, dataType: DataType.FLOAT, dims: scalesDims, byteLength: scales.length * 4, data: () => (compute(), scales) },
          { name: wz, dataType: DataType.INT8, dims: scalesDims, byteLength: scales.length, data: () => new Int8Array(scales.length) },
          { name: wq, dataType: DataType.INT8, dims: [k, cols], byteLength: k * cols, data: () => (compute(), q!) },
        );
        const [aq, as, az] = quantizedActivation(n.inputs[0]!);
        const out = n.outputs[0]!;
        const yInt = fresh(`${out}_int32`);
        const yF = fresh(`${out}_float`);
        const scale = fresh(`${out}_scale`);
        node("MatMulInteger", [aq, wq, az, wz], [yInt]);
        node("Cast", [yInt], [yF], { to: { kind: "int", value: DataType.FLOAT } });
        node("Mul", [as, ws], [scale]);
        node("Mul", [yF, scale], [out]);
        replaced.add(w.name);
        stats.matmuls++;
        continue;
      }
      const axis = n.attributes["axis"]?.kind === "int" ? n.attributes["axis"].value : 0;
      if (plain && n.opType === "Gather" && (opts.embeddings ?? true) && axis === 0 && isFloatMatrix(n.inputs[0]) && !inits.has(n.inputs[1]!)) {
        const table = inits.get(n.inputs[0]!)!;
        const [rows, hidden] = table.dims as [number, number];
        const scales = new Float32Array(rows);
        let q: Int8Array | undefined;
        const compute = () => {
          if (q) return;
          const f = asF32(table);
          for (let r = 0; r < rows; r++) {
            let m = 0;
            for (let c = 0; c < hidden; c++) m = Math.max(m, Math.abs(f[r * hidden + c]!));
            scales[r] = scaleOf(m, EMBEDDING_LEVELS);
          }
          q = quantizeSymmetric(f, hidden, scales, false, EMBEDDING_LEVELS);
        };
        const tq = fresh(`${table.name}_quantized`);
        const ts = fresh(`${table.name}_row_scale`);
        added.push(
          { name: tq, dataType: DataType.INT8, dims: [rows, hidden], byteLength: rows * hidden, data: () => (compute(), q!) },
          { name: ts, dataType: DataType.FLOAT, dims: [rows], byteLength: rows * 4, data: () => (compute(), scales) },
        );
        const out = n.outputs[0]!;
        const gq = fresh(`${out}_int8`);
        const gf = fresh(`${out}_float`);
        const gs = fresh(`${out}_row_scale`);
        const gsu = fresh(`${out}_row_scale_unsqueezed`);
        const minusOne = fresh(`${out}_axes`);
        added.push({ name: minusOne, dataType: DataType.INT64, dims: [1], byteLength: 8, data: () => BigInt64Array.of(-1n) });
        node("Gather", [tq, n.inputs[1]!], [gq], { axis: { kind: "int", value: 0 } });
        node("Cast", [gq], [gf], { to: { kind: "int", value: DataType.FLOAT } });
        node("Gather", [ts, n.inputs[1]!], [gs], { axis: { kind: "int", value: 0 } });
        node("Unsqueeze", [gs, minusOne], [gsu]);
        node("Mul", [gf, gsu], [out]);
        replaced.add(table.name);
        stats.gathers++;
        continue;
      }
      const withBody = Object.entries(n.attributes).some(([, a]) => a.kind === "graph");
      if (!withBody) {
        nodes.push(n);
        continue;
      }
      const attributes = Object.fromEntries(
        Object.entries(n.attributes).map(([k, a]) => [k, a.kind === "graph" ? { kind: "graph" as const, value: { ...a.value, nodes: rewrite(a.value.nodes) } } : a]),
      );
      nodes.push({ ...n, attributes });
    }
    return nodes;
  };
  const nodes = rewrite(model.nodes);

  // Float originals go unless something else still reads them.
  const stillUsed = new Set([...allNodes(nodes)].flatMap((n) => n.inputs));
  const initializers = [...model.initializers.filter((t) => !replaced.has(t.name) || stillUsed.has(t.name)), ...added];
  return { model: { ...model, nodes, initializers, producerName: model.producerName || "pylate-onnx-export" }, stats };
}
