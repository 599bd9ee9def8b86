/**
 * The inverted file: for each centroid, the ascending ids of the documents with at least one
 * token assigned to it (NextPlaid's ivf.npy + ivf_lengths.npy), and its transpose, each document's
 * distinct codes, per chunk of documents. Both derive from the codes, so they are rebuilt in memory
 * on load rather than stored.
 */

import { idArray, type Ids } from "./codec.js";

/** Each document's distinct centroid ids (CSR: `offsets` [numDocs + 1] into `codes`). */
export interface DocCodes {
  offsets: Int32Array;
  codes: Ids;
}

/** Centroid → documents, for the centroids a chunk's documents use (sparse: a chunk uses a fraction of K). */
export interface Ivf {
  /** Ascending ids of the centroids with a list. */
  centroids: Int32Array;
  /** [centroids + 1] start of each list in `docs`. */
  offsets: Int32Array;
  /** Local document ids (16 bits when the chunk has at most 65 536 documents). */
  docs: Ids;
}

/** The list of centroid `c` as a [from, to) range of `ivf.docs` (empty when no document uses it). */
export function ivfList(ivf: Ivf, c: number): [number, number] {
  let lo = 0;
  let hi = ivf.centroids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ivf.centroids[mid]! < c) lo = mid + 1;
    else hi = mid;
  }
  return lo < ivf.centroids.length && ivf.centroids[lo] === c ? [ivf.offsets[lo]!, ivf.offsets[lo + 1]!] : [0, 0];
}

/**
 * The distinct codes of every document: the approximate score (max over a document's codes) needs
 * each code once, and documents repeat codes a lot (tokens of one concept share a centroid).
 */
export function distinctCodes(codes: Ids, docOffsets: Int32Array, numDocs: number, k: number): DocCodes {
  const last = new Int32Array(k).fill(-1);
  const offsets = new Int32Array(numDocs + 1);
  const out = idArray(codes.length, k);
  let n = 0;
  for (let doc = 0; doc < numDocs; doc++) {
    for (let t = docOffsets[doc]!; t < docOffsets[doc + 1]!; t++) {
      const c = codes[t]!;
      if (last[c] !== doc) {
        last[c] = doc;
        out[n++] = c;
      }
    }
    offsets[doc + 1] = n;
  }
  return { offsets, codes: out.slice(0, n) };
}

/** Centroid → documents, by transposing the documents' distinct codes (lists come out ascending). */
export function buildIvf(docCodes: DocCodes, k: number): Ivf {
  const numDocs = docCodes.offsets.length - 1;
  const counts = new Int32Array(k);
  for (const c of docCodes.codes) counts[c]!++;
  let used = 0;
  for (let c = 0; c < k; c++) if (counts[c]! > 0) used++;
  const centroids = new Int32Array(used);
  const offsets = new Int32Array(used + 1);
  const slot = new Int32Array(k); // dense scratch, dropped after the build
  let i = 0;
  for (let c = 0; c < k; c++) {
    if (counts[c] === 0) continue;
    centroids[i] = c;
    offsets[i + 1] = offsets[i]! + counts[c]!;
    slot[c] = offsets[i]!;
    i++;
  }
  const docs = idArray(docCodes.codes.length, numDocs);
  for (let doc = 0; doc < numDocs; doc++) {
    for (let u = docCodes.offsets[doc]!; u < docCodes.offsets[doc + 1]!; u++) docs[slot[docCodes.codes[u]!]!++] = doc;
  }
  return { centroids, offsets, docs };
}
