import type { Scratch } from "./scratch.js";

/** Element types a checkpoint tensor can have (safetensors spelling). */
export type DType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export interface TensorInfo {
  /** Name as stored in the checkpoint (no prefix stripping). */
  name: string;
  dtype: DType;
  shape: number[];
}

/**
 * Read-only access to the tensors of a checkpoint (one file, or several shards). Tensors are read
 * lazily, by offset, one at a time: nothing holds the whole checkpoint in memory.
 */
export interface WeightStore {
  /** Every tensor name, as stored. */
  names(): string[];
  has(name: string): boolean;
  /** Throws UserError when the tensor does not exist. */
  info(name: string): TensorInfo;
  /**
   * The tensor converted to float32 (F16/BF16/F64 are converted; integer dtypes are refused with
   * UserError). Returns a fresh, 4-byte aligned array the caller may modify — or, with `scratch`,
   * an array in the scratch buffers that is valid only until their next use.
   */
  readF32(name: string, scratch?: Scratch): Float32Array;
  /** Releases file handles. */
  close(): void;
}
