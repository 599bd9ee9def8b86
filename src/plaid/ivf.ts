/**
 * The inverted file: for each centroid, the ascending ids of the documents with at least one
 * token assigned to it (NextPlaid's ivf.npy + ivf_lengths.npy), and its transpose, each document's
 * distinct codes. Both derive from the codes, so they are rebuilt in memory on load rather than
 * stored.
 */

/** Each document's distinct centroid ids (CSR: `offsets` [numDocs + 1] into `codes`). */
export interface DocCodes {
  offsets: Int32Array;
  codes: Int32Array;
}

export interface Ivf {
  /** [k + 1] start of each centroid's list in `docs`. */
  offsets: Int32Array;
  docs: Int32Array;
}

/**
 * The distinct codes of every document: the approximate score (max over a document's codes) needs
 * each code once, and documents repeat codes a lot (tokens of one concept share a centroid).
 */
export function distinctCodes(codes: Int32Array, docOffsets: Int32Array, numDocs: number, k: number): DocCodes {
  const last = new Int32Array(k).fill(-1);
  const offsets = new Int32Array(numDocs + 1);
  const out = new Int32Array(codes.length);
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
  const offsets = new Int32Array(k + 1);
  for (const c of docCodes.codes) offsets[c + 1]!++;
  for (let c = 0; c < k; c++) offsets[c + 1]! += offsets[c]!;
  const docs = new Int32Array(docCodes.codes.length);
  const fill = offsets.slice(0, k);
  for (let doc = 0; doc < numDocs; doc++) {
    for (let u = docCodes.offsets[doc]!; u < docCodes.offsets[doc + 1]!; u++) docs[fill[docCodes.codes[u]!]!++] = doc;
  }
  return { offsets, docs };
}
