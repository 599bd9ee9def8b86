/**
 * Decompression of candidate documents (search stage 3) as a WebAssembly SIMD kernel: each token
 * is its centroid plus one bucket weight per dimension, read four dimensions at a time — for 4-bit
 * residuals two bytes give four weights (two 8-byte rows of the byte table, codec.ts byteLookup),
 * for 2-bit ones one byte does — and its squared norm is accumulated in four float32 lanes. In
 * JavaScript (~0.4 µs per token at dim 128) it was the largest part of a search (profiled at 10 000
 * documents; BENCHMARKS.md).
 *
 * The arithmetic is float32 in a fixed order (lane j mod 4, then (l0 + l1) + (l2 + l3)), that of
 * codec.ts decompress, its reference: kernel and JavaScript agree bit for bit.
 */
import type { Codec, Ids } from "./codec.js";
import { addInto, f32x4Add, f32x4ExtractLane, f32x4Mul, f32x4Splat, f64, forLoop, get, I32, i32, kernelModule, KernelMemory, memarg32, op, set, V128, v128Load, v128Load64Lane, v128Load64Zero, v128Store } from "./wasm.js";

// Parameters (byte addresses in memory, counts): centroids, lut, codes, packed (advanced token by
// token), count, groups (dim / 4), rowBytes (dim · 4), out (advanced), inv (advanced).
const [CENTS, LUT, CODES, PACKED, COUNT, GROUPS, ROW, OUT, INV] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
// Locals.
const [T, G, C, R, V, ACC] = [9, 10, 11, 12, 13, 14];

/** The four bucket weights of the next group of 4 dimensions, advancing PACKED. */
const weights = (nbits: 2 | 4) =>
  nbits === 4
    ? [
        ...get(LUT), ...get(PACKED), op.i32Load8U, 0, 0, ...i32(3), op.i32Shl, op.i32Add, ...v128Load64Zero(), ...set(R),
        ...get(LUT), ...get(PACKED), op.i32Load8U, 0, 1, ...i32(3), op.i32Shl, op.i32Add, ...get(R), ...v128Load64Lane(1),
        ...addInto(PACKED, ...i32(2)),
      ]
    : [...get(LUT), ...get(PACKED), op.i32Load8U, 0, 0, ...i32(4), op.i32Shl, op.i32Add, ...v128Load(), ...addInto(PACKED, ...i32(1))];

const body = (nbits: 2 | 4) => [
  ...i32(0), ...set(T),
  ...forLoop(T, COUNT, [
    // c = centroids + rowBytes · codes[t]
    ...get(CENTS), ...get(CODES), ...get(T), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, ...memarg32, ...get(ROW), op.i32Mul, op.i32Add, ...set(C),
    ...f32x4Splat([0, 0, 0, 0]), ...set(ACC),
    ...i32(0), ...set(G),
    ...forLoop(G, GROUPS, [
      // v = c[4g..4g+4) + weights; out ← v; acc += v · v
      ...get(C), ...v128Load(), ...weights(nbits), ...f32x4Add(), ...set(V),
      ...get(OUT), ...get(V), ...v128Store(),
      ...get(ACC), ...get(V), ...get(V), ...f32x4Mul(), ...f32x4Add(), ...set(ACC),
      ...addInto(C, ...i32(16)),
      ...addInto(OUT, ...i32(16)),
      ...addInto(G, ...i32(1)),
    ]),
    // inv[t] = 1 / max(√((a0 + a1) + (a2 + a3)), 1e-12)
    ...get(INV),
    ...f64(1),
    ...get(ACC), ...f32x4ExtractLane(0), ...get(ACC), ...f32x4ExtractLane(1), op.f32Add,
    ...get(ACC), ...f32x4ExtractLane(2), ...get(ACC), ...f32x4ExtractLane(3), op.f32Add,
    op.f32Add, op.f64PromoteF32, op.f64Sqrt, ...f64(1e-12), op.f64Max, op.f64Div, op.f32DemoteF64,
    op.f32Store, ...memarg32,
    ...addInto(INV, ...i32(4)),
    ...addInto(T, ...i32(1)),
  ]),
];

const locals: [number, number][] = [[3, I32], [3, V128]];
const MODULE = kernelModule([
  { name: "unpack4", params: 9, locals, body: body(4) },
  { name: "unpack2", params: 9, locals, body: body(2) },
]);

type Kernel = (cents: number, lut: number, codes: number, packed: number, count: number, groups: number, rowBytes: number, out: number, inv: number) => void;

/** Tokens per kernel call: the memory beyond the codec stays ≤ ~0.6 MB per 1 000 tokens at dim 128. */
const BATCH_TOKENS = 4096;

/**
 * One per thread (a call has no await). Memory: [centroids][byte table][codes][packed][out][inv];
 * the codec's part is copied in when the codec changes (a retrain).
 */
export class Unpacker {
  private readonly mem = new KernelMemory();
  private readonly kernels: Record<2 | 4, Kernel>;
  private codec: Codec | undefined;
  private lutAt = 0;
  private freeAt = 0;

  constructor() {
    const instance = new WebAssembly.Instance(MODULE, { env: { memory: this.mem.memory } });
    this.kernels = { 4: instance.exports["unpack4"] as Kernel, 2: instance.exports["unpack2"] as Kernel };
  }

  /** Whether the kernel takes this codec (dimensions in groups of 4). */
  static supports(codec: Codec): boolean {
    return codec.dim % 4 === 0;
  }

  private load(codec: Codec, lut: Float32Array): void {
    if (this.codec === codec) return;
    this.lutAt = codec.centroids.byteLength;
    this.freeAt = this.lutAt + lut.byteLength;
    this.mem.ensure(this.freeAt);
    this.mem.f32.set(codec.centroids, 0);
    this.mem.f32.set(lut, this.lutAt >> 2);
    this.codec = codec;
  }

  /** codec.ts decompress with `invNorms`: rows of `out` unnormalised, 1 / ‖row‖ in `invNorms`. */
  run(codec: Codec, lut: Float32Array, codes: Ids, packed: Uint8Array, count: number, out: Float32Array, outOffset: number, invNorms: Float32Array, invOffset: number): void {
    this.load(codec, lut);
    const { dim } = codec;
    const bytes = (dim * codec.nbits) / 8;
    for (let first = 0; first < count; first += BATCH_TOKENS) {
      const n = Math.min(BATCH_TOKENS, count - first);
      const codesAt = this.freeAt;
      const packedAt = codesAt + 4 * n;
      const outAt = (packedAt + n * bytes + 15) & ~15;
      const invAt = outAt + 4 * n * dim;
      this.mem.ensure(invAt + 4 * n);
      const { f32, i32, u8 } = this.mem;
      i32.set(codes.subarray(first, first + n), codesAt >> 2);
      u8.set(packed.subarray(first * bytes, (first + n) * bytes), packedAt);
      this.kernels[codec.nbits](0, this.lutAt, codesAt, packedAt, n, dim / 4, dim * 4, outAt, invAt);
      out.set(f32.subarray(outAt >> 2, (outAt >> 2) + n * dim), outOffset + first * dim);
      invNorms.set(f32.subarray(invAt >> 2, (invAt >> 2) + n), invOffset + first);
    }
  }
}
