/**
 * What a search reads: an immutable snapshot of an index, made of segments, one per chunk of
 * documents on disk. A segment keeps in memory only what scoring every candidate needs — its
 * documents' lengths, token codes, distinct codes and inverted lists, all sized by the chunk, not
 * the corpus — and reads packed residuals from its file for the few documents decompressed per
 * query (positional reads; the OS page cache does the caching). Segments are shared between
 * successive snapshots as long as their chunk is unchanged; document ids are positions in the
 * snapshot (a segment's first id moves when earlier documents are deleted).
 */
import { byteLookup, compactIds, packedBytes, type Codec, type Ids } from "./codec.js";
import { buildIvf, distinctCodes, type DocCodes, type Ivf } from "./ivf.js";
import { transpose } from "./kernels.js";

/** Packed residuals of a segment's tokens, by token range. */
export interface ResidualReader {
  /**
   * Packed residuals of tokens [from, to): a view of the reader's memory, or read into `into` when
   * given and large enough (a search reuses one buffer), else a fresh array. Do not modify.
   */
  read(from: number, to: number, into?: Uint8Array): Uint8Array;
  /** Bytes of memory it holds (0 when it reads from disk). */
  readonly resident: number;
  close(): void;
}

export function memoryResiduals(packed: Uint8Array, bytes: number): ResidualReader {
  return { read: (from, to) => packed.subarray(from * bytes, to * bytes), resident: packed.byteLength, close: () => undefined };
}

export interface Segment {
  /** The chunk it was loaded from (segments are reused by id). */
  id: string;
  doclens: Int32Array;
  /** [docs + 1] first token of each document, within the segment. */
  offsets: Int32Array;
  /** Centroid id per token. */
  codes: Ids;
  /** Each document's distinct codes (the approximate score needs each once). */
  docCodes: DocCodes;
  /** Centroid → the segment's documents (local ids). */
  ivf: Ivf;
  residuals: ResidualReader;
}

export function makeSegment(id: string, doclens: Int32Array, fileCodes: Ids, residuals: ResidualReader): Segment {
  const offsets = offsetsOf(doclens);
  if (offsets[doclens.length] !== fileCodes.length) throw new Error(`chunk ${id}: document lengths add up to ${offsets[doclens.length]} tokens, not ${fileCodes.length}`);
  let k = 0;
  for (let i = 0; i < fileCodes.length; i++) if (fileCodes[i]! >= k) k = fileCodes[i]! + 1;
  const codes = compactIds(fileCodes, k);
  const docCodes = distinctCodes(codes, offsets, doclens.length, k);
  return { id, doclens, offsets, codes, docCodes, ivf: buildIvf(docCodes, k), residuals };
}

/** Bytes of memory a segment holds. */
export function segmentBytes(s: Segment): number {
  return s.doclens.byteLength + s.offsets.byteLength + s.codes.byteLength + s.docCodes.codes.byteLength + s.docCodes.offsets.byteLength + s.ivf.docs.byteLength + s.ivf.offsets.byteLength + s.ivf.centroids.byteLength + s.residuals.resident;
}

export interface PlaidSnapshot {
  codec: Codec;
  clusterThreshold: number;
  segments: Segment[];
  /** [segments + 1] id of each segment's first document. */
  firstDoc: Int32Array;
  numDocs: number;
  numTokens: number;
  /** Derived from the codec. */
  lut: Float32Array;
  centroidsT: Float32Array;
}

/** The snapshot of `segments` under `codec` (`centroidsT`: its centroids transposed, when the caller has them). */
export function snapshotOf(codec: Codec, clusterThreshold: number, segments: Segment[], centroidsT?: Float32Array): PlaidSnapshot {
  const firstDoc = new Int32Array(segments.length + 1);
  let tokens = 0;
  segments.forEach((s, i) => {
    firstDoc[i + 1] = firstDoc[i]! + s.doclens.length;
    tokens += s.codes.length;
  });
  return { codec, clusterThreshold, segments, firstDoc, numDocs: firstDoc[segments.length]!, numTokens: tokens, lut: byteLookup(codec), centroidsT: centroidsT ?? transpose(codec.centroids, codec.k, codec.dim) };
}

export const numDocs = (s: PlaidSnapshot) => s.numDocs;
export const numTokens = (s: PlaidSnapshot) => s.numTokens;

/** The segment holding document `doc` (binary search over first ids). */
export function segmentOf(s: PlaidSnapshot, doc: number): number {
  let lo = 0;
  let hi = s.segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (s.firstDoc[mid]! <= doc) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Every document's length, in id order (an array as long as the document count). */
export function allDoclens(s: PlaidSnapshot): Int32Array {
  const out = new Int32Array(s.numDocs);
  s.segments.forEach((seg, i) => out.set(seg.doclens, s.firstDoc[i]!));
  return out;
}

/** The codes and packed residuals of document `doc`. */
export function documentTokens(s: PlaidSnapshot, doc: number): { codes: Ids; packed: Uint8Array } {
  const seg = s.segments[segmentOf(s, doc)]!;
  const local = doc - s.firstDoc[segmentOf(s, doc)]!;
  const from = seg.offsets[local]!;
  const to = seg.offsets[local + 1]!;
  return { codes: seg.codes.subarray(from, to), packed: seg.residuals.read(from, to) };
}

export function offsetsOf(doclens: Int32Array): Int32Array {
  const o = new Int32Array(doclens.length + 1);
  for (let i = 0; i < doclens.length; i++) o[i + 1] = o[i]! + doclens[i]!;
  return o;
}

export { packedBytes };
