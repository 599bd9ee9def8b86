/**
 * The full ColBERT graph: backbone → Dense stack → L2 normalisation. For a model that does not
 * attend to query expansion tokens, the attention mask first drops the trailing mask-token run
 * (colbert/expansion.ts), so runtimes that feed those positions with attention 1 get PyLate's output.
 * With `chunkTokens` > 0 all of it runs over the batch in chunks of about that many tokens
 * (chunks.ts); 0 runs the whole batch at once.
 */
import { GraphBuilder, type Value } from "../onnx/graph.js";
import { DEFAULT_CHUNK_TOKENS, overBatchChunks } from "./chunks.js";
import { DataType, type ModelDef } from "../onnx/model.js";
import { l2Normalize } from "../backbones/nn.js";
import { buildHead } from "../colbert/dense.js";
import type { ColbertCheckpoint } from "../colbert/checkpoint.js";
import { ignoreTrailingExpansionTokens } from "../colbert/expansion.js";
import { expansionTokenId } from "../colbert/onnx-config.js";
import { VERSION } from "../version.js";

export function buildColbertModel(ck: ColbertCheckpoint, warn: (m: string) => void, chunkTokens = DEFAULT_CHUNK_TOKENS): ModelDef {
  const g = new GraphBuilder();
  const shape = ["batch", "sequence"];
  const feeds = [g.input("input_ids", DataType.INT64, shape), g.input("attention_mask", DataType.INT64, shape)];
  if (ck.backbone.usesTokenTypeIds) feeds.push(g.input("token_type_ids", DataType.INT64, shape));

  const encode = ([inputIds, attentionMask, tokenTypeIds]: Value[]): Value => {
    const inputs = {
      inputIds: inputIds!,
      attentionMask:
        ck.settings.doQueryExpansion && !ck.settings.attendToExpansionTokens
          ? ignoreTrailingExpansionTokens(g, inputIds!, attentionMask!, expansionTokenId(ck.tokenizer))
          : attentionMask!,
      tokenTypeIds,
    };
    const ctx = { g, w: ck.weights, warn };
    const hidden = ck.backbone.build({ ctx, config: ck.config, inputs, vocabRows: ck.tokenizer.length });
    return l2Normalize(g, buildHead(g, hidden, ck.head, warn));
  };
  const output = chunkTokens > 0 ? overBatchChunks(g, feeds, chunkTokens, ck.embeddingDim, encode) : encode(feeds);
  g.output(output, "output", DataType.FLOAT, ["batch", "sequence", ck.embeddingDim]);
  return g.toModel("colbert", VERSION, { model_class: ck.backbone.modelClass(ck.config), embedding_dim: String(ck.embeddingDim), chunk_tokens: String(chunkTokens) });
}
