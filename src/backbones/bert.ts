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

/** BertLayer: self-attention + Add&Norm, feed-forward + Add&Norm. */
function bertLayer(ctx: Ctx, x: Value, p: string, d: BertDims, maskBias: Value): Value {
  const { g } = ctx;
  const q = splitHeads(g, linear(ctx, x, `${p}.attention.self.query`), d.heads, d.headDim);
  const k = splitHeads(g, linear(ctx, x, `${p}.attention.self.key`), d.heads, d.headDim);
  const v = splitHeads(g, linear(ctx, x, `${p}.attention.self.value`), d.heads, d.headDim);
  const context = mergeHeads(g, scaledDotProductAttention(g, q, k, v, maskBias, d.headDim), d.hidden);
  const attnOut = linear(ctx, context, `${p}.attention.output.dense`);
  x = layerNorm(ctx, g.add(attnOut, x), `${p}.attention.output.LayerNorm`, d.eps);

  const intermediate = activation(g, linear(ctx, x, `${p}.intermediate.dense`), d.act);
  const out = linear(ctx, intermediate, `${p}.output.dense`);
  return layerNorm(ctx, g.add(out, x), `${p}.output.LayerNorm`, d.eps);
}

/** BertEncoder over already-embedded tokens. */
export function bertEncoder(ctx: Ctx, x: Value, d: BertDims, attentionMask: Value): Value {
  const maskBias = ctx.g.scope("mask", () => keyMaskBias(ctx.g, attentionMask));
  for (let i = 0; i < d.layers; i++) {
    x = ctx.g.scope(`layer.${i}`, () => bertLayer(ctx, x, `encoder.layer.${i}`, d, maskBias));
  }
  return x;
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

  build({ ctx, config, inputs, vocabRows }: BuildArgs): Value {
    const { g, w } = ctx;
    const d = bertDims(config);
    const x = g.scope("embeddings", () => {
      const words = embedding(g, wordEmbeddingTable(ctx, "embeddings.word_embeddings.weight", vocabRows), inputs.inputIds);
      const types = embedding(g, g.initializer(w.tensor("embeddings.token_type_embeddings.weight")), inputs.tokenTypeIds!);
      const pos = embedding(g, g.initializer(w.tensor("embeddings.position_embeddings.weight")), positions(g, inputs.inputIds));
      return layerNorm(ctx, g.add(g.add(words, types), pos), "embeddings.LayerNorm", d.eps);
    });
    return bertEncoder(ctx, x, d, inputs.attentionMask);
  },
};
