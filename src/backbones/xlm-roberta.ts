/**
 * (XLM-)RoBERTa: BERT's encoder with RoBERTa embeddings — position ids count non-padding tokens
 * from padding_idx + 1 (padding positions get padding_idx), and the single token-type row is a
 * constant, folded into the word-embedding table.
 */
import { DataType } from "../onnx/model.js";
import type { GraphBuilder, Value } from "../onnx/graph.js";
import { embedding, layerNorm } from "./nn.js";
import { wordEmbeddingTable } from "./embeddings.js";
import { bertDims, bertEncoder } from "./bert.js";
import { cfg, type Backbone, type BuildArgs } from "./types.js";

/** create_position_ids_from_input_ids: cumsum(ids != pad) * (ids != pad) + pad. */
function robertaPositions(g: GraphBuilder, ids: Value, paddingIdx: number): Value {
  const notPad = g.cast(g.op("Not", [g.op("Equal", [ids, g.scalarI64(paddingIdx)])]), DataType.INT64);
  const count = g.op("CumSum", [notPad, g.scalarI64(1)]);
  return g.add(g.mul(count, notPad), g.scalarI64(paddingIdx));
}

export const xlmRoberta: Backbone = {
  name: "xlm-roberta",
  architectures: ["XLMRobertaModel", "XLMRobertaForMaskedLM", "RobertaModel", "RobertaForMaskedLM"],
  modelTypes: ["xlm-roberta", "roberta"],
  basePrefixes: ["roberta."],
  wordEmbeddings: "embeddings.word_embeddings.weight",
  usesTokenTypeIds: false,
  modelClass: (config) => (config["model_type"] === "roberta" ? "RobertaModel" : "XLMRobertaModel"),
  hiddenSize: (config) => cfg<number>(config, "hidden_size"),

  build({ ctx, config, inputs, vocabRows }: BuildArgs): Value {
    const { g, w } = ctx;
    const d = bertDims(config);
    const paddingIdx = cfg<number>(config, "pad_token_id", 1);
    const x = g.scope("embeddings", () => {
      // token_type_ids are always 0 here: word + type[0] is folded into one table (same float sum).
      const table = wordEmbeddingTable(ctx, "embeddings.word_embeddings.weight", vocabRows, {
        addRow: "embeddings.token_type_embeddings.weight",
      });
      const words = embedding(g, table, inputs.inputIds);
      const pos = embedding(g, g.initializer(w.tensor("embeddings.position_embeddings.weight")), robertaPositions(g, inputs.inputIds, paddingIdx));
      return layerNorm(ctx, g.add(words, pos), "embeddings.LayerNorm", d.eps);
    });
    return bertEncoder(ctx, x, d, inputs.attentionMask);
  },
};
