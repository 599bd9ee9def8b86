/**
 * An index folder on disk. Vector data lives in immutable files (`centroids.<id>.npy`,
 * `chunk.<id>.{codes,residuals,doclens,raw}.npy`, `buffer.<id>.npy`), each written to a temp name, fsynced and
 * renamed; the manifest naming the files is a row of metadata.db, written in the same SQLite
 * transaction as the metadata change. That transaction is the commit point: after a kill at any
 * moment the folder loads as the state before or after it, and files no manifest names are swept.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { packedBytes, type Codec } from "./codec.js";
import { readNpy, writeNpy } from "./npy.js";
import { assemble, numDocs, numTokens, type PlaidSnapshot } from "./plaid.js";
import type { MetadataDb } from "./metadata.js";

export interface ChunkRef {
  id: string;
  documents: number;
  tokens: number;
  raw: boolean;
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
  return { codes: `${base}.codes.npy`, residuals: `${base}.residuals.npy`, doclens: `${base}.doclens.npy`, raw: `${base}.raw.npy` };
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
  const withRaw = m.chunks.length > 0 && m.chunks.every((c) => c.raw);
  const raw = withRaw ? new Float32Array(m.numEmbeddings * m.dim) : undefined;
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
    if (raw) raw.set(readNpy(f.raw).data as Float32Array, t * m.dim);
    t += c.tokens;
    d += c.documents;
  }
  if (t !== m.numEmbeddings || d !== m.numDocuments) throw new Error("chunks do not add up to the manifest's totals");
  return assemble({ codec, clusterThreshold: m.clusterThreshold, doclens, codes, residuals, raw });
}

/**
 * The chunk layout of `snap` given the previous manifest: chunks whose documents are unchanged are
 * kept (`keepDocs` = how many leading documents of the old layout survive unchanged, per chunk);
 * the rest become new chunks, written here. Returns the new manifest (not yet committed).
 */
export type Reuse =
  /** Everything is new (a build). */
  | "none"
  /** The first `unchanged` documents are as in the previous manifest; the rest are new. */
  | { unchanged: number }
  /** The previous documents minus these ids (ascending). */
  | { deleted: Int32Array };

export interface UpdateBuffer {
  /** Trailing documents appended without centroid expansion, and their original embeddings. */
  documents: number;
  raw: Float32Array;
}

export function writeSnapshot(dir: string, snap: PlaidSnapshot, prev: Manifest | undefined, reuse: Reuse, batchSize: number, buffer?: UpdateBuffer): Manifest {
  const { codec } = snap;
  const bytes = packedBytes(codec.dim, codec.nbits);
  const raw = snap.raw !== undefined;
  const chunks: ChunkRef[] = [];
  let reusedDocs = 0;

  if (prev && typeof reuse === "object" && "unchanged" in reuse) {
    // Old chunks wholly within the unchanged documents stay, but a small trailing one, which is
    // rewritten together with what follows (so small appends do not pile up files).
    let end = 0;
    const kept: ChunkRef[] = [];
    for (const c of prev.chunks) {
      if (end + c.documents > reuse.unchanged) break;
      kept.push(c);
      end += c.documents;
    }
    if (kept.length > 0 && kept[kept.length - 1]!.documents < SMALL_CHUNK) kept.pop();
    for (const c of kept) {
      chunks.push({ ...c, raw: raw && c.raw });
      reusedDocs += c.documents;
    }
  }
  const fresh: { from: number; to: number }[] = [];
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
        chunks.push({ id: "", documents: survivors, tokens: 0, raw });
        fresh.push({ from: newStart, to: newStart + survivors });
      }
      oldStart += c.documents;
      newStart += survivors;
    }
  } else {
    for (let from = reusedDocs; from < numDocs(snap); from += batchSize) {
      const to = Math.min(numDocs(snap), from + batchSize);
      chunks.push({ id: "", documents: to - from, tokens: 0, raw });
      fresh.push({ from, to });
    }
  }
  let f = 0;
  for (const c of chunks) {
    if (c.id !== "") continue;
    const { from, to } = fresh[f++]!;
    const t0 = snap.offsets[from]!;
    const t1 = snap.offsets[to]!;
    c.id = newId();
    c.tokens = t1 - t0;
    const files = chunkFiles(dir, c);
    writeNpy(files.codes, snap.codes.slice(t0, t1), [t1 - t0]);
    writeNpy(files.residuals, snap.residuals.slice(t0 * bytes, t1 * bytes), [t1 - t0, bytes]);
    writeNpy(files.doclens, snap.doclens.slice(from, to), [to - from]);
    if (raw) writeNpy(files.raw, snap.raw!.slice(t0 * codec.dim, t1 * codec.dim), [t1 - t0, codec.dim]);
  }
  let bufferRef: Manifest["buffer"];
  if (buffer && buffer.documents > 0) {
    bufferRef = { documents: buffer.documents, id: newId() };
    writeNpy(path.join(dir, `buffer.${bufferRef.id}.npy`), buffer.raw, [buffer.raw.length / codec.dim, codec.dim]);
  }
  let centroids = prev?.centroids;
  if (!prev || prev.numPartitions !== codec.k || reuse === "none") {
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
