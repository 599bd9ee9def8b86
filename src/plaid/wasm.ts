/**
 * A minimal WebAssembly encoder for the index's hand-written SIMD kernels (approx.ts,
 * unpack.ts): the opcodes they use, locals, structured loops, and a one-function module over an
 * imported memory. Kernels are assembled at load rather than shipped as binaries: their
 * instructions read as the loops they encode.
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
const EMPTY = 0x40;

export const op = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  get: 0x20,
  set: 0x21,
  tee: 0x22,
  i32Load: 0x28,
  f32Store: 0x38,
  i32Load8U: 0x2d,
  i32Const: 0x41,
  f64Const: 0x44,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32Mul: 0x6c,
  i32Shl: 0x74,
  f32Add: 0x92,
  f64Sqrt: 0x9f,
  f64Add: 0xa0,
  f64Div: 0xa3,
  f64Max: 0xa5,
  f32DemoteF64: 0xb6,
  f64PromoteF32: 0xbb,
} as const;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** A SIMD instruction (0xfd prefix) with its immediates. */
export const simd = (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm];
/** memarg of a 4-byte access at offset 0. */
export const memarg32 = [2, 0];
export const v128Load = () => simd(0x00, 4, 0);
export const v128Store = () => simd(0x0b, 4, 0);
/** Loads 8 bytes into lane 0, zeroes lane 1 (of i64x2). */
export const v128Load64Zero = () => simd(0x5d, 3, 0);
/** Loads 8 bytes into i64x2 lane `lane` of the vector on the stack. */
export const v128Load64Lane = (lane: number) => simd(0x57, 3, 0, lane);
export const f32x4Add = () => simd(0xe4);
export const f32x4Mul = () => simd(0xe6);
export const f32x4Max = () => simd(0xe9);
export const f32x4ExtractLane = (lane: number) => simd(0x1f, lane);
/** v128.const of four equal float32 lanes given as their little-endian bytes. */
export const f32x4Splat = (bytes: readonly number[]) => simd(0x0c, ...new Array(4).fill(bytes).flat());

export const get = (l: number) => [op.get, l];
export const set = (l: number) => [op.set, l];
export const i32 = (n: number) => [op.i32Const, ...sleb(n)];
export const f64 = (v: number) => [op.f64Const, ...new Uint8Array(new Float64Array([v]).buffer)];
/** local l += value. */
export const addInto = (l: number, ...value: number[]) => [...get(l), ...value, op.i32Add, ...set(l)];
/** `block loop (br_if exit when a ≥ b) body (br loop) end end`. */
export const forLoop = (a: number, b: number, body: number[]) => [op.block, EMPTY, op.loop, EMPTY, ...get(a), ...get(b), op.i32GeU, op.brIf, 1, ...body, op.br, 0, op.end, op.end];
/** base + 4·index. */
export const at4 = (base: number, index: number) => [...get(base), ...get(index), ...i32(2), op.i32Shl, op.i32Add];

const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const sized = (b: number[]) => [...uleb(b.length), ...b];
const name = (s: string) => [...uleb(s.length), ...Buffer.from(s, "latin1")];

/**
 * A module importing `env.memory` and exporting `functions` (each `(i32 × params) → ()`, its
 * locals after the parameters given as [count, type] runs, its body without the final `end`).
 */
export function kernelModule(functions: { name: string; params: number; locals: [number, number][]; body: number[] }[]): WebAssembly.Module {
  const types = functions.map((f) => [0x60, ...vec(new Array(f.params).fill([I32])), 0]);
  const bytes = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, 0x01]])), // imported memory, ≥ 1 page
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(7, vec(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(functions.map((f) => sized([...vec(f.locals.map(([n, t]) => [...uleb(n), t])), ...f.body, op.end])))),
  ]);
  return new WebAssembly.Module(bytes);
}

export const PAGE = 65_536;

/** A WebAssembly memory with typed views that follow its growth. */
export class KernelMemory {
  readonly memory = new WebAssembly.Memory({ initial: 1 });
  f32 = new Float32Array(this.memory.buffer);
  i32 = new Int32Array(this.memory.buffer);
  u8 = new Uint8Array(this.memory.buffer);

  /** At least `bytes` bytes. */
  ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return;
    this.memory.grow(Math.ceil((bytes - have) / PAGE));
    this.f32 = new Float32Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
    this.u8 = new Uint8Array(this.memory.buffer);
  }
}
