/**
 * An index folder on disk. Vector data lives in immutable files (`centroids.<id>.npy`,
 * `chunk.<id>.{codes,residuals,doclens,raw}.npy`, `buffer.<id>.npy`), each written to a temp name
 * (in slices: a chunk is never whole in memory), fsynced and renamed. A loaded index holds each
 * chunk's codes in memory and reads its residuals by position (snapshot.ts). `raw` holds the
 * documents' original embeddings as float16 (2·dim bytes per token, read back only to retrain the
 * codec): a chunk re-encoded with the same documents keeps pointing at its earlier raw file
 * (`rawId`), so a retrain rewrites 4-bit residuals, not the originals. The manifest naming the
 * files is a row of metadata.db, written in the same SQLite transaction as the metadata change.
 * That transaction is the commit point: after a kill at any moment the folder loads as the state
 * before or after it, and files no manifest names are swept.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { packedBytes, type Codec, type Ids } from "./codec.js";
import { f16ToF32, f32ToF16 } from "../checkpoint/dtype.js";
import type { Kernels } from "./kernels.js";
import { NpyRows, NpyWriter, readNpy, writeNpyAsync } from "./npy.js";
import { encodeTokens, slices, yieldToEvents, type DocSource, type IndexSize } from "./plaid.js";
import { makeSegment, memoryResiduals, offsetsOf, snapshotOf, type PlaidSnapshot, type ResidualReader, type Segment } from "./snapshot.js";
import type { MetadataDb } from "./metadata.js";
import { inProgress } from "../util/cleanup.js";

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
  /** Documents in the index then; absent: estimated from trainedEmbeddings (see trainedAt). */
  trainedDocuments?: number;
  /** K of the codec as trained (numPartitions also counts the outlier centroids added since). */
  trainedPartitions?: number;
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
      const values = rows instanceof Uint16Array ? f16ToF32(rows) : (rows as Float32Array);
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

/** Opens chunk `c`'s residuals for positional reads (or reads them into memory when `resident`). */
function residualsOf(file: string, c: ChunkRef, bytes: number, resident: boolean): ResidualReader {
  const rows = new NpyRows(file);
  if (rows.rows !== c.tokens || rows.width !== bytes || rows.descr !== "|u1") {
    rows.close();
    throw new Error(`chunk ${c.id} does not match the manifest`);
  }
  if (resident) {
    const all = rows.read(0, c.tokens) as Uint8Array;
    rows.close();
    return memoryResiduals(all, bytes);
  }
  return {
    read: (from, to, into) => (into && into.length >= (to - from) * bytes ? rows.readBytesInto(from, to, into) : (rows.read(from, to) as Uint8Array)),
    resident: 0,
    close: () => rows.close(),
  };
}

/** Chunk `c` as a search segment: lengths and codes in memory, residuals on disk (see snapshot.ts). */
export function loadSegment(dir: string, m: Manifest, c: ChunkRef, resident = false): Segment {
  const f = chunkFiles(dir, c);
  const codes = readCodes(f.codes, c, m.numPartitions);
  const doclens = readNpy(f.doclens).data as Int32Array;
  if (doclens.length !== c.documents) throw new Error(`chunk ${c.id} does not match the manifest`);
  return makeSegment(c.id, doclens, codes, residualsOf(f.residuals, c, packedBytes(m.dim, m.nbits), resident));
}

/** Rows of codes read per slice when narrowing them to 16 bits. */
const CODE_ROWS = 1 << 16;

/**
 * Chunk `c`'s codes (int32 on disk): straight into 16 bits, a slice at a time, when the codec's
 * K allows (no whole int32 copy in memory on the way), else as they are.
 */
function readCodes(file: string, c: ChunkRef, k: number): Ids {
  if (k > 0x10000) {
    const codes = readNpy(file).data as Int32Array;
    if (codes.length !== c.tokens) throw new Error(`chunk ${c.id} does not match the manifest`);
    return codes;
  }
  const rows = new NpyRows(file);
  try {
    if (rows.rows !== c.tokens || rows.width !== 1 || rows.descr !== "<i4") throw new Error(`chunk ${c.id} does not match the manifest`);
    const out = new Uint16Array(c.tokens);
    for (let from = 0; from < c.tokens; from += CODE_ROWS) {
      const part = rows.read(from, Math.min(c.tokens, from + CODE_ROWS)) as Int32Array;
      for (let i = 0; i < part.length; i++) if (part[i]! < 0 || part[i]! >= k) throw new Error(`chunk ${c.id} holds centroid ${part[i]}, beyond the codec's ${k}`);
      out.set(part, from);
    }
    return out;
  } finally {
    rows.close();
  }
}

export function codecOf(dir: string, m: Manifest): Codec {
  return {
    dim: m.dim,
    nbits: m.nbits,
    k: m.numPartitions,
    centroids: readNpy(path.join(dir, `centroids.${m.centroids}.npy`)).data as Float32Array,
    cutoffs: Float32Array.from(m.cutoffs),
    weights: Float32Array.from(m.weights),
    avgResidual: Float32Array.from(m.avgResidual),
  };
}

/**
 * The snapshot `m` describes. Segments of `previous` whose chunk `m` still names are reused (their
 * residual files stay open); the others are loaded. `codec`: the manifest's, when the caller has it.
 */
export function loadSnapshot(dir: string, m: Manifest, previous?: PlaidSnapshot, options: { resident?: boolean; codec?: Codec; centroidsT?: Float32Array } = {}): PlaidSnapshot {
  const known = new Map(previous?.segments.map((s) => [s.id, s]));
  const opened: Segment[] = [];
  try {
    for (const c of m.chunks) if (!known.has(c.id)) opened.push(loadSegment(dir, m, c, options.resident));
    return assembleSnapshot(dir, m, known, opened, options);
  } catch (e) {
    for (const s of opened) s.residuals.close();
    throw e;
  }
}

/** loadSnapshot for a writer on a thread that also answers searches: other work runs between the chunks it loads. */
export async function loadSnapshotAsync(dir: string, m: Manifest, previous: PlaidSnapshot | undefined, options: { resident?: boolean; codec?: Codec; centroidsT?: Float32Array } = {}): Promise<PlaidSnapshot> {
  const known = new Map(previous?.segments.map((s) => [s.id, s]));
  const opened: Segment[] = [];
  try {
    for (const c of m.chunks) {
      if (known.has(c.id)) continue;
      opened.push(loadSegment(dir, m, c, options.resident));
      await yieldToEvents();
    }
    return assembleSnapshot(dir, m, known, opened, options);
  } catch (e) {
    for (const s of opened) s.residuals.close();
    throw e;
  }
}

function assembleSnapshot(dir: string, m: Manifest, known: Map<string, Segment>, opened: Segment[], given: { codec?: Codec; centroidsT?: Float32Array }): PlaidSnapshot {
  const fresh = new Map(opened.map((s) => [s.id, s]));
  const codec = given.codec ?? codecOf(dir, m);
  const snap = snapshotOf(codec, m.clusterThreshold, m.chunks.map((c) => known.get(c.id) ?? fresh.get(c.id)!), given.codec ? given.centroidsT : undefined);
  if (snap.numTokens !== m.numEmbeddings || snap.numDocs !== m.numDocuments) throw new Error("chunks do not add up to the manifest's totals");
  return snap;
}

/** The segments of `before` that `after` no longer holds (their files can be closed once no search uses `before`). */
export function retiredSegments(before: PlaidSnapshot | undefined, after: PlaidSnapshot | undefined): Segment[] {
  if (!before) return [];
  const kept = new Set(after?.segments ?? []);
  return before.segments.filter((s) => !kept.has(s));
}

/**
 * A slice of tokens to write into a chunk: whole documents, their codes and packed residuals, and
 * their originals (float32 to be stored as float16, or float16 bits as read back from a raw file).
 */
export interface TokenSlice {
  doclens: Int32Array;
  codes: Int32Array;
  packed: Uint8Array;
  raw?: Float32Array | Uint16Array;
}

/** Documents [from, to) of `docs`, encoded with `codec` a slice at a time (originals included when `withRaw`). */
export async function* encodedSlices(kernels: Kernels, codec: Codec, centroidsT: Float32Array, docs: DocSource, from: number, to: number, withRaw: boolean): AsyncGenerator<TokenSlice> {
  for (const [a, b] of slices(docs, from, to)) {
    const data = docs.read(a, b);
    const e = await encodeTokens(kernels, codec, centroidsT, data, docs.offsets[b]! - docs.offsets[a]!);
    yield { doclens: docs.doclens.subarray(a, b), codes: e.codes, packed: e.packed, raw: withRaw ? data : undefined };
  }
}

/** Tokens already encoded in memory (an update's documents), sliced by document: documents [from, to). */
export function* memorySlices(doclens: Int32Array, codes: Int32Array, packed: Uint8Array, raw: Float32Array | undefined, dim: number, from: number, to: number): Generator<TokenSlice> {
  const offsets = offsetsOf(doclens);
  const bytes = packed.length / Math.max(1, codes.length);
  for (const [a, b] of slices({ offsets }, from, to)) {
    const t0 = offsets[a]!;
    const t1 = offsets[b]!;
    yield { doclens: doclens.subarray(a, b), codes: codes.subarray(t0, t1), packed: packed.subarray(t0 * bytes, t1 * bytes), raw: raw?.subarray(t0 * dim, t1 * dim) };
  }
}

/** Documents [from, to) of stored chunk `c` as written (codes, residuals, originals when `withRaw`), a slice at a time. */
export function* storedSlices(dir: string, dim: number, c: ChunkRef, from: number, to: number, withRaw: boolean): Generator<TokenSlice> {
  const f = chunkFiles(dir, c);
  const doclens = readNpy(f.doclens).data as Int32Array;
  const offsets = offsetsOf(doclens);
  const codes = new NpyRows(f.codes);
  const residuals = new NpyRows(f.residuals);
  const raw = withRaw ? new NpyRows(f.raw) : undefined;
  try {
    if (codes.rows !== c.tokens || residuals.rows !== c.tokens || (raw && (raw.rows !== c.tokens || raw.width !== dim))) throw new Error(`chunk ${c.id} does not match the manifest`);
    for (const [a, b] of slices({ offsets }, from, to)) {
      const t0 = offsets[a]!;
      const t1 = offsets[b]!;
      yield { doclens: doclens.slice(a, b), codes: codes.read(t0, t1) as Int32Array, packed: residuals.read(t0, t1) as Uint8Array, raw: raw?.read(t0, t1) as Float32Array | Uint16Array | undefined };
    }
  } finally {
    codes.close();
    residuals.close();
    raw?.close();
  }
}

/**
 * Writes one chunk from its slices (each file streamed: a chunk is never whole in memory). The
 * originals go to its own raw file, unless `rawId` names the chunk whose raw file already holds
 * them (a retrain re-encodes documents, it does not change them) or `withRaw` is false (an index
 * from before retraining existed). Nothing is named by a manifest yet: a failure leaves only files
 * that sweep() removes.
 */
export async function writeChunk(dir: string, dim: number, nbits: number, parts: Iterable<TokenSlice> | AsyncIterable<TokenSlice>, documents: number, tokens: number, raw: { withRaw: boolean; rawId?: string; reserve?: (id: string) => void }): Promise<ChunkRef> {
  const ref: ChunkRef = { id: newId(), documents, tokens, raw: raw.withRaw };
  raw.reserve?.(ref.id);
  if (raw.rawId) ref.rawId = raw.rawId;
  const f = chunkFiles(dir, ref);
  const writers: NpyWriter[] = [];
  try {
    const codes = new NpyWriter(f.codes, "Int32Array", [tokens]);
    writers.push(codes);
    const residuals = new NpyWriter(f.residuals, "Uint8Array", [tokens, packedBytes(dim, nbits)]);
    writers.push(residuals);
    const doclens = new NpyWriter(f.doclens, "Int32Array", [documents]);
    writers.push(doclens);
    const rawOut = raw.withRaw && !raw.rawId ? new NpyWriter(f.raw, "Uint16Array", [tokens, dim]) : undefined;
    if (rawOut) writers.push(rawOut);
    for await (const part of parts) {
      await yieldToEvents(); // slices read back from files come synchronously: let searches in between
      await codes.write(part.codes);
      await residuals.write(part.packed);
      await doclens.write(part.doclens);
      if (rawOut) {
        if (!part.raw) throw new Error("the originals of a chunk's documents are missing");
        await rawOut.write(part.raw instanceof Uint16Array ? part.raw : f32ToF16(part.raw));
      }
    }
    for (const w of writers) await w.commit();
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
  return ref;
}

/** Chains slice sources. */
export async function* chain(...sources: (Iterable<TokenSlice> | AsyncIterable<TokenSlice>)[]): AsyncGenerator<TokenSlice> {
  for (const s of sources) yield* s;
}

/** Writes `codec`'s centroids under a new id (returned). */
export async function writeCentroids(dir: string, codec: Codec): Promise<string> {
  const id = newId();
  await writeNpyAsync(path.join(dir, `centroids.${id}.npy`), codec.centroids, [codec.k, codec.dim]);
  return id;
}

/** The manifest of `chunks` encoded with `codec` (its centroids written under `centroidsId`; the update buffer's originals written now). */
export async function manifestOf(codec: Codec, clusterThreshold: number, centroidsId: string, chunks: ChunkRef[], trained: IndexSize, buffer?: UpdateBuffer & { id?: string }, dir?: string): Promise<Manifest> {
  let bufferRef: Manifest["buffer"];
  if (buffer && buffer.documents > 0) {
    bufferRef = { documents: buffer.documents, id: newId() };
    await writeNpyAsync(path.join(dir!, `buffer.${bufferRef.id}.npy`), buffer.raw, [buffer.raw.length / codec.dim, codec.dim]);
  }
  return {
    format: 1,
    dim: codec.dim,
    nbits: codec.nbits,
    numPartitions: codec.k,
    centroids: centroidsId,
    cutoffs: Array.from(codec.cutoffs),
    weights: Array.from(codec.weights),
    avgResidual: Array.from(codec.avgResidual),
    clusterThreshold,
    chunks,
    numDocuments: chunks.reduce((a, c) => a + c.documents, 0),
    numEmbeddings: chunks.reduce((a, c) => a + c.tokens, 0),
    buffer: bufferRef,
    trainedEmbeddings: trained.embeddings,
    trainedDocuments: trained.documents,
    trainedPartitions: trained.partitions,
  };
}


/** The size `m`'s codec was trained at (older manifests: documents estimated at today's average length). */
export function trainedAt(m: Manifest): IndexSize {
  const embeddings = m.trainedEmbeddings ?? m.numEmbeddings;
  const documents = m.trainedDocuments ?? (m.numEmbeddings > 0 ? Math.max(1, Math.round((m.numDocuments * embeddings) / m.numEmbeddings)) : m.numDocuments);
  return { documents, embeddings, partitions: m.trainedPartitions };
}

/** Documents [from, to) of chunk `chunk`: a new chunk begins with copies of such runs (carried by an append, survivors of a delete). */
export interface ChunkRun {
  chunk: ChunkRef;
  from: number;
  to: number;
}

/** Told, as a write makes chunk `c`, the runs of older chunks its first documents copy, in order. */
export type Lineage = (c: ChunkRef, runs: ChunkRun[]) => void;

/** New documents for a write: their lengths, and their slices (encoded) for documents [from, to). */
export interface FreshDocs {
  doclens: Int32Array;
  slices(from: number, to: number): Iterable<TokenSlice> | AsyncIterable<TokenSlice>;
}

/** Documents → chunks of at most `batchSize` documents. */
async function writeFresh(dir: string, m: { dim: number; nbits: number }, fresh: FreshDocs, batchSize: number, withRaw: boolean, lead?: { slices: Iterable<TokenSlice>; documents: number; tokens: number; runs: ChunkRun[] }, lineage?: Lineage): Promise<ChunkRef[]> {
  const out: ChunkRef[] = [];
  const offsets = offsetsOf(fresh.doclens);
  const n = fresh.doclens.length;
  let from = 0;
  // The first chunk may start with documents carried over from a rewritten chunk.
  const leadDocs = lead?.documents ?? 0;
  do {
    const room = Math.max(1, batchSize - (out.length === 0 ? leadDocs : 0));
    const to = Math.min(n, from + room);
    const carried = out.length === 0 && lead ? lead : undefined;
    const documents = to - from + (carried?.documents ?? 0);
    if (documents === 0) break;
    const tokens = offsets[to]! - offsets[from]! + (carried?.tokens ?? 0);
    const c = await writeChunk(dir, m.dim, m.nbits, chain(carried?.slices ?? [], fresh.slices(from, to)), documents, tokens, { withRaw });
    if (carried) lineage?.(c, carried.runs);
    out.push(c);
    from = to;
  } while (from < n);
  return out;
}

/** Writes documents as new chunks (a build). */
export function writeDocs(dir: string, m: { dim: number; nbits: number }, fresh: FreshDocs, batchSize: number): Promise<ChunkRef[]> {
  return writeFresh(dir, m, fresh, batchSize, true);
}

/**
 * The chunks after keeping the first `keep` documents of `m` and appending `fresh` ones: chunks
 * wholly within the kept documents stay, but a small trailing one (fewer than SMALL_CHUNK
 * documents), which is rewritten together with what follows so that small updates do not pile up
 * files; a chunk cut by `keep` keeps its first part, rewritten too.
 */
export async function appendChunks(dir: string, m: Manifest, keep: number, fresh: FreshDocs, batchSize: number, withRaw: boolean, lineage?: Lineage): Promise<ChunkRef[]> {
  const kept: ChunkRef[] = [];
  let end = 0;
  let i = 0;
  for (; i < m.chunks.length && end + m.chunks[i]!.documents <= keep; i++) {
    kept.push(m.chunks[i]!);
    end += m.chunks[i]!.documents;
  }
  const carry: { chunk: ChunkRef; to: number }[] = [];
  if (kept.length > 0 && kept[kept.length - 1]!.documents < Math.min(SMALL_CHUNK, batchSize) && fresh.doclens.length > 0) {
    const last = kept.pop()!;
    end -= last.documents;
    carry.push({ chunk: last, to: last.documents });
  }
  const cut = m.chunks[i];
  if (end + carry.reduce((a, c) => a + c.to, 0) < keep && cut) carry.push({ chunk: cut, to: keep - end - carry.reduce((a, c) => a + c.to, 0) });
  if (carry.length === 0 && fresh.doclens.length === 0) return kept;
  // Carried documents go first in the next chunk, read back from their files as it is written.
  let documents = 0;
  let tokens = 0;
  for (const c of carry) {
    const doclens = readNpy(chunkFiles(dir, c.chunk).doclens).data as Int32Array;
    documents += c.to;
    for (let d = 0; d < c.to; d++) tokens += doclens[d]!;
  }
  const slices = (function* () {
    for (const c of carry) yield* storedSlices(dir, m.dim, c.chunk, 0, c.to, withRaw);
  })();
  const runs = carry.map((c) => ({ chunk: c.chunk, from: 0, to: c.to }));
  return [...kept, ...(await writeFresh(dir, m, fresh, batchSize, withRaw, carry.length > 0 ? { slices, documents, tokens, runs } : undefined, lineage))];
}

/** The chunks after deleting documents `ids` (ascending): chunks without one stay, the others are rewritten with their survivors. */
export async function deleteFromChunks(dir: string, m: Manifest, ids: Int32Array, withRaw: boolean, lineage?: Lineage): Promise<ChunkRef[]> {
  const out: ChunkRef[] = [];
  let start = 0;
  let di = 0;
  for (const c of m.chunks) {
    const gone: number[] = [];
    while (di < ids.length && ids[di]! < start + c.documents) {
      if (ids[di]! >= start) gone.push(ids[di]! - start);
      di++;
    }
    if (gone.length === 0) out.push(c);
    else if (gone.length < c.documents) {
      const doclens = readNpy(chunkFiles(dir, c).doclens).data as Int32Array;
      const runs: [number, number][] = [];
      let a = 0;
      for (const g of [...gone, c.documents]) {
        if (g > a) runs.push([a, g]);
        a = g + 1;
      }
      let documents = 0;
      let tokens = 0;
      for (const [x, y] of runs) {
        documents += y - x;
        for (let d = x; d < y; d++) tokens += doclens[d]!;
      }
      const parts = (function* () {
        for (const [x, y] of runs) yield* storedSlices(dir, m.dim, c, x, y, withRaw);
      })();
      const rewritten = await writeChunk(dir, m.dim, m.nbits, parts, documents, tokens, { withRaw });
      lineage?.(rewritten, runs.map(([from, to]) => ({ chunk: c, from, to })));
      out.push(rewritten);
    }
    start += c.documents;
  }
  return out;
}

/**
 * Chunk `c` (documents [start, start + c.documents) of `stored`) encoded again with `codec`; its raw
 * file stays. Its first documents may be copied instead from `lead`: runs of chunks already encoded
 * with `codec` holding the same documents (encoding a token depends on nothing else, so the copy is
 * what encoding would write). `reserve` is told the new chunk's id before its files are written.
 */
export function recodeChunk(dir: string, kernels: Kernels, codec: Codec, centroidsT: Float32Array, stored: DocSource, start: number, c: ChunkRef, options: { check?: () => void; reserve?: (id: string) => void; lead?: ChunkRun[] } = {}): Promise<ChunkRef> {
  const { check, lead = [] } = options;
  const copied = lead.reduce((a, r) => a + r.to - r.from, 0);
  const parts = (async function* () {
    for (const r of lead) yield* storedSlices(dir, codec.dim, r.chunk, r.from, r.to, false);
    for await (const part of encodedSlices(kernels, codec, centroidsT, stored, start + copied, start + c.documents, false)) {
      check?.();
      yield part;
    }
  })();
  return writeChunk(dir, codec.dim, codec.nbits, parts, c.documents, c.tokens, { withRaw: true, rawId: c.rawId ?? c.id, reserve: options.reserve });
}

/** Every chunk of `m` encoded again with `codec` from the originals in `stored` (same documents, same raw files). */
export async function recodeChunks(dir: string, m: Manifest, kernels: Kernels, codec: Codec, centroidsT: Float32Array, stored: DocSource): Promise<ChunkRef[]> {
  const out: ChunkRef[] = [];
  let start = 0;
  for (const c of m.chunks) {
    out.push(await recodeChunk(dir, kernels, codec, centroidsT, stored, start, c));
    start += c.documents;
  }
  return out;
}

/** The originals of chunk `c` of `m` alone (documents from 0). */
export function chunkRawDocs(dir: string, m: Manifest, c: ChunkRef): DocSource & { close(): void } {
  return rawDocs(dir, { ...m, chunks: [c], numDocuments: c.documents, numEmbeddings: c.tokens });
}

export interface UpdateBuffer {
  /** Trailing documents appended without centroid expansion, and their original embeddings. */
  documents: number;
  raw: Float32Array;
}

/** The original embeddings of the buffered documents (see UpdateBuffer). */
export function readBuffer(dir: string, m: Manifest): UpdateBuffer | undefined {
  if (!m.buffer) return undefined;
  return { documents: m.buffer.documents, raw: readNpy(path.join(dir, `buffer.${m.buffer.id}.npy`)).data as Float32Array };
}

/** Files a background writer (a retrain) still needs while other writes commit and sweep. */
export interface InUse {
  /** Manifests whose files it reads. */
  manifests: Manifest[];
  /** Ids of the chunks it writes (reserved before their first file exists). */
  chunks: Set<string>;
}

/**
 * Removes data files that `m` does not name (earlier states, interrupted writes) — not the temp
 * files of writes this process has in progress (writes yield while their data goes to disk). With
 * `inUse` (a retrain running), also keeps what it reads and writes.
 */
export function sweep(dir: string, m: Manifest | undefined, inUse?: InUse): void {
  const keep = new Set<string>();
  for (const man of [m, ...(inUse?.manifests ?? [])]) {
    if (!man) continue;
    keep.add(`centroids.${man.centroids}.npy`);
    if (man.buffer) keep.add(`buffer.${man.buffer.id}.npy`);
    for (const c of man.chunks) {
      const f = chunkFiles(dir, c);
      for (const [kind, file] of Object.entries(f)) if (kind !== "raw" || c.raw) keep.add(path.basename(file));
    }
  }
  for (const name of fs.readdirSync(dir)) {
    if (!DATA_FILE.test(name) || keep.has(name) || inProgress(path.join(dir, name))) continue;
    if (inUse?.chunks.has(/^chunk\.([0-9a-f]+)\./.exec(name)?.[1] ?? "")) continue;
    fs.rmSync(path.join(dir, name), { force: true });
  }
}
