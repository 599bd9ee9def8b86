/**
 * Neural-network building blocks over GraphBuilder, bound to checkpoint weights by their PyTorch
 * names: the shared vocabulary every backbone file is written in.
 */
import { DataType } from "../onnx/model.js";
import type { GraphBuilder, Value } from "../onnx/graph.js";
import type { Weights } from "./weights.js";
import { UserError } from "../errors.js";

/** torch.finfo(torch.float32).min: what transformers adds to masked attention scores. */
export const F32_MIN = -3.4028234663852886e38;

export interface Ctx {
  g: GraphBuilder;
  w: Weights;
  /** Reports something the user should know . */
  warn: (message: string) => void;
}

/** nn.Linear: x @ W^T (+ b). The bias is used when the checkpoint has one. */
export function linear({ g, w }: Ctx, x: Value, prefix: string): Value {
  const y = g.matmul(x, g.initializer(w.transposed(`${prefix}.weight`)));
  return w.has(`${prefix}.bias`) ? g.add(y, g.initializer(w.tensor(`${prefix}.bias`))) : y;
}

/** nn.LayerNorm over the last axis (bias optional, as ModernBERT's norm_bias=false). */
export function layerNorm({ g, w }: Ctx, x: Value, prefix: string, eps: number): Value {
  const inputs = [x, g.initializer(w.tensor(`${prefix}.weight`))];
  if (w.has(`${prefix}.bias`)) inputs.push(g.initializer(w.tensor(`${prefix}.bias`)));
  return g.op("LayerNormalization", inputs, { axis: { kind: "int", value: -1 }, epsilon: { kind: "float", value: eps } });
}

/** nn.Embedding lookup from an initializer. */
export function embedding(g: GraphBuilder, table: Value, ids: Value): Value {
  return g.gather(table, ids, 0);
}

function gelu(g: GraphBuilder, x: Value): Value {
  // x * (1 + erf(x / sqrt(2))) * 0.5 — the node pattern onnxruntime fuses into one Gelu kernel.
  const erf = g.op("Erf", [g.div(x, g.scalarF32(Math.SQRT2))]);
  return g.mul(g.mul(x, g.add(erf, g.scalarF32(1))), g.scalarF32(0.5));
}

function geluTanh(g: GraphBuilder, x: Value): Value {
  // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
  const x3 = g.mul(g.mul(x, x), x);
  const inner = g.mul(g.add(x, g.mul(x3, g.scalarF32(0.044715))), g.scalarF32(Math.sqrt(2 / Math.PI)));
  return g.mul(g.mul(x, g.scalarF32(0.5)), g.add(g.op("Tanh", [inner]), g.scalarF32(1)));
}

const ACTIVATIONS: Record<string, (g: GraphBuilder, x: Value) => Value> = {
  gelu,
  gelu_python: gelu,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_fast: geluTanh,
  quick_gelu: (g, x) => g.mul(x, g.op("Sigmoid", [g.mul(x, g.scalarF32(1.702))])),
  relu: (g, x) => g.op("Relu", [x]),
  silu: (g, x) => g.mul(x, g.op("Sigmoid", [x])),
  swish: (g, x) => g.mul(x, g.op("Sigmoid", [x])),
  tanh: (g, x) => g.op("Tanh", [x]),
  sigmoid: (g, x) => g.op("Sigmoid", [x]),
  linear: (_g, x) => x,
  identity: (_g, x) => x,
};

export const SUPPORTED_ACTIVATIONS = Object.keys(ACTIVATIONS);

/** transformers' ACT2FN by name (config hidden_act / hidden_activation). */
export function activation(g: GraphBuilder, x: Value, name: string): Value {
  const fn = ACTIVATIONS[name];
  if (!fn) throw new UserError(`Unsupported activation "${name}"; supported: ${SUPPORTED_ACTIVATIONS.join(", ")}`);
  return fn(g, x);
}

/** Additive key mask [batch, 1, 1, seq]: 0 where attention_mask is 1, float32 min where 0. */
export function keyMaskBias(g: GraphBuilder, attentionMask: Value): Value {
  const m = g.cast(g.unsqueeze(attentionMask, [1, 2]), DataType.FLOAT);
  return g.mul(g.sub(g.scalarF32(1), m), g.scalarF32(F32_MIN));
}

/** [0, 1, …, seq-1] (int64) for the sequence axis of `ids` [batch, seq]. */
export function positions(g: GraphBuilder, ids: Value): Value {
  const seq = g.gather(g.op("Shape", [ids]), g.scalarI64(1), 0);
  return g.op("Range", [g.scalarI64(0), seq, g.scalarI64(1)]);
}

/** [batch, seq, hidden] → [batch, heads, seq, headDim] */
export function splitHeads(g: GraphBuilder, x: Value, heads: number, headDim: number): Value {
  return g.transpose(g.reshape(x, [0, 0, heads, headDim]), [0, 2, 1, 3]);
}

/** [batch, heads, seq, headDim] → [batch, seq, hidden] */
export function mergeHeads(g: GraphBuilder, x: Value, hidden: number): Value {
  return g.reshape(g.transpose(x, [0, 2, 1, 3]), [0, 0, hidden]);
}

/**
 * softmax(q k^T * scale + bias) v over [batch, heads, seq, headDim] tensors, as transformers'
 * eager attention computes it.
 */
export function scaledDotProductAttention(g: GraphBuilder, q: Value, k: Value, v: Value, bias: Value, headDim: number): Value {
  const scores = g.mul(g.matmul(q, g.transpose(k, [0, 1, 3, 2])), g.scalarF32(1 / Math.sqrt(headDim)));
  return g.matmul(g.softmax(g.add(scores, bias), -1), v);
}

/** torch.nn.functional.normalize(x, p=2, dim=-1, eps=1e-12) */
export function l2Normalize(g: GraphBuilder, x: Value): Value {
  const norm = g.op("ReduceL2", [x], { axes: { kind: "ints", value: [-1] }, keepdims: { kind: "int", value: 1 } });
  return g.div(x, g.op("Max", [norm, g.scalarF32(1e-12)]));
}
