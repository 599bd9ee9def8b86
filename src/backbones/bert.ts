/**
 * BERT (transformers' BertModel): absolute position embeddings, token types, post-LN encoder.
 * The encoder stack is shared with (XLM-)RoBERTa, which only differs in its embeddings.
 */
import type { Value } from "../onnx/graph.js";
import { activation, embedding, keyMaskBias, layerNorm, linear, mergeHeads, positions, scaledDotProductAttention, splitHeads, type Ctx } from "./nn.js";
import { wordEmbeddingTable } from "./embeddings.js";
import { cfg, type Backbone, type BuildArgs, type HFConfig } from "./types.js";
import { UserError } from "../errors.js";

export interface BertDims {
  hidden: number;
  heads: number;
  headDim: number;
  layers: number;
  eps: number;
  act: string;
}

export function bertDims(config: HFConfig): BertDims {
  const hidden = cfg<number>(config, "hidden_size");
  const heads = cfg<number>(config, "num_attention_heads");
  const positionType = cfg<string>(config, "position_embedding_type", "absolute");
  if (positionType !== "absolute") {
    throw new UserError(`position_embedding_type "${positionType}" is not supported (only "absolute")`);
  }
  return {
    hidden,
    heads,
    headDim: hidden / heads,
    layers: cfg<number>(config, "num_hidden_layers"),
    eps: cfg<number>(config, "layer_norm_eps", 1e-12),
    act: cfg<string>(config, "hidden_act", "gelu"),
  };
}

/** Where a post-LN encoder layer keeps its modules (BERT's and DistilBERT's names differ). */
export interface PostLNLayerNames {
  layer: (i: number) => string;
  query: string;
  key: string;
  value: string;
  attentionOutput: string;
  attentionNorm: string;
  ffnIn: string;
  ffnOut: string;
  outputNorm: string;
}

export const BERT_LAYER: PostLNLayerNames = {
  layer: (i) => `encoder.layer.${i}`,
  query: "attention.self.query",
  key: "attention.self.key",
  value: "attention.self.value",
  attentionOutput: "attention.output.dense",
  attentionNorm: "attention.output.LayerNorm",
  ffnIn: "intermediate.dense",
  ffnOut: "output.dense",
  outputNorm: "output.LayerNorm",
};

/** BertLayer: self-attention + Add&Norm, feed-forward + Add&Norm. */
function postLNLayer(ctx: Ctx, x: Value, p: string, n: PostLNLayerNames, d: BertDims, maskBias: Value): Value {
  const { g } = ctx;
  const q = splitHeads(g, linear(ctx, x, `${p}.${n.query}`), d.heads, d.headDim);
  const k = splitHeads(g, linear(ctx, x, `${p}.${n.key}`), d.heads, d.headDim);
  const v = splitHeads(g, linear(ctx, x, `${p}.${n.value}`), d.heads, d.headDim);
  const context = mergeHeads(g, scaledDotProductAttention(g, q, k, v, maskBias, d.headDim), d.hidden);
  const attnOut = linear(ctx, context, `${p}.${n.attentionOutput}`);
  x = layerNorm(ctx, g.add(attnOut, x), `${p}.${n.attentionNorm}`, d.eps);

  const intermediate = activation(g, linear(ctx, x, `${p}.${n.ffnIn}`), d.act);
  const out = linear(ctx, intermediate, `${p}.${n.ffnOut}`);
  return layerNorm(ctx, g.add(out, x), `${p}.${n.outputNorm}`, d.eps);
}

/** BertEncoder (or DistilBERT's Transformer) over already-embedded tokens. */
export function bertEncoder(ctx: Ctx, x: Value, d: BertDims, attentionMask: Value, names: PostLNLayerNames = BERT_LAYER): Value {
  const maskBias = ctx.g.scope("mask", () => keyMaskBias(ctx.g, attentionMask));
  for (let i = 0; i < d.layers; i++) {
    x = ctx.g.scope(`layer.${i}`, () => postLNLayer(ctx, x, names.layer(i), names, d, maskBias));
  }
  return x;
}

/** BERT's embeddings: words + token types + absolute positions, then LayerNorm. */
export function bertEmbeddings({ ctx, inputs, vocabRows }: BuildArgs, eps: number): Value {
  const { g, w } = ctx;
  return g.scope("embeddings", () => {
    const words = embedding(g, wordEmbeddingTable(ctx, "embeddings.word_embeddings.weight", vocabRows), inputs.inputIds);
    const types = embedding(g, g.initializer(w.tensor("embeddings.token_type_embeddings.weight")), inputs.tokenTypeIds!);
    const pos = embedding(g, g.initializer(w.tensor("embeddings.position_embeddings.weight")), positions(g, inputs.inputIds));
    return layerNorm(ctx, g.add(g.add(words, types), pos), "embeddings.LayerNorm", eps);
  });
}

export const bert: Backbone = {
  name: "bert",
  architectures: ["BertModel", "BertForMaskedLM", "BertForPreTraining", "HF_ColBERT"],
  modelTypes: ["bert"],
  basePrefixes: ["bert."],
  wordEmbeddings: "embeddings.word_embeddings.weight",
  usesTokenTypeIds: true,
  modelClass: () => "BertModel",
  hiddenSize: (config) => cfg<number>(config, "hidden_size"),

  build(args: BuildArgs): Value {
    const d = bertDims(args.config);
    return bertEncoder(args.ctx, bertEmbeddings(args, d.eps), d, args.inputs.attentionMask);
  },
};
