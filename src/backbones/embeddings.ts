/**
 * The word-embedding table cut or extended to the final tokenizer length. Rows for tokens the
 * checkpoint lacks get the mean of the existing rows (PyLate would leave them random).
 */
import { DataType, type TensorDef } from "../onnx/model.js";
import type { Ctx } from "./nn.js";
import type { Value } from "../onnx/graph.js";

export interface TableOptions {
  /** A [hidden] or [1, hidden] tensor added to every row (a folded constant embedding). */
  addRow?: string;
}

export function wordEmbeddingTable({ g, w, warn }: Ctx, name: string, rows: number, opts: TableOptions = {}): Value {
  const [stored, hidden] = w.shape(name) as [number, number];
  if (rows > stored) {
    warn(`${rows - stored} embedding row(s) for added prefix tokens do not exist in the checkpoint; they get the mean of the existing rows (PyLate would initialise them randomly): fine-tune the model if these tokens matter`);
  }
  const def: TensorDef = {
    name,
    dataType: DataType.FLOAT,
    dims: [rows, hidden],
    byteLength: rows * hidden * 4,
    data: () => {
      const src = w.read(name);
      let out: Float32Array;
      if (rows <= stored) {
        out = rows === stored ? src : src.slice(0, rows * hidden);
      } else {
        out = new Float32Array(rows * hidden);
        out.set(src);
        const mean = new Float64Array(hidden);
        for (let r = 0; r < stored; r++) for (let c = 0; c < hidden; c++) mean[c]! += src[r * hidden + c]!;
        for (let r = stored; r < rows; r++) for (let c = 0; c < hidden; c++) out[r * hidden + c] = mean[c]! / stored;
      }
      if (opts.addRow) {
        const add = w.read(opts.addRow);
        for (let r = 0; r < rows; r++) for (let c = 0; c < hidden; c++) out[r * hidden + c]! += add[c]!;
      }
      return out;
    },
  };
  return g.initializer(def);
}
