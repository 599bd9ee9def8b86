/**
 * ELECTRA (transformers' ElectraModel): BERT's embeddings and encoder, with the embeddings
 * projected to the hidden size (`embeddings_project`) when embedding_size differs from it.
 */
import type { Value } from "../onnx/graph.js";
import { linear } from "./nn.js";
import { bertDims, bertEmbeddings, bertEncoder } from "./bert.js";
import { cfg, type Backbone, type BuildArgs } from "./types.js";

export const electra: Backbone = {
  name: "electra",
  architectures: ["ElectraModel", "ElectraForPreTraining", "ElectraForMaskedLM"],
  modelTypes: ["electra"],
  basePrefixes: ["electra."],
  wordEmbeddings: "embeddings.word_embeddings.weight",
  usesTokenTypeIds: true,
  modelClass: () => "ElectraModel",
  hiddenSize: (config) => cfg<number>(config, "hidden_size"),

  build(args: BuildArgs): Value {
    const d = bertDims(args.config);
    let x = bertEmbeddings(args, d.eps);
    if (args.ctx.w.has("embeddings_project.weight")) x = linear(args.ctx, x, "embeddings_project");
    return bertEncoder(args.ctx, x, d, args.inputs.attentionMask);
  },
};
