/**
 * PLAID's approximate scores (search stage 2) as a WebAssembly SIMD kernel: for each candidate
 * document, Σ_q max over its codes c of S[q, c] — S the query × centroid scores. In JavaScript this
 * is a compare and a data-dependent branch per (code, query token): at 200 000 documents tens of
 * thousands of candidates make it most of a search. Here 4 query tokens per f32x4.max, no branch.
 * The sum runs in float64 over the query tokens in order, as the JavaScript loop it replaces: the
 * scores are bit-identical.
 *
 * For queries of up to 32 tokens (ColBERT's query length) the running maxima live in up to eight
 * v128 locals — a variant per width, unrolled — so each code costs its row's loads and maxes only;
 * longer queries use one loop over a maxima array in memory.
 *
 * The module (~1.5 KB) is assembled below (wasm.ts): its instructions read as the loops they
 * encode.
 */

import type { Ids } from "./codec.js";
import { addInto, at4, F64, f64, f32x4ExtractLane, f32x4Max, f32x4Splat, forLoop, get, I32, i32, kernelModule, KernelMemory, memarg32, op, set, simd, uleb, V128, v128Load, v128Store } from "./wasm.js";

// Parameters (byte addresses in memory): st, rowBytes, codes, offsets, n, best, out.
const [ST, ROW, CODES, OFFS, N, BEST, OUT] = [0, 1, 2, 3, 4, 5, 6];
// Locals.
const [D, U, END, BASE, J, SUM, V] = [7, 8, 9, 10, 11, 12, 13];

const NEG_INF = [0x00, 0x00, 0x80, 0xff];

const body = [
  ...i32(0), ...set(D),
  ...forLoop(D, N, [
    // [u, end) = this document's codes.
    ...at4(OFFS, D), op.i32Load, ...memarg32, ...set(U),
    ...at4(OFFS, D), op.i32Load, 2, 4, ...set(END),
    // best = −∞ for every query token.
    ...i32(0), ...set(J),
    ...forLoop(J, ROW, [...get(BEST), ...get(J), op.i32Add, ...f32x4Splat(NEG_INF), ...v128Store(), ...addInto(J, ...i32(16))]),
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
    ...f64(0), ...set(SUM),
    ...i32(0), ...set(J),
    ...forLoop(J, ROW, [
      ...get(BEST), ...get(J), op.i32Add, ...v128Load(), ...set(V),
      ...[0, 1, 2, 3].flatMap((lane) => [...get(SUM), ...get(V), ...f32x4ExtractLane(lane), op.f64PromoteF32, op.f64Add, ...set(SUM)]),
      ...addInto(J, ...i32(16)),
    ]),
    ...at4(OUT, D), ...get(SUM), op.f32DemoteF64, op.f32Store, ...memarg32,
    ...addInto(D, ...i32(1)),
  ]),
];

/** v128.load at a constant byte offset from the address on the stack. */
const v128LoadAt = (offset: number) => simd(0x00, 4, ...uleb(offset));
/** Widest query (in f32x4 groups) whose maxima are kept in locals. */
const MAX_GROUPS = 8;

/**
 * The same function for queries of `groups` × 4 lanes, maxima in locals B0… (the BEST parameter is
 * unused): per code, `groups` loads at constant offsets of its row and as many maxes.
 */
function inRegisters(groups: number): number[] {
  const B = (g: number) => V + g; // V128 locals
  const gs = Array.from({ length: groups }, (_, g) => g);
  return [
    ...i32(0), ...set(D),
    ...forLoop(D, N, [
      ...at4(OFFS, D), op.i32Load, ...memarg32, ...set(U),
      ...at4(OFFS, D), op.i32Load, 2, 4, ...set(END),
      ...gs.flatMap((g) => [...f32x4Splat(NEG_INF), ...set(B(g))]),
      ...forLoop(U, END, [
        ...get(ST), ...at4(CODES, U), op.i32Load, ...memarg32, ...get(ROW), op.i32Mul, op.i32Add, ...set(BASE),
        ...gs.flatMap((g) => [...get(B(g)), ...get(BASE), ...v128LoadAt(16 * g), ...f32x4Max(), ...set(B(g))]),
        ...addInto(U, ...i32(1)),
      ]),
      // Σ in float64 over the lanes in order, as the loop above.
      ...f64(0), ...set(SUM),
      ...gs.flatMap((g) => [0, 1, 2, 3].flatMap((lane) => [...get(SUM), ...get(B(g)), ...f32x4ExtractLane(lane), op.f64PromoteF32, op.f64Add, ...set(SUM)])),
      ...at4(OUT, D), ...get(SUM), op.f32DemoteF64, op.f32Store, ...memarg32,
      ...addInto(D, ...i32(1)),
    ]),
  ];
}

const MODULE = kernelModule([
  { name: "approx", params: 7, locals: [[5, I32], [1, F64], [1, V128]], body },
  ...Array.from({ length: MAX_GROUPS }, (_, i) => ({ name: `approx${i + 1}`, params: 7, locals: [[5, I32], [1, F64], [i + 1, V128]] as [number, number][], body: inRegisters(i + 1) })),
]);

/** Documents' codes: document l has codes[offsets[l], offsets[l + 1]). */
export interface CodeLists {
  codes: Ids;
  offsets: Int32Array;
}

type Kernel = (st: number, rowBytes: number, codes: number, offsets: number, n: number, best: number, out: number) => void;

/** Codes gathered per kernel call (4 MiB of them): memory stays bounded whatever the candidates. */
const BATCH_CODES = 1 << 20;

/**
 * One per thread (searches on a thread run one at a time between awaits: score() has none).
 * Memory layout: [S transposed and padded: k rows of rowBytes][best: rowBytes][codes][offsets][out].
 */
export class ApproxScorer {
  private readonly mem = new KernelMemory();
  /** [0]: any width (maxima in memory); [g]: queries of g × 4 lanes (maxima in locals). */
  private readonly kernels: Kernel[];

  /** `batchCodes`: codes gathered per kernel call (tests force small batches). */
  constructor(private readonly batchCodes = BATCH_CODES) {
    const instance = new WebAssembly.Instance(MODULE, { env: { memory: this.mem.memory } });
    this.kernels = Array.from({ length: MAX_GROUPS + 1 }, (_, g) => instance.exports[g === 0 ? "approx" : `approx${g}`] as Kernel);
  }

  /**
   * Approximate scores of `count` documents given by their distinct codes: document i is document
   * `local[i]` of `lists[list[i]]` (codes[offsets[l], offsets[l + 1])). `st` is [k, nq] (centroid ×
   * query token). Returns one float32 score per document (0 for a document without codes).
   */
  score(st: Float32Array, nq: number, k: number, lists: readonly CodeLists[], list: Int32Array, local: Int32Array, count: number): Float32Array {
    const out = new Float32Array(count);
    if (count === 0) return out;
    const lanes = Math.ceil(nq / 4) * 4;
    const rowBytes = lanes * 4;
    const kernel = this.kernels[lanes / 4 <= MAX_GROUPS ? lanes / 4 : 0]!;
    const stAt = 0;
    const best = k * rowBytes;
    const codes = best + rowBytes;
    // Documents per call: their codes ≤ BATCH_CODES (a longer document gets a call of its own).
    const maxDocs = Math.min(count, this.batchCodes);
    this.mem.ensure(codes);
    // A row per centroid, padded with zeros to whole f32x4 (a zero lane adds 0 to the sum).
    const f = this.mem.f32;
    if (lanes === nq) f.set(st.subarray(0, k * nq), stAt >> 2);
    else {
      for (let c = 0; c < k; c++) {
        const row = (stAt >> 2) + c * lanes;
        f.set(st.subarray(c * nq, (c + 1) * nq), row);
        f.fill(0, row + nq, row + lanes);
      }
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
      this.mem.ensure(codes + 4 * total + 8 * (last - first) + 4);
      const w = this.mem.i32;
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
      kernel(stAt, rowBytes, codes, offsets, last - first, best, outAt);
      const res = this.mem.f32.subarray(outAt >> 2, (outAt >> 2) + last - first);
      for (let i = first; i < last; i++) {
        out[i] = w[o + i - first + 1] === w[o + i - first] ? 0 : res[i - first]!;
      }
      first = last;
    }
    return out;
  }
}
