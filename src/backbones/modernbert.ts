/**
 * ModernBERT (transformers' ModernBertModel): no position embeddings but RoPE, pre-LN blocks with
 * bias-free norms, alternating global and sliding-window attention (each with its own RoPE
 * theta), GeGLU feed-forward, a norm after the embeddings and a final norm.
 */
import { DataType } from "../onnx/model.js";
import type { GraphBuilder, Value } from "../onnx/graph.js";
import { activation, embedding, F32_MIN, keyMaskBias, layerNorm, linear, mergeHeads, positions, scaledDotProductAttention, splitHeads, type Ctx } from "./nn.js";
import { wordEmbeddingTable } from "./embeddings.js";
import { cfg, type Backbone, type BuildArgs, type HFConfig } from "./types.js";
import { UserError } from "../errors.js";

interface LayerKind {
  global: boolean;
  ropeTheta: number;
}

export interface ModernBertDims {
  hidden: number;
  heads: number;
  headDim: number;
  eps: number;
  act: string;
  /** Sliding-window layers see keys with |i - j| <= halfWindow. */
  halfWindow: number;
  layers: LayerKind[];
}

function ropeTheta(params: unknown, layerType: string): number | undefined {
  if (!params || typeof params !== "object") return undefined;
  const p = params as Record<string, unknown>;
  const perType = p[layerType];
  if (perType && typeof perType === "object") return (perType as Record<string, unknown>)["rope_theta"] as number | undefined;
  return p["rope_theta"] as number | undefined;
}

/**
 * Reads both config spellings: `global_attn_every_n_layers` + `global_rope_theta` /
 * `local_rope_theta` (transformers 4.x) and `layer_types` + `rope_parameters` (newer).
 */
export function modernBertDims(config: HFConfig): ModernBertDims {
  const hidden = cfg<number>(config, "hidden_size");
  const heads = cfg<number>(config, "num_attention_heads");
  const n = cfg<number>(config, "num_hidden_layers");
  const globalTheta = ropeTheta(config["rope_parameters"], "full_attention") ?? cfg<number>(config, "global_rope_theta", 160000);
  const localTheta =
    ropeTheta(config["rope_parameters"], "sliding_attention") ?? (config["local_rope_theta"] as number | null | undefined) ?? globalTheta;
  const layerTypes = config["layer_types"] as string[] | undefined;
  if (layerTypes && layerTypes.length !== n) {
    throw new UserError(`config.json layer_types has ${layerTypes.length} entries for ${n} layers; fix the config`);
  }
  const every = cfg<number>(config, "global_attn_every_n_layers", 3);
  const layers = Array.from({ length: n }, (_, i): LayerKind => {
    const global = layerTypes ? layerTypes[i] === "full_attention" : i % every === 0;
    return { global, ropeTheta: global ? globalTheta : localTheta };
  });
  const window = (config["local_attention"] as number | undefined) ?? 2 * ((config["sliding_window"] as number | undefined) ?? 64);
  return {
    hidden,
    heads,
    headDim: hidden / heads,
    eps: cfg<number>(config, "norm_eps", 1e-5),
    act: cfg<string>(config, "hidden_activation", "gelu"),
    halfWindow: Math.floor(window / 2),
    layers,
  };
}

/** RoPE tables [seq, headDim] (rotate-half layout): cos, and sin with rotate_half's sign folded in. */
interface Rotary {
  cos: Value;
  /** sin · [-1 (first half), +1 (second half)] */
  signedSin: Value;
}

function rotaryTables(g: GraphBuilder, pos: Value, headDim: number, theta: number): Rotary {
  const half = headDim / 2;
  const invFreq = Float32Array.from({ length: half }, (_, i) => 1 / Math.pow(theta, (2 * i) / headDim));
  const freqs = g.mul(g.unsqueeze(g.cast(pos, DataType.FLOAT), [1]), g.constF32(invFreq, [1, half]));
  const emb = g.op("Concat", [freqs, freqs], { axis: { kind: "int", value: -1 } });
  const sign = g.constF32(Array.from({ length: headDim }, (_, i) => (i < half ? -1 : 1)));
  return { cos: g.op("Cos", [emb]), signedSin: g.mul(g.op("Sin", [emb]), sign) };
}

/**
 * x * cos + rotate_half(x) * sin, with rotate_half(x) = cat(-x2, x1) computed as cat(x2, x1) — one
 * Gather swapping the halves of x viewed as [..., 2, headDim / 2] — times the signed sin. Exactly
 * the same numbers as Split/Neg/Concat, in one op instead of three (1.07× documents/s on
 * ModernBERT-base, BENCHMARKS.md). `x` is 4-D, head dimension last.
 */
function applyRotary(g: GraphBuilder, x: Value, { cos, signedSin }: Rotary, headDim: number): Value {
  const halves = g.reshape(x, [0, 0, 0, 2, headDim / 2]);
  const swapped = g.reshape(g.gather(halves, g.constI64([1, 0]), -2), [0, 0, 0, headDim]);
  return g.add(g.mul(x, cos), g.mul(swapped, signedSin));
}

interface LocalMask {
  /** Additive bias [batch, 1, seq, seq]: the global key mask plus every key beyond the window. */
  bias: Value;
  /** [batch, 1, seq, 1]: 0 for rows whose window holds no attended key, else 1. */
  rowHasKeys: Value;
}

/**
 * Sliding-window attention mask. A padding row whose whole window is padding attends to nothing:
 * PyTorch's scaled_dot_product_attention (what PyLate runs) returns zeros for such rows, where a
 * plain softmax would average every key, so their output is zeroed to match. It matters for the
 * query-expansion rows PyLate returns.
 */
function slidingWindowMask(g: GraphBuilder, pos: Value, attentionMask: Value, globalBias: Value, halfWindow: number): LocalMask {
  const distance = g.op("Abs", [g.sub(g.unsqueeze(pos, [1]), g.unsqueeze(pos, [0]))]);
  const inWindow = g.op("LessOrEqual", [distance, g.scalarI64(halfWindow)]);
  const bias = g.where(inWindow, globalBias, g.scalarF32(F32_MIN));
  const keys = g.cast(g.unsqueeze(attentionMask, [1, 2]), DataType.FLOAT);
  const allowed = g.mul(keys, g.cast(inWindow, DataType.FLOAT));
  const rowHasKeys = g.op("ReduceMax", [allowed], { axes: { kind: "ints", value: [-1] }, keepdims: { kind: "int", value: 1 } });
  return { bias, rowHasKeys };
}

function attention(ctx: Ctx, x: Value, p: string, d: ModernBertDims, rope: Rotary, mask: { bias: Value; rowHasKeys?: Value }): Value {
  const { g } = ctx;
  const [q, k, v] = g.chunk(linear(ctx, x, `${p}.Wqkv`), 3, -1).map((t) => splitHeads(g, t, d.heads, d.headDim)) as [Value, Value, Value];
  let out = scaledDotProductAttention(g, applyRotary(g, q, rope, d.headDim), applyRotary(g, k, rope, d.headDim), v, mask.bias, d.headDim);
  if (mask.rowHasKeys) out = g.mul(out, mask.rowHasKeys);
  return linear(ctx, mergeHeads(g, out, d.hidden), `${p}.Wo`);
}

/** GeGLU: Wo(act(input) * gate) with input, gate = Wi(x).chunk(2). */
function mlp(ctx: Ctx, x: Value, p: string, d: ModernBertDims): Value {
  const { g } = ctx;
  const [input, gate] = g.chunk(linear(ctx, x, `${p}.Wi`), 2, -1) as [Value, Value];
  return linear(ctx, g.mul(activation(g, input, d.act), gate), `${p}.Wo`);
}

export const modernBert: Backbone = {
  name: "modernbert",
  architectures: ["ModernBertModel", "ModernBertForMaskedLM"],
  modelTypes: ["modernbert"],
  basePrefixes: ["model."],
  wordEmbeddings: "embeddings.tok_embeddings.weight",
  usesTokenTypeIds: false,
  modelClass: () => "ModernBertModel",
  hiddenSize: (config) => cfg<number>(config, "hidden_size"),

  build({ ctx, config, inputs, vocabRows }: BuildArgs): Value {
    const { g, w } = ctx;
    const d = modernBertDims(config);
    let x = g.scope("embeddings", () => {
      const table = wordEmbeddingTable(ctx, "embeddings.tok_embeddings.weight", vocabRows);
      return layerNorm(ctx, embedding(g, table, inputs.inputIds), "embeddings.norm", d.eps);
    });

    const pos = positions(g, inputs.inputIds);
    const globalBias = g.scope("mask", () => keyMaskBias(g, inputs.attentionMask));
    const localMask = g.scope("mask", () => slidingWindowMask(g, pos, inputs.attentionMask, globalBias, d.halfWindow));
    const ropeByTheta = new Map<number, Rotary>();
    const rope = (theta: number) => {
      if (!ropeByTheta.has(theta)) ropeByTheta.set(theta, g.scope("rope", () => rotaryTables(g, pos, d.headDim, theta)));
      return ropeByTheta.get(theta)!;
    };

    d.layers.forEach((kind, i) => {
      const p = `layers.${i}`;
      x = g.scope(p, () => {
        // Layer 0 has no attn_norm (nn.Identity): the embedding norm already ran.
        const attnIn = w.has(`${p}.attn_norm.weight`) ? layerNorm(ctx, x, `${p}.attn_norm`, d.eps) : x;
        const h = g.add(x, attention(ctx, attnIn, `${p}.attn`, d, rope(kind.ropeTheta), kind.global ? { bias: globalBias } : localMask));
        return g.add(h, mlp(ctx, layerNorm(ctx, h, `${p}.mlp_norm`, d.eps), `${p}.mlp`, d));
      });
    });
    return layerNorm(ctx, x, "final_norm", d.eps);
  },
};
