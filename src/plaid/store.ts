/**
 * An index folder on disk. Vector data lives in immutable files (`centroids.<id>.npy`,
 * `chunk.<id>.{codes,residuals,doclens,raw}.npy`, `buffer.<id>.npy`), each written to a temp name, fsynced and
 * renamed. `raw` holds the documents' original embeddings as float16 (2·dim bytes per token, read
 * back only to retrain the codec): a chunk re-encoded with the same documents keeps pointing at its
 * earlier raw file (`rawId`), so a retrain rewrites 4-bit residuals, not the originals. The the manifest naming the files is a row of metadata.db, written in the same SQLite
 * transaction as the metadata change. That transaction is the commit point: after a kill at any
 * moment the folder loads as the state before or after it, and files no manifest names are swept.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { packedBytes, type Codec } from "./codec.js";
import { fromHalf, toHalf } from "./half.js";
import { NpyRows, readNpy, writeNpy } from "./npy.js";
import { assemble, numDocs, numTokens, offsetsOf, type DocSource, type PlaidSnapshot } from "./plaid.js";
import type { MetadataDb } from "./metadata.js";

export interface ChunkRef {
  id: string;
  documents: number;
  tokens: number;
  /** The chunk's original embeddings are on disk (float16; float32 in indices written before retraining existed). */
  raw: boolean;
  /** The chunk whose raw file holds these documents' originals, when not this one (kept through a retrain). */
  rawId?: string;
}

export interface Manifest {
  format: 1;
  dim: number;
  nbits: 2 | 4;
  numPartitions: number;
  centroids: string;
  cutoffs: number[];
  weights: number[];
  avgResidual: number[];
  clusterThreshold: number;
  chunks: ChunkRef[];
  numDocuments: number;
  numEmbeddings: number;
  /** Trailing documents indexed without centroid expansion yet (NextPlaid's update buffer). */
  buffer?: { documents: number; id: string };
  /** Embeddings in the index when its codec (centroids, buckets) was last trained; absent: numEmbeddings. */
  trainedEmbeddings?: number;
}

/** Documents per chunk file; a trailing chunk smaller than this is rewritten together with appended documents. */
const SMALL_CHUNK = 2000;
const newId = () => crypto.randomBytes(6).toString("hex");
const DATA_FILE = /^(chunk|centroids|buffer)\.[0-9a-f]+\.|^\..*\.tmp$/;

export function readManifest(db: MetadataDb): Manifest | undefined {
  const text = db.getState("manifest");
  return text ? (JSON.parse(text) as Manifest) : undefined;
}

function chunkFiles(dir: string, c: ChunkRef) {
  const base = path.join(dir, `chunk.${c.id}`);
  return { codes: `${base}.codes.npy`, residuals: `${base}.residuals.npy`, doclens: `${base}.doclens.npy`, raw: path.join(dir, `chunk.${c.rawId ?? c.id}.raw.npy`) };
}

/** Every chunk of `m` has its original embeddings on disk (the index can be retrained). */
export const hasRaw = (m: Manifest | undefined) => m !== undefined && m.chunks.length > 0 && m.chunks.every((c) => c.raw);

/**
 * The original embeddings of an index's documents, read from its raw files by position (one
 * document range at a time, never the whole corpus). close() releases the files.
 */
export function rawDocs(dir: string, m: Manifest): DocSource & { close(): void } {
  const doclens = new Int32Array(m.numDocuments);
  const firstDoc = new Int32Array(m.chunks.length + 1);
  let d = 0;
  m.chunks.forEach((c, i) => {
    const dl = readNpy(chunkFiles(dir, c).doclens).data as Int32Array;
    if (dl.length !== c.documents) throw new Error(`chunk ${c.id} does not match the manifest`);
    doclens.set(dl, d);
    d += c.documents;
    firstDoc[i + 1] = d;
  });
  const offsets = offsetsOf(doclens);
  const files = new Map<number, NpyRows>();
  const file = (i: number): NpyRows => {
    let f = files.get(i);
    if (!f) {
      const c = m.chunks[i]!;
      f = new NpyRows(chunkFiles(dir, c).raw);
      if (f.rows !== c.tokens || f.width !== m.dim || (f.descr !== "<f2" && f.descr !== "<f4")) {
        f.close();
        throw new Error(`raw embeddings of chunk ${c.id} do not match the manifest`);
      }
      files.set(i, f);
    }
    return f;
  };
  const read = (from: number, to: number): Float32Array => {
    const out = new Float32Array((offsets[to]! - offsets[from]!) * m.dim);
    let at = 0;
    let i = 0;
    while (firstDoc[i + 1]! <= from) i++;
    for (let doc = from; doc < to; i++) {
      const end = Math.min(to, firstDoc[i + 1]!);
      const base = offsets[firstDoc[i]!]!;
      const rows = file(i).read(offsets[doc]! - base, offsets[end]! - base);
      const values = rows instanceof Uint16Array ? fromHalf(rows) : (rows as Float32Array);
      out.set(values, at);
      at += values.length;
      doc = end;
    }
    return out;
  };
  return {
    dim: m.dim,
    doclens,
    offsets,
    read,
    close: () => {
      for (const f of files.values()) f.close();
      files.clear();
    },
  };
}

export function loadSnapshot(dir: string, m: Manifest): PlaidSnapshot {
  const centroids = readNpy(path.join(dir, `centroids.${m.centroids}.npy`)).data as Float32Array;
  const codec: Codec = {
    dim: m.dim,
    nbits: m.nbits,
    k: m.numPartitions,
    centroids,
    cutoffs: Float32Array.from(m.cutoffs),
    weights: Float32Array.from(m.weights),
    avgResidual: Float32Array.from(m.avgResidual),
  };
  const bytes = packedBytes(m.dim, m.nbits);
  const codes = new Int32Array(m.numEmbeddings);
  const residuals = new Uint8Array(m.numEmbeddings * bytes);
  const doclens = new Int32Array(m.numDocuments);
  let t = 0;
  let d = 0;
  for (const c of m.chunks) {
    const f = chunkFiles(dir, c);
    const cc = readNpy(f.codes).data as Int32Array;
    const rr = readNpy(f.residuals).data as Uint8Array;
    const dl = readNpy(f.doclens).data as Int32Array;
    if (cc.length !== c.tokens || rr.length !== c.tokens * bytes || dl.length !== c.documents) throw new Error(`chunk ${c.id} does not match the manifest`);
    codes.set(cc, t);
    residuals.set(rr, t * bytes);
    doclens.set(dl, d);
    t += c.tokens;
    d += c.documents;
  }
  if (t !== m.numEmbeddings || d !== m.numDocuments) throw new Error("chunks do not add up to the manifest's totals");
  return assemble({ codec, clusterThreshold: m.clusterThreshold, doclens, codes, residuals });
}

export type Reuse =
  /** Everything is new (a build). */
  | "none"
  /** The first `unchanged` documents are as in the previous manifest; the rest are new. */
  | { unchanged: number }
  /** The first `recoded` documents are the previous ones, encoded anew (a retrain); the rest are new. */
  | { recoded: number }
  /** The previous documents minus these ids (ascending). */
  | { deleted: Int32Array };

export interface UpdateBuffer {
  /** Trailing documents appended without centroid expansion, and their original embeddings. */
  documents: number;
  raw: Float32Array;
}

export interface WriteOptions {
  prev: Manifest | undefined;
  reuse: Reuse;
  /** Documents per chunk file. */
  batchSize: number;
  /** The original embeddings of the snapshot's documents, for the chunks written now; absent: no raw files (an index from before retraining). */
  raw?: DocSource;
  buffer?: UpdateBuffer;
  /** Embeddings when the codec was trained (a build or retrain: all of them; otherwise as before). */
  trainedEmbeddings: number;
}

/**
 * Writes the chunks of `snap` that the previous manifest does not already hold and returns the new
 * manifest (not yet committed): chunks whose documents and codes are unchanged are kept, a retrain
 * keeps each chunk's raw file, the rest become new files.
 */
export function writeSnapshot(dir: string, snap: PlaidSnapshot, o: WriteOptions): Manifest {
  const { prev, reuse } = o;
  const { codec } = snap;
  const bytes = packedBytes(codec.dim, codec.nbits);
  const raw = o.raw !== undefined;
  /** Chunks to write: documents [from, to) of `snap`; `keep` = an old chunk whose raw file stays. */
  const plan: { ref: ChunkRef; from: number; to: number; rawFrom?: ChunkRef }[] = [];
  const chunks: ChunkRef[] = [];
  let reusedDocs = 0;

  if (prev && typeof reuse === "object" && !("deleted" in reuse)) {
    // Old chunks wholly within the leading documents stay (re-encoded after a retrain), but a
    // small trailing one, which is rewritten together with what follows (so small appends do not
    // pile up files).
    const lead = "unchanged" in reuse ? reuse.unchanged : reuse.recoded;
    let end = 0;
    const kept: ChunkRef[] = [];
    for (const c of prev.chunks) {
      if (end + c.documents > lead) break;
      kept.push(c);
      end += c.documents;
    }
    if (kept.length > 0 && kept[kept.length - 1]!.documents < SMALL_CHUNK) kept.pop();
    for (const c of kept) {
      if ("unchanged" in reuse) chunks.push({ ...c, raw: raw && c.raw });
      else {
        const ref: ChunkRef = { id: "", documents: c.documents, tokens: 0, raw: raw && c.raw };
        chunks.push(ref);
        plan.push({ ref, from: reusedDocs, to: reusedDocs + c.documents, rawFrom: c.raw && raw ? c : undefined });
      }
      reusedDocs += c.documents;
    }
  }
  if (prev && typeof reuse === "object" && "deleted" in reuse) {
    // Deletes: chunks without a deleted document stay; the others are rewritten.
    const del = reuse.deleted;
    let oldStart = 0;
    let newStart = 0;
    let di = 0;
    for (const c of prev.chunks) {
      let removed = 0;
      while (di < del.length && del[di]! < oldStart + c.documents) {
        if (del[di]! >= oldStart) removed++;
        di++;
      }
      const survivors = c.documents - removed;
      if (removed === 0) chunks.push({ ...c, raw: raw && c.raw });
      else if (survivors > 0) {
        const ref: ChunkRef = { id: "", documents: survivors, tokens: 0, raw };
        chunks.push(ref);
        plan.push({ ref, from: newStart, to: newStart + survivors });
      }
      oldStart += c.documents;
      newStart += survivors;
    }
  } else {
    for (let from = reusedDocs; from < numDocs(snap); from += o.batchSize) {
      const to = Math.min(numDocs(snap), from + o.batchSize);
      const ref: ChunkRef = { id: "", documents: to - from, tokens: 0, raw };
      chunks.push(ref);
      plan.push({ ref, from, to });
    }
  }
  for (const { ref, from, to, rawFrom } of plan) {
    const t0 = snap.offsets[from]!;
    const t1 = snap.offsets[to]!;
    ref.id = newId();
    ref.tokens = t1 - t0;
    if (rawFrom) ref.rawId = rawFrom.rawId ?? rawFrom.id;
    const files = chunkFiles(dir, ref);
    writeNpy(files.codes, snap.codes.slice(t0, t1), [t1 - t0]);
    writeNpy(files.residuals, snap.residuals.slice(t0 * bytes, t1 * bytes), [t1 - t0, bytes]);
    writeNpy(files.doclens, snap.doclens.slice(from, to), [to - from]);
    if (raw && !rawFrom) {
      // In slices, so a 50 000-document chunk never holds its float32 originals at once.
      const half = new Uint16Array((t1 - t0) * codec.dim);
      for (let a = from; a < to; ) {
        let b = a + 1;
        while (b < to && snap.offsets[b + 1]! - snap.offsets[a]! <= 65_536) b++;
        toHalf(o.raw!.read(a, b), half.subarray((snap.offsets[a]! - t0) * codec.dim, (snap.offsets[b]! - t0) * codec.dim));
        a = b;
      }
      writeNpy(files.raw, half, [t1 - t0, codec.dim]);
    }
  }
  let bufferRef: Manifest["buffer"];
  if (o.buffer && o.buffer.documents > 0) {
    bufferRef = { documents: o.buffer.documents, id: newId() };
    writeNpy(path.join(dir, `buffer.${bufferRef.id}.npy`), o.buffer.raw, [o.buffer.raw.length / codec.dim, codec.dim]);
  }
  let centroids = prev?.centroids;
  if (!prev || prev.numPartitions !== codec.k || reuse === "none" || "recoded" in reuse) {
    centroids = newId();
    writeNpy(path.join(dir, `centroids.${centroids}.npy`), codec.centroids, [codec.k, codec.dim]);
  }
  return {
    format: 1,
    dim: codec.dim,
    nbits: codec.nbits,
    numPartitions: codec.k,
    centroids: centroids!,
    cutoffs: Array.from(codec.cutoffs),
    weights: Array.from(codec.weights),
    avgResidual: Array.from(codec.avgResidual),
    clusterThreshold: snap.clusterThreshold,
    chunks,
    numDocuments: numDocs(snap),
    numEmbeddings: numTokens(snap),
    buffer: bufferRef,
    trainedEmbeddings: o.trainedEmbeddings,
  };
}

/** The original embeddings of the buffered documents (see UpdateBuffer). */
export function readBuffer(dir: string, m: Manifest): UpdateBuffer | undefined {
  if (!m.buffer) return undefined;
  return { documents: m.buffer.documents, raw: readNpy(path.join(dir, `buffer.${m.buffer.id}.npy`)).data as Float32Array };
}

/** Removes data files that `m` does not name (earlier states, interrupted writes). */
export function sweep(dir: string, m: Manifest | undefined): void {
  const keep = new Set<string>();
  if (m) {
    keep.add(`centroids.${m.centroids}.npy`);
    if (m.buffer) keep.add(`buffer.${m.buffer.id}.npy`);
    for (const c of m.chunks) {
      const f = chunkFiles(dir, c);
      for (const [kind, file] of Object.entries(f)) if (kind !== "raw" || c.raw) keep.add(path.basename(file));
    }
  }
  for (const name of fs.readdirSync(dir)) {
    if (DATA_FILE.test(name) && !keep.has(name)) fs.rmSync(path.join(dir, name), { force: true });
  }
}
