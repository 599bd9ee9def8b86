/** The full ColBERT graph: backbone → Dense stack → L2 normalisation. */
import { GraphBuilder } from "../onnx/graph.js";
import { DataType, type ModelDef } from "../onnx/model.js";
import { l2Normalize } from "../backbones/nn.js";
import { buildHead } from "../colbert/dense.js";
import type { ColbertCheckpoint } from "../colbert/checkpoint.js";
import { VERSION } from "../version.js";

export function buildColbertModel(ck: ColbertCheckpoint, warn: (m: string) => void): ModelDef {
  const g = new GraphBuilder();
  const shape = ["batch", "sequence"];
  const inputs = {
    inputIds: g.input("input_ids", DataType.INT64, shape),
    attentionMask: g.input("attention_mask", DataType.INT64, shape),
    tokenTypeIds: ck.backbone.usesTokenTypeIds ? g.input("token_type_ids", DataType.INT64, shape) : undefined,
  };
  const ctx = { g, w: ck.weights, warn };
  const hidden = ck.backbone.build({ ctx, config: ck.config, inputs, vocabRows: ck.tokenizer.length });
  const projected = buildHead(g, hidden, ck.head, warn);
  g.output(l2Normalize(g, projected), "output", DataType.FLOAT, ["batch", "sequence", ck.embeddingDim]);
  return g.toModel("colbert", VERSION, { model_class: ck.backbone.modelClass(ck.config), embedding_dim: String(ck.embeddingDim) });
}
