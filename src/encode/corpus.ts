/**
 * colbert-encode at corpus scale: input read incrementally, encoded chunk by chunk (texts sorted by
 * length inside a chunk, so batches pad little), each finished chunk appended to the output.
 * Memory is bounded by the chunk, whatever the corpus size.
 *
 * Resumable: after each chunk, `OUT.encode.json` records how much input was consumed and how many
 * bytes each output file holds. A rerun of the same command truncates the outputs to those sizes
 * (dropping a half-written chunk) and continues; chunks are fixed slices of the input and each is
 * encoded the same way, so the result is byte-identical to an uninterrupted run.
 *
 * Shardable: with `shard = [i, n]` only chunks k with k % n == i are encoded; merge.ts puts the
 * shards' outputs back together into exactly what one run writes.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { ColbertEncoder, Embedding } from "../runtime/encoder.js";
import type { InputType } from "../runtime/tokenizer.js";
import { readRecords, inputSize, type InputRecord } from "./input.js";
import readline from "node:readline";
import { tempPathFor, writeJsonAtomic } from "../util/fs.js";
import { removeOnInterrupt } from "../util/cleanup.js";
import { UserError } from "../errors.js";

export type StreamFormat = "jsonl" | "f32" | "npy";

/** Bytes of the .npy header: fixed, so rows can be appended and the row count patched in place. */
export const NPY_HEADER_BYTES = 128;

/**
 * A NumPy .npy (v1.0) header for a float32 [rows, dim] array. The row count is written
 * right-aligned in a fixed-width field (a Python literal may hold spaces), so the header keeps
 * its size whatever the count.
 */
export function npyHeader(rows: number, dim: number): Uint8Array {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${String(rows).padStart(20)}, ${dim}), }`;
  const header = Buffer.alloc(NPY_HEADER_BYTES, 0x20);
  Buffer.from("\x93NUMPY", "latin1").copy(header, 0);
  header[6] = 1;
  header[7] = 0;
  header.writeUInt16LE(NPY_HEADER_BYTES - 10, 8);
  Buffer.from(dict, "latin1").copy(header, 10);
  header[NPY_HEADER_BYTES - 1] = 0x0a;
  return header;
}

export interface CorpusOptions {
  input: string;
  jsonl: boolean;
  /** Output file; "-" for stdout (then nothing is resumable). */
  output: string;
  format: StreamFormat;
  type: InputType;
  poolFactor?: number;
  /** Texts per chunk (the unit of writing, resuming and sharding). */
  chunkSize: number;
  /** [index, count]: encode only this shard's chunks. */
  shard?: [number, number];
  skipBad: boolean;
  force: boolean;
  onProgress?: (p: Progress) => void;
}

export interface Progress {
  texts: number;
  rows: number;
  bytesRead?: number;
  totalBytes?: number;
  seconds: number;
}

export interface CorpusSummary {
  output: string;
  format: StreamFormat;
  texts: number;
  /** Token rows written. */
  rows: number;
  skipped: number;
  resumedFrom: number;
  seconds: number;
  textsPerSecond: number;
  shard?: [number, number];
}

/** The job record beside the output. */
export interface JobRecord {
  version: 1;
  key: string;
  complete: boolean;
  format: StreamFormat;
  chunk_size: number;
  shard: [number, number];
  /** Chunks (global index) fully consumed, and input records consumed with them. */
  chunks: number;
  records: number;
  texts: number;
  rows: number;
  skipped: number;
  dim: number | null;
  /** Bytes each output file holds after the last complete chunk. */
  bytes: Record<string, number>;
}

export const jobFile = (output: string) => `${output}.encode.json`;
export const indexFile = (output: string) => `${output}.index.jsonl`;
export const skippedFile = (output: string) => `${output}.skipped.jsonl`;

export function readJob(output: string): JobRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(jobFile(output), "utf8")) as JobRecord;
  } catch {
    return undefined;
  }
}

function rowsOf(e: Embedding): number[][] {
  return Array.from({ length: e.rows }, (_, r) => Array.from(e.data.subarray(r * e.dim, (r + 1) * e.dim)));
}

/** Appends to a file at a known byte length (truncating anything beyond it: a half-written chunk). */
class AppendFile {
  private fd: number;
  private closed = false;
  constructor(
    readonly file: string,
    public bytes: number,
  ) {
    this.fd = fs.openSync(file, fs.existsSync(file) ? "r+" : "w");
    fs.ftruncateSync(this.fd, bytes);
  }
  write(data: string | Uint8Array): void {
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let off = 0;
    while (off < buf.byteLength) off += fs.writeSync(this.fd, buf, off, buf.byteLength - off, this.bytes + off);
    this.bytes += buf.byteLength;
  }
  sync(): void {
    fs.fsyncSync(this.fd);
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

export async function encodeCorpus(encoder: ColbertEncoder, opts: CorpusOptions): Promise<CorpusSummary> {
  const started = performance.now();
  const [shardIndex, shardCount] = opts.shard ?? [0, 1];
  const toStdout = opts.output === "-";
  const binary = opts.format === "f32" || opts.format === "npy";
  if (toStdout && binary) throw new UserError(`--format ${opts.format} needs --output FILE`);
  const key = crypto
    .createHash("sha256")
    .update(JSON.stringify([path.resolve(encoder.modelFile), encoder.config.query_length, encoder.config.document_length, opts.type, opts.poolFactor ?? 0, opts.format, opts.jsonl, opts.chunkSize, shardIndex, shardCount, opts.input === "-" ? "-" : path.resolve(opts.input)]))
    .digest("hex")
    .slice(0, 16);

  // Where to start: a matching unfinished job continues; a finished output is not redone silently.
  let job: JobRecord = { version: 1, key, complete: false, format: opts.format, chunk_size: opts.chunkSize, shard: [shardIndex, shardCount], chunks: 0, records: 0, texts: 0, rows: 0, skipped: 0, dim: null, bytes: {} };
  if (!toStdout) {
    const previous = readJob(opts.output);
    if (previous && !opts.force && previous.key === key && !previous.complete) job = previous;
    else if (!opts.force && (previous?.complete || (!previous && fs.existsSync(opts.output)))) {
      throw new UserError(`${opts.output} already exists${previous?.complete ? " (a finished run)" : ""}; pass --force to encode again, or another --output`);
    } else if (previous && previous.key !== key && !opts.force) {
      throw new UserError(`${opts.output} is an unfinished run with other options (model, type, format, chunk size, shard or input); rerun that command to finish it, or pass --force to start over`);
    }
    fs.mkdirSync(path.dirname(path.resolve(opts.output)), { recursive: true });
  }
  const resumedFrom = job.records;
  // A fresh start replaces an earlier run's side files too (a stale skipped list would mislead).
  if (!toStdout && resumedFrom === 0) for (const f of [skippedFile(opts.output), `${opts.output}.shapes.json`]) fs.rmSync(f, { force: true });

  const files: Record<string, AppendFile> = {};
  const open = (name: string, file: string) => (files[name] ??= new AppendFile(file, job.bytes[name] ?? 0));
  const out = toStdout ? undefined : open("data", opts.output);
  const index = !toStdout && binary ? open("index", indexFile(opts.output)) : undefined;
  // .npy: the header first (its row count is patched when the run completes).
  if (opts.format === "npy" && out!.bytes === 0) out!.write(npyHeader(0, encoder.config.embedding_dim));
  // The journal exists from the start: a run stopped before its first chunk (Ctrl-C, a bad line) resumes too.
  if (!toStdout && resumedFrom === 0) writeJsonAtomic(jobFile(opts.output), job);
  const skipLog = () => open("skipped", skippedFile(opts.output));
  const write = (data: string | Uint8Array) => (out ? out.write(data) : process.stdout.write(data));

  const totalBytes = inputSize(opts.input);
  let texts = 0;
  try {
    let chunk: InputRecord[] = [];
    let chunkIndex = job.chunks;
    let bytesRead = 0;
    const flush = async () => {
      const k = chunkIndex++;
      const records = chunk;
      chunk = [];
      if (k % shardCount === shardIndex) {
        const good = records.filter((r) => r.error === undefined);
        const bad = records.filter((r) => r.error !== undefined);
        if (bad.length > 0 && !opts.skipBad) {
          throw new UserError(`Input line ${bad[0]!.line} ${bad[0]!.error}; fix it (the ${job.texts} texts before it are saved: rerun to continue) or pass --skip-bad`);
        }
        for (const r of bad) skipLog().write(JSON.stringify({ index: r.index, line: r.line, reason: r.error }) + "\n");
        const embeddings = good.length > 0 ? await encoder.encode(good.map((r) => r.text!), opts.type, { poolFactor: opts.poolFactor }) : [];
        embeddings.forEach((e, i) => {
          const r = good[i]!;
          job.dim ??= e.dim;
          if (opts.format === "jsonl") {
            write(JSON.stringify({ index: r.index, ...(r.id !== undefined ? { id: r.id } : {}), shape: [e.rows, e.dim], embedding: rowsOf(e) }) + "\n");
          } else {
            write(new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength));
            index!.write(JSON.stringify({ index: r.index, ...(r.id !== undefined ? { id: r.id } : {}), rows: e.rows }) + "\n");
          }
          job.rows += e.rows;
        });
        job.texts += good.length;
        job.skipped += bad.length;
        texts += good.length;
      }
      // Commit: data first (fsync), then the record that points at it.
      job.chunks = k + 1;
      job.records += records.length;
      if (!toStdout) {
        for (const [name, f] of Object.entries(files)) {
          f.sync();
          job.bytes[name] = f.bytes;
        }
        writeJsonAtomic(jobFile(opts.output), job);
      }
    };
    let skip = job.records; // what an earlier run already did: read past, not encoded
    for await (const record of readRecords(opts.input, opts.jsonl)) {
      bytesRead = record.bytesRead;
      if (skip > 0) {
        skip--;
        continue;
      }
      chunk.push(record);
      if (chunk.length === opts.chunkSize) {
        await flush();
        opts.onProgress?.({ texts: job.texts, rows: job.rows, bytesRead, totalBytes, seconds: (performance.now() - started) / 1000 });
      }
    }
    if (chunk.length > 0) await flush();
    job.complete = true;
    if (!toStdout) {
      writeJsonAtomic(jobFile(opts.output), job);
      if (opts.format === "npy") patchNpyRows(opts.output, job.rows, encoder.config.embedding_dim);
      if (binary) await writeShapes(opts.output);
    }
  } finally {
    for (const f of Object.values(files)) f.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    output: opts.output,
    format: opts.format,
    texts: job.texts,
    rows: job.rows,
    skipped: job.skipped,
    resumedFrom,
    seconds,
    textsPerSecond: texts / Math.max(seconds, 1e-9),
    ...(opts.shard ? { shard: opts.shard } : {}),
  };
}

/** Writes the final row count into an .npy output's header. */
export function patchNpyRows(file: string, rows: number, dim: number): void {
  const fd = fs.openSync(file, "r+");
  try {
    fs.writeSync(fd, npyHeader(rows, dim), 0, NPY_HEADER_BYTES, 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** OUT.shapes.json for an f32 output ({num_texts, shapes: [[rows, dim]…]}), streamed from its index. */
export async function writeShapes(output: string): Promise<void> {
  const dim = readJob(output)?.dim ?? 0;
  const target = `${output}.shapes.json`;
  const tmp = tempPathFor(target);
  const release = removeOnInterrupt(tmp);
  const outFile = new AppendFile(tmp, 0);
  try {
    let n = 0;
    outFile.write('{"shapes":[');
    if (fs.existsSync(indexFile(output))) {
      for await (const line of readline.createInterface({ input: fs.createReadStream(indexFile(output)), crlfDelay: Infinity })) {
        if (!line) continue;
        outFile.write(`${n++ ? "," : ""}[${(JSON.parse(line) as { rows: number }).rows},${dim}]`);
      }
    }
    outFile.write(`],"num_texts":${n}}\n`);
    outFile.sync();
    outFile.close();
    fs.renameSync(tmp, target);
  } catch (e) {
    outFile.close();
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    release();
  }
}
