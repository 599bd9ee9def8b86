/**
 * Query expansion inside the graph. PyLate pads a query with the mask token to query_length and,
 * unless the model attends to expansion tokens, gives those positions attention 0. NextPlaid feeds
 * them with attention 1 whatever the config says. So that every runtime gets PyLate's embeddings,
 * the graph itself ignores attention on the trailing run of mask-token ids of each sequence: a mask
 * token written inside a text is followed by other tokens (at least the closing special token), so
 * it keeps its attention.
 */
import { DataType } from "../onnx/model.js";
import type { GraphBuilder, Value } from "../onnx/graph.js";

/** `attention_mask` with 0 on each sequence's trailing run of `maskId`. */
export function ignoreTrailingExpansionTokens(g: GraphBuilder, inputIds: Value, attentionMask: Value, maskId: number): Value {
  return g.scope("expansion", () => {
    const textToken = g.cast(g.op("Not", [g.op("Equal", [inputIds, g.scalarI64(maskId)])]), DataType.INT64);
    // Text tokens at or after each position: 0 exactly on the trailing run of mask ids.
    const textAfter = g.op("CumSum", [textToken, g.scalarI64(1)], { reverse: { kind: "int", value: 1 } });
    const beforeEnd = g.cast(g.op("Greater", [textAfter, g.scalarI64(0)]), DataType.INT64);
    return g.mul(attentionMask, beforeEnd);
  });
}
