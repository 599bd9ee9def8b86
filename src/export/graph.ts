/**
 * The full ColBERT graph: backbone → Dense stack → L2 normalisation. For a model that does not
 * attend to query expansion tokens, the attention mask first drops the trailing mask-token run
 * (colbert/expansion.ts), so runtimes that feed those positions with attention 1 get PyLate's output.
 */
import { GraphBuilder } from "../onnx/graph.js";
import { DataType, type ModelDef } from "../onnx/model.js";
import { l2Normalize } from "../backbones/nn.js";
import { buildHead } from "../colbert/dense.js";
import type { ColbertCheckpoint } from "../colbert/checkpoint.js";
import { ignoreTrailingExpansionTokens } from "../colbert/expansion.js";
import { expansionTokenId } from "../colbert/onnx-config.js";
import { VERSION } from "../version.js";

export function buildColbertModel(ck: ColbertCheckpoint, warn: (m: string) => void): ModelDef {
  const g = new GraphBuilder();
  const shape = ["batch", "sequence"];
  const inputIds = g.input("input_ids", DataType.INT64, shape);
  const attentionMask = g.input("attention_mask", DataType.INT64, shape);
  const inputs = {
    inputIds,
    attentionMask:
      ck.settings.doQueryExpansion && !ck.settings.attendToExpansionTokens
        ? ignoreTrailingExpansionTokens(g, inputIds, attentionMask, expansionTokenId(ck.tokenizer))
        : attentionMask,
    tokenTypeIds: ck.backbone.usesTokenTypeIds ? g.input("token_type_ids", DataType.INT64, shape) : undefined,
  };
  const ctx = { g, w: ck.weights, warn };
  const hidden = ck.backbone.build({ ctx, config: ck.config, inputs, vocabRows: ck.tokenizer.length });
  const projected = buildHead(g, hidden, ck.head, warn);
  g.output(l2Normalize(g, projected), "output", DataType.FLOAT, ["batch", "sequence", ck.embeddingDim]);
  return g.toModel("colbert", VERSION, { model_class: ck.backbone.modelClass(ck.config), embedding_dim: String(ck.embeddingDim) });
}
