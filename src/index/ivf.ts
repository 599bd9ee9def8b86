/**
 * The inverted file: for each centroid, the ascending ids of the documents with at least one
 * token assigned to it (NextPlaid's ivf.npy + ivf_lengths.npy). Derived from the codes, so it is
 * rebuilt in memory on load rather than stored.
 */
export interface Ivf {
  /** [k + 1] start of each centroid's list in `docs`. */
  offsets: Int32Array;
  docs: Int32Array;
}

export function buildIvf(codes: Int32Array, docOffsets: Int32Array, numDocs: number, k: number): Ivf {
  const last = new Int32Array(k).fill(-1);
  const counts = new Int32Array(k + 1);
  for (let doc = 0; doc < numDocs; doc++) {
    for (let t = docOffsets[doc]!; t < docOffsets[doc + 1]!; t++) {
      const c = codes[t]!;
      if (last[c] !== doc) {
        last[c] = doc;
        counts[c + 1]!++;
      }
    }
  }
  for (let c = 0; c < k; c++) counts[c + 1]! += counts[c]!;
  const docs = new Int32Array(counts[k]!);
  const fill = counts.slice(0, k);
  last.fill(-1);
  for (let doc = 0; doc < numDocs; doc++) {
    for (let t = docOffsets[doc]!; t < docOffsets[doc + 1]!; t++) {
      const c = codes[t]!;
      if (last[c] !== doc) {
        last[c] = doc;
        docs[fill[c]!++] = doc;
      }
    }
  }
  return { offsets: counts, docs };
}

/** Each document's distinct centroid ids (CSR: `offsets` [numDocs + 1] into `codes`). */
export interface DocCodes {
  offsets: Int32Array;
  codes: Int32Array;
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
