/**
 * Proves a written model works: loads it with onnxruntime-node, encodes a probe query and a probe
 * document the way the runtime does, and checks shape, finiteness and unit norms.
 * onnxruntime loads it through a view (runtime/model-view.ts): the graph, with the weights it runs
 * mapped straight from model.onnx's bytes.
 */
import * as ort from "onnxruntime-node";
import { PROBE_SESSION_OPTIONS, withModelView } from "../runtime/model-view.js";
import { ColbertTokenizer } from "../runtime/tokenizer.js";
import { padBatch } from "../runtime/batch.js";
import type { OnnxConfig } from "../colbert/onnx-config.js";
import { environmentError, UserError } from "../errors.js";

export interface SelfCheckResult {
  /** Attended token rows checked (query expansion rows included when the model attends to them). */
  rows: number;
  dim: number;
  maxNormError: number;
  ms: number;
}

export async function selfCheck(modelFile: string, tokenizerJson: object, tokenizerConfig: object, cfg: OnnxConfig): Promise<SelfCheckResult> {
  const start = performance.now();
  // The probe goes through the runtime's PyLate-exact tokenization, as real traffic would.
  const tokenizer = await ColbertTokenizer.create(tokenizerJson as Record<string, unknown>, tokenizerConfig as Record<string, unknown>, cfg);
  const rows = [
    await tokenizer.encode("what is late interaction retrieval?", "query"),
    await tokenizer.encode("ColBERT compares every query token with every document token.", "document"),
  ];
  const { seq, ids, mask } = padBatch(rows, cfg.pad_token_id);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", ids, [2, seq]),
    attention_mask: new ort.Tensor("int64", mask, [2, seq]),
  };
  if (cfg.uses_token_type_ids) feeds["token_type_ids"] = new ort.Tensor("int64", new BigInt64Array(2 * seq), [2, seq]);

  let session: ort.InferenceSession;
  try {
    session = await withModelView(modelFile, (file) => ort.InferenceSession.create(file, PROBE_SESSION_OPTIONS));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw environmentError(e) ?? new UserError(`Self-check failed: onnxruntime cannot load ${modelFile} (${(e as Error).message.split("\n")[0]}); please report this bug`);
  }
  try {
    const out = (await session.run(feeds))["output"];
    if (!out) throw new UserError(`Self-check failed: ${modelFile} has no "output"; please report this bug`);
    const [b, s, dim] = out.dims as number[];
    if (b !== 2 || s !== seq || dim !== cfg.embedding_dim) {
      throw new UserError(`Self-check failed: output shape [${out.dims}] instead of [2, ${seq}, ${cfg.embedding_dim}]; please report this bug`);
    }
    const data = out.data as Float32Array;
    let maxNormError = 0;
    let attended = 0;
    for (let r = 0; r < b * s; r++) {
      let sum = 0;
      for (let c = 0; c < dim; c++) {
        const v = data[r * dim + c]!;
        if (!Number.isFinite(v)) throw new UserError(`Self-check failed: non-finite output values (the checkpoint may hold NaN/Inf weights)`);
        sum += v * v;
      }
      if (mask[r] === 1n) {
        attended++;
        maxNormError = Math.max(maxNormError, Math.abs(Math.sqrt(sum) - 1));
      }
    }
    if (maxNormError > 1e-4) throw new UserError(`Self-check failed: output rows are not unit-norm (error ${maxNormError}); please report this bug`);
    return { rows: attended, dim, maxNormError, ms: performance.now() - start };
  } finally {
    await session.release();
  }
}
