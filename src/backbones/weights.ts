/**
 * Checkpoint tensors under the names the PyTorch module uses (transformers' key renaming applied),
 * turned into lazily-read ONNX initializers.
 */
import type { WeightStore } from "../checkpoint/types.js";
import { DataType, type TensorDef } from "../onnx/model.js";
import { UserError } from "../errors.js";
import { Scratch } from "../checkpoint/scratch.js";

/** transformers' legacy LayerNorm parameter names. */
function modernizeKey(key: string): string {
  return key.replace(/\.gamma$/, ".weight").replace(/\.beta$/, ".bias");
}

export class Weights {
  private readonly byName = new Map<string, string>();
  /** Buffers the lazily produced initializers reuse (the writer consumes one at a time). */
  private readonly scratch = new Scratch();

  /**
   * @param store the checkpoint
   * @param prefix stored prefix of the module's tensors (e.g. "bert." for a BertForMaskedLM or an
   *   HF_ColBERT checkpoint); tensors outside it are ignored.
   * @param what how messages name this module
   * @param onnxPrefix prepended to initializer names (keeps several modules' names apart)
   */
  constructor(
    private readonly store: WeightStore,
    prefix = "",
    private readonly what = "checkpoint",
    private readonly onnxPrefix = "",
  ) {
    for (const stored of store.names()) {
      if (stored.startsWith(prefix)) this.byName.set(modernizeKey(stored.slice(prefix.length)), stored);
    }
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private stored(name: string): string {
    const s = this.byName.get(name);
    if (s === undefined) {
      throw new UserError(`The ${this.what} has no tensor "${name}": it does not match its config.json (architecture, num_hidden_layers); check that the checkpoint is complete`);
    }
    return s;
  }

  shape(name: string): number[] {
    return this.store.info(this.stored(name)).shape;
  }

  read(name: string): Float32Array {
    return this.store.readF32(this.stored(name));
  }

  /** Asserts the tensor's shape, with an error naming the tensor. */
  expectShape(name: string, shape: number[]): void {
    const actual = this.shape(name);
    if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
      throw new UserError(`Tensor "${name}" has shape [${actual}] but config.json implies [${shape}]; the checkpoint does not match its config`);
    }
  }

  /** The tensor as an initializer, as stored. */
  tensor(name: string, onnxName = this.onnxPrefix + name): TensorDef {
    const shape = this.shape(name);
    return {
      name: onnxName,
      dataType: DataType.FLOAT,
      dims: shape,
      byteLength: shape.reduce((a, b) => a * b, 1) * 4,
      data: () => this.store.readF32(this.stored(name), this.scratch),
    };
  }

  /** A 2-D [out, in] Linear weight as the [in, out] matrix MatMul wants. */
  transposed(name: string, onnxName = this.onnxPrefix + name): TensorDef {
    const shape = this.shape(name);
    if (shape.length !== 2) throw new UserError(`Tensor "${name}" should be 2-D, has shape [${shape}]`);
    const [rows, cols] = shape as [number, number];
    return {
      name: onnxName,
      dataType: DataType.FLOAT,
      dims: [cols, rows],
      byteLength: rows * cols * 4,
      data: () => transpose2d(this.store.readF32(this.stored(name), this.scratch), rows, cols, this.scratch.f32("transpose", rows * cols)),
    };
  }
}

/** Cache-blocked transpose of a row-major [rows, cols] matrix. */
export function transpose2d(src: Float32Array, rows: number, cols: number, dst: Float32Array = new Float32Array(rows * cols)): Float32Array {
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(r0 + B, rows);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(c0 + B, cols);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[base + c]!;
      }
    }
  }
  return dst;
}
