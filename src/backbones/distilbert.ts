/**
 * DistilBERT (transformers' DistilBertModel): BERT's post-LN layers under other module names, no
 * token types, words + learned (or stored sinusoidal) positions, LayerNorm eps fixed at 1e-12.
 */
import type { Value } from "../onnx/graph.js";
import { embedding, layerNorm, positions } from "./nn.js";
import { wordEmbeddingTable } from "./embeddings.js";
import { bertEncoder, type BertDims, type PostLNLayerNames } from "./bert.js";
import { cfg, type Backbone, type BuildArgs, type HFConfig } from "./types.js";

const DISTILBERT_LAYER: PostLNLayerNames = {
  layer: (i) => `transformer.layer.${i}`,
  query: "attention.q_lin",
  key: "attention.k_lin",
  value: "attention.v_lin",
  attentionOutput: "attention.out_lin",
  attentionNorm: "sa_layer_norm",
  ffnIn: "ffn.lin1",
  ffnOut: "ffn.lin2",
  outputNorm: "output_layer_norm",
};

function distilBertDims(config: HFConfig): BertDims {
  const hidden = cfg<number>(config, "dim");
  const heads = cfg<number>(config, "n_heads");
  return { hidden, heads, headDim: hidden / heads, layers: cfg<number>(config, "n_layers"), eps: 1e-12, act: cfg<string>(config, "activation", "gelu") };
}

export const distilBert: Backbone = {
  name: "distilbert",
  architectures: ["DistilBertModel", "DistilBertForMaskedLM"],
  modelTypes: ["distilbert"],
  basePrefixes: ["distilbert."],
  wordEmbeddings: "embeddings.word_embeddings.weight",
  usesTokenTypeIds: false,
  modelClass: () => "DistilBertModel",
  hiddenSize: (config) => cfg<number>(config, "dim"),

  build({ ctx, config, inputs, vocabRows }: BuildArgs): Value {
    const { g, w } = ctx;
    const d = distilBertDims(config);
    const x = g.scope("embeddings", () => {
      const words = embedding(g, wordEmbeddingTable(ctx, "embeddings.word_embeddings.weight", vocabRows), inputs.inputIds);
      const pos = embedding(g, g.initializer(w.tensor("embeddings.position_embeddings.weight")), positions(g, inputs.inputIds));
      return layerNorm(ctx, g.add(words, pos), "embeddings.LayerNorm", d.eps);
    });
    return bertEncoder(ctx, x, d, inputs.attentionMask, DISTILBERT_LAYER);
  },
};
