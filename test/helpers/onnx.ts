/** Editing an ONNX file's weights in place, for tests that need a model with particular values. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { readModel } from "../../src/onnx/reader.js";
import { writeModel } from "../../src/onnx/writer.js";
import { allNodes, DataType, type ModelDef, type TensorDef } from "../../src/onnx/model.js";

type Values = Float32Array | Int8Array;

/** A fresh copy of a FLOAT or INT8 initializer's values. */
function copyOf(t: TensorDef): Values {
  const d = t.data();
  const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice();
  if (t.dataType === DataType.FLOAT) return new Float32Array(bytes.buffer);
  if (t.dataType === DataType.INT8) return new Int8Array(bytes.buffer);
  throw new Error(`${t.name}: only FLOAT and INT8 initializers can be edited here`);
}

/**
 * Rewrites `file`: for each initializer `edit` picks, the returned function changes a copy of its
 * values (same type and shape). Returns how many were edited.
 */
export function editInitializers(file: string, edit: (t: TensorDef, model: ModelDef) => ((values: Values) => void) | undefined): number {
  const read = readModel(file);
  let edited = 0;
  const initializers = read.model.initializers.map((t) => {
    const change = edit(t, read.model);
    if (!change) return t;
    edited++;
    return {
      ...t,
      data: () => {
        const values = copyOf(t);
        change(values);
        return values;
      },
    };
  });
  const tmp = `${file}.edit.tmp`;
  try {
    writeModel(tmp, { ...read.model, initializers });
  } finally {
    read.close();
  }
  fs.renameSync(tmp, file);
  return edited;
}

/** The folder's model_int8.onnx rewritten as a full-range quantizer would: q doubled (±127), scale halved. */
export function fullRangeInt8(dir: string): void {
  editInitializers(path.join(dir, "model_int8.onnx"), (t, model) => {
    const weights = new Set([...allNodes(model.nodes)].filter((n) => n.opType === "MatMulInteger").map((n) => n.inputs[1]!));
    if (weights.has(t.name)) return (q) => q.forEach((v, i) => (q[i] = Math.max(-127, Math.min(127, 2 * v))));
    if ([...weights].some((w) => w.replace(/_quantized$/, "_scale") === t.name)) {
      assert.equal(t.dataType, DataType.FLOAT);
      return (s) => s.forEach((v, i) => (s[i] = v / 2));
    }
    return undefined;
  });
}
