/**
 * PLAID's approximate scores (search stage 2) as a WebAssembly SIMD kernel: for each candidate
 * document, Σ_q max over its codes c of S[q, c] — S the query × centroid scores. In JavaScript this
 * is a compare and a data-dependent branch per (code, query token): at 200 000 documents tens of
 * thousands of candidates make it most of a search. Here 4 query tokens per f32x4.max, no branch.
 * The sum runs in float64 over the query tokens in order, as the JavaScript loop it replaces: the
 * scores are bit-identical.
 *
 * The module (one function, ~150 bytes) is assembled below rather than shipped as a binary: its
 * instructions read as the loop they encode.
 */

// --- A minimal WebAssembly encoder: the opcodes this kernel uses. ---
const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
const EMPTY = 0x40;
const op = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  get: 0x20,
  set: 0x21,
  i32Load: 0x28,
  f32Store: 0x38,
  i32Const: 0x41,
  f64Const: 0x44,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32Mul: 0x6c,
  i32Shl: 0x74,
  f64Add: 0xa0,
  f32DemoteF64: 0xb6,
  f64PromoteF32: 0xbb,
} as const;
const simd = (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm];
const v128Load = () => simd(0x00, 4, 0); // memarg: align 2^4, offset 0
const v128Store = () => simd(0x0b, 4, 0);
const f32x4Max = () => simd(0xe9);
const f32x4ExtractLane = (lane: number) => simd(0x1f, lane);
const memarg32 = [2, 0];

function uleb(n: number): number[] {
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
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const sized = (b: number[]) => [...uleb(b.length), ...b];
const name = (s: string) => [...uleb(s.length), ...Buffer.from(s, "latin1")];

// Parameters (byte addresses in memory): st, rowBytes, codes, offsets, n, best, out.
const [ST, ROW, CODES, OFFS, N, BEST, OUT] = [0, 1, 2, 3, 4, 5, 6];
// Locals.
const [D, U, END, BASE, J, SUM, V] = [7, 8, 9, 10, 11, 12, 13];
const get = (l: number) => [op.get, l];
const set = (l: number) => [op.set, l];
const i32 = (n: number) => [op.i32Const, ...sleb(n)];
const addInto = (l: number, ...value: number[]) => [...get(l), ...value, op.i32Add, ...set(l)];
/** `block loop (br_if exit when a ≥ b) body (br loop) end end`. */
const forLoop = (a: number, b: number, body: number[]) => [op.block, EMPTY, op.loop, EMPTY, ...get(a), ...get(b), op.i32GeU, op.brIf, 1, ...body, op.br, 0, op.end, op.end];
const at4 = (base: number, index: number) => [...get(base), ...get(index), ...i32(2), op.i32Shl, op.i32Add]; // base + 4·index

const body = [
  ...i32(0), ...set(D),
  ...forLoop(D, N, [
    // [u, end) = this document's codes.
    ...at4(OFFS, D), op.i32Load, ...memarg32, ...set(U),
    ...at4(OFFS, D), op.i32Load, 2, 4, ...set(END),
    // best = −∞ for every query token.
    ...i32(0), ...set(J),
    ...forLoop(J, ROW, [...get(BEST), ...get(J), op.i32Add, ...simd(0x0c, ...new Array(4).fill([0x00, 0x00, 0x80, 0xff]).flat()), ...v128Store(), ...addInto(J, ...i32(16))]),
    // best = max(best, S[·, code]) for each code.
    ...forLoop(U, END, [
      ...get(ST), ...at4(CODES, U), op.i32Load, ...memarg32, ...get(ROW), op.i32Mul, op.i32Add, ...set(BASE),
      ...i32(0), ...set(J),
      ...forLoop(J, ROW, [
        ...get(BEST), ...get(J), op.i32Add,
        ...get(BEST), ...get(J), op.i32Add, ...v128Load(),
        ...get(BASE), ...get(J), op.i32Add, ...v128Load(),
        ...f32x4Max(), ...v128Store(),
        ...addInto(J, ...i32(16)),
      ]),
      ...addInto(U, ...i32(1)),
    ]),
    // out[d] = Σ best, in float64, token by token.
    op.f64Const, 0, 0, 0, 0, 0, 0, 0, 0, ...set(SUM),
    ...i32(0), ...set(J),
    ...forLoop(J, ROW, [
      ...get(BEST), ...get(J), op.i32Add, ...v128Load(), ...set(V),
      ...[0, 1, 2, 3].flatMap((lane) => [...get(SUM), ...get(V), ...f32x4ExtractLane(lane), op.f64PromoteF32, op.f64Add, ...set(SUM)]),
      ...addInto(J, ...i32(16)),
    ]),
    ...at4(OUT, D), ...get(SUM), op.f32DemoteF64, op.f32Store, ...memarg32,
    ...addInto(D, ...i32(1)),
  ]),
  op.end,
];

const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32], [I32]]), 0]])), // (i32 × 7) → ()
  ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, 0x01]])), // imported memory, ≥ 1 page
  ...section(3, vec([[0]])),
  ...section(7, vec([[...name("approx"), 0x00, 0]])),
  ...section(10, vec([sized([...vec([[5, I32], [1, F64], [1, V128]]), ...body])])), // locals: 5 i32, 1 f64, 1 v128
]);

/** Documents' codes: document l has codes[offsets[l], offsets[l + 1]). */
export interface CodeLists {
  codes: Int32Array;
  offsets: Int32Array;
}

type Kernel = (st: number, rowBytes: number, codes: number, offsets: number, n: number, best: number, out: number) => void;

/** Codes gathered per kernel call (4 MiB of them): memory stays bounded whatever the candidates. */
const BATCH_CODES = 1 << 20;
const PAGE = 65_536;

/**
 * One per thread (searches on a thread run one at a time between awaits: score() has none).
 * Memory layout: [S transposed and padded: k rows of rowBytes][best: rowBytes][codes][offsets][out].
 */
export class ApproxScorer {
  private memory = new WebAssembly.Memory({ initial: 1 });
  private readonly kernel: Kernel;
  private f32 = new Float32Array(this.memory.buffer);
  private i32 = new Int32Array(this.memory.buffer);

  /** `batchCodes`: codes gathered per kernel call (tests force small batches). */
  constructor(private readonly batchCodes = BATCH_CODES) {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(MODULE), { env: { memory: this.memory } });
    this.kernel = instance.exports["approx"] as Kernel;
  }

  private ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return;
    this.memory.grow(Math.ceil((bytes - have) / PAGE));
    this.f32 = new Float32Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
  }

  /**
   * Approximate scores of `count` documents given by their distinct codes: document i is document
   * `local[i]` of `lists[list[i]]` (codes[offsets[l], offsets[l + 1])). `s` is [nq, k] (query token
   * × centroid). Returns one float32 score per document (0 for a document without codes).
   */
  score(s: Float32Array, nq: number, k: number, lists: readonly CodeLists[], list: Int32Array, local: Int32Array, count: number): Float32Array {
    const out = new Float32Array(count);
    if (count === 0) return out;
    const lanes = Math.ceil(nq / 4) * 4;
    const rowBytes = lanes * 4;
    const st = 0;
    const best = k * rowBytes;
    const codes = best + rowBytes;
    // Documents per call: their codes ≤ BATCH_CODES (a longer document gets a call of its own).
    const maxDocs = Math.min(count, this.batchCodes);
    this.ensure(codes);
    // S transposed, each centroid's row padded with zeros (a zero lane adds 0 to the sum).
    const f = this.f32;
    for (let c = 0; c < k; c++) {
      const row = c * lanes;
      for (let q = 0; q < nq; q++) f[row + q] = s[q * k + c]!;
      for (let q = nq; q < lanes; q++) f[row + q] = 0;
    }
    for (let first = 0; first < count; ) {
      // Gather a batch of documents' codes.
      let total = 0;
      let last = first;
      while (last < count) {
        const { offsets } = lists[list[last]!]!;
        const len = offsets[local[last]! + 1]! - offsets[local[last]!]!;
        if (last > first && (total + len > this.batchCodes || last - first >= maxDocs)) break;
        total += len;
        last++;
      }
      this.ensure(codes + 4 * total + 8 * (last - first) + 4);
      const w = this.i32;
      const offsets = codes + 4 * total;
      const outAt = offsets + 4 * (last - first + 1);
      let at = codes >> 2;
      const o = offsets >> 2;
      w[o] = 0;
      for (let i = first; i < last; i++) {
        const { codes: arr, offsets: off } = lists[list[i]!]!;
        const l = local[i]!;
        for (let u = off[l]!, to = off[l + 1]!; u < to; u++) w[at++] = arr[u]!;
        w[o + i - first + 1] = at - (codes >> 2);
      }
      this.kernel(st, rowBytes, codes, offsets, last - first, best, outAt);
      const res = this.f32.subarray(outAt >> 2, (outAt >> 2) + last - first);
      for (let i = first; i < last; i++) {
        out[i] = w[o + i - first + 1] === w[o + i - first] ? 0 : res[i - first]!;
      }
      first = last;
    }
    return out;
  }
}
