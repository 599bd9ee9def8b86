/**
 * The encoder run over the batch a few rows at a time, inside the graph (an ONNX Loop).
 *
 * On a CPU the encoder is faster on small batches: with ~1000 tokens per run a layer's activations
 * (and its [heads, seq, seq] attention scores) stay in cache, where a batch of 32 × 180 tokens
 * streams ~50 MB per attention op through memory. Measured on ModernBERT-base and BERT-base shapes,
 * 32 × 180-token documents, against the same graph run on the whole batch: 1.1–1.3× the
 * documents/s in FP32 and 1.25–1.5× in INT8 (down to 1.1× while the shared VM measured on was
 * busy), more on bigger batches: BENCHMARKS.md. Rows are computed exactly as before — FP32 outputs are bit-identical.
 * Doing it in the graph makes every runtime fed whole batches (NextPlaid, onnxruntime loops)
 * faster, not only ours.
 *
 * A chunk holds max(1, ⌊tokens / sequence length⌋) rows: 32 queries of 32 tokens run as one chunk
 * (splitting short sequences only adds per-chunk overhead), 180-token documents 5 at a time,
 * 512-token ones 2 at a time. The token count is
 * the int64 initializer `chunk_tokens`: on a GPU, whole batches are faster, and our runtime, given
 * another execution provider, loads the model through a view where it is WHOLE_BATCH_TOKENS
 * (runtime/model-view.ts); other runtimes can do the same, or export with `--chunk-tokens 0`.
 */
import { GraphBuilder, type Value } from "../onnx/graph.js";
import { allNodes, DataType, tensorFromArray, type ModelDef, type NodeDef } from "../onnx/model.js";

/** Default tokens per chunk (the CPU sweet spot measured on base-size encoders, BENCHMARKS.md). */
export const DEFAULT_CHUNK_TOKENS = 1024;
/** The initializer holding the tokens per chunk. */
export const CHUNK_TOKENS_INITIALIZER = "chunk_tokens";
/** A `chunk_tokens` value that makes any batch one chunk. */
export const WHOLE_BATCH_TOKENS = 2n ** 62n;

/**
 * `encode(rows)` built as the body of a Loop over row chunks of `feeds` (each [batch, seq, …]);
 * returns the outputs of every chunk concatenated along the batch axis, [batch, seq, dim].
 */
export function overBatchChunks(g: GraphBuilder, feeds: Value[], tokens: number, dim: number, encode: (rows: Value[]) => Value): Value {
  const batch = g.dim(feeds[0]!, 0); // [1]
  const seq = g.dim(feeds[0]!, 1);
  const budget = g.initializer(tensorFromArray(CHUNK_TOKENS_INITIALIZER, DataType.INT64, [1], BigInt64Array.of(BigInt(tokens))));
  const one = g.constI64([1]);
  const rows = g.op("Max", [g.div(budget, g.op("Max", [seq, one])), one]); // [1]; no integer division by an empty sequence
  const chunks = g.reshape(g.div(g.sub(g.add(batch, rows), one), rows), []); // ⌈batch / rows⌉, a scalar
  const empty = g.op("ConstantOfShape", [g.op("Concat", [g.constI64([0]), seq, g.constI64([dim])], { axis: { kind: "int", value: 0 } })], {
    value: { kind: "tensor", value: { name: "zero", dataType: DataType.FLOAT, dims: [1], byteLength: 4, data: () => Float32Array.of(0) } },
  });

  const i = g.unique("chunk_index");
  const cond = g.unique("chunk_cond");
  const done = g.unique("chunk_done");
  const body = g.subgraph(
    "chunk",
    [
      { name: i, elemType: DataType.INT64, shape: [] },
      { name: cond, elemType: DataType.BOOL, shape: [] },
      { name: done, elemType: DataType.FLOAT },
    ],
    () => {
      const start = g.mul(i, rows);
      const end = g.op("Min", [g.add(start, rows), batch]);
      const out = encode(feeds.map((f) => g.op("Slice", [f, start, end, g.constI64([0])])));
      return [
        { name: g.op("Identity", [cond]), elemType: DataType.BOOL, shape: [] },
        { name: g.op("Concat", [done, out], { axis: { kind: "int", value: 0 } }), elemType: DataType.FLOAT },
      ];
    },
  );
  return g.op("Loop", [chunks, g.scalarBool(true), empty], { body: { kind: "graph", value: body } });
}

/** Whether `model` runs its batch in chunks (a top-level Loop with the chunk_tokens initializer). */
export function hasBatchLoop(model: Pick<ModelDef, "nodes" | "initializers">): boolean {
  return model.initializers.some((t) => t.name === CHUNK_TOKENS_INITIALIZER) && model.nodes.some((n) => n.opType === "Loop");
}

/**
 * Whether `model` has the shape of a ColBERT export whose batch can be chunked: [batch, sequence]
 * int64 inputs, one [batch, sequence, dim] float output, no batch loop yet.
 */
export function chunkable(model: ModelDef): boolean {
  const out = model.outputs[0];
  return (
    !hasBatchLoop(model) &&
    model.outputs.length === 1 &&
    out?.elemType === DataType.FLOAT &&
    out.shape?.length === 3 &&
    typeof out.shape[2] === "number" &&
    model.inputs.length > 0 &&
    model.inputs.every((i) => i.elemType === DataType.INT64 && i.shape?.length === 2)
  );
}

/**
 * The same model with its batch run in chunks of about `tokens` tokens (overBatchChunks): every
 * node moves into the loop's body, reading its rows of each input; weights stay in the main graph.
 * This is how model_int8.onnx gets its chunks while model.onnx stays a plain graph.
 */
export function wrapInBatchLoop(model: ModelDef, tokens: number): ModelDef {
  if (!chunkable(model)) throw new Error("wrapInBatchLoop: the model is not a plain [batch, sequence] → [batch, sequence, dim] graph");
  const out = model.outputs[0]!;
  const g = new GraphBuilder();
  g.reserve(model.initializers.map((t) => t.name));
  for (const n of allNodes(model.nodes)) g.reserve([n.name, ...n.inputs, ...n.outputs]);
  for (const n of model.nodes) for (const a of Object.values(n.attributes)) if (a.kind === "graph") g.reserve(a.value.inputs.map((v) => v.name));
  const feeds = model.inputs.map((i) => g.input(i.name, i.elemType, i.shape!));
  const inner = g.unique(`${out.name}_chunk`);
  const output = overBatchChunks(g, feeds, tokens, out.shape![2] as number, (rows) => {
    const rename = new Map<string, string>(feeds.map((f, i) => [f, rows[i]!]));
    rename.set(out.name, inner);
    const renamed = (n: NodeDef): NodeDef => ({ ...n, inputs: n.inputs.map((v) => rename.get(v) ?? v), outputs: n.outputs.map((v) => rename.get(v) ?? v) });
    // Subgraphs read outer values by name: the renamed inputs too.
    const deep = (n: NodeDef): NodeDef => {
      const r = renamed(n);
      const attributes = Object.fromEntries(
        Object.entries(r.attributes).map(([k, a]) => [k, a.kind === "graph" ? { kind: "graph" as const, value: { ...a.value, nodes: a.value.nodes.map(deep) } } : a]),
      );
      return { ...r, attributes };
    };
    g.append(model.nodes.map(deep));
    return inner;
  });
  g.output(output, out.name, out.elemType, out.shape!);
  return {
    ...model,
    inputs: g.inputs,
    outputs: g.outputs,
    nodes: g.nodes,
    initializers: [...model.initializers, ...g.initializers],
    metadata: { ...model.metadata, chunk_tokens: String(tokens) },
  };
}
