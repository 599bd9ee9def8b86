/**
 * NumPy .npy (v1.0) files for the index's arrays, so an index folder can be inspected with
 * `numpy.load`. Writes go through a temp file + fsync + rename (never a half file under the final
 * name); reads check the header against what the caller expects. NpyWriter writes and fsyncs off
 * the calling thread (libuv's pool): the index thread answers searches while a chunk goes to disk,
 * even when the kernel throttles writers with dirty pages to flush.
 */
import fs from "node:fs";
import { removeOnInterrupt } from "../util/cleanup.js";
import { tempPathFor } from "../util/fs.js";

export type NpyArray = Float32Array | Int32Array | Uint8Array | Int64Array | Uint16Array;
type Int64Array = BigInt64Array;

/** A Uint16Array holds float16 bits (checkpoint/dtype.ts converts them): the only 2-byte type the index writes. */
const DESCR: Record<string, string> = { Float32Array: "<f4", Int32Array: "<i4", Uint8Array: "|u1", BigInt64Array: "<i8", Uint16Array: "<f2" };

function npyHeader(descr: string, shape: number[]): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const head = Buffer.alloc(10 + header.length);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  head.write(header, 10, "latin1");
  return head;
}

const writeAsync = (fd: number, bytes: Uint8Array, offset: number, length: number) =>
  new Promise<number>((resolve, reject) => fs.write(fd, bytes, offset, length, null, (e, n) => (e ? reject(e) : resolve(n))));
const fsyncAsync = (fd: number) => new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));

/**
 * A .npy file written in slices (its shape known up front), so an array larger than memory, or
 * larger than a typed array may be, goes to disk a part at a time. Written to a temp name;
 * commit() checks the size, fsyncs and renames; abort() removes the temp file. One write at a time
 * (await each); the array written must not change until its write resolves.
 */
export class NpyWriter {
  private readonly tmp: string;
  private fd: number;
  private written = 0;
  private readonly expected: number;
  private readonly release: () => void;

  constructor(
    readonly file: string,
    readonly type: "Float32Array" | "Int32Array" | "Uint8Array" | "Uint16Array",
    shape: number[],
  ) {
    this.tmp = tempPathFor(file);
    this.release = removeOnInterrupt(this.tmp);
    this.fd = fs.openSync(this.tmp, "w");
    const head = npyHeader(DESCR[type]!, shape);
    fs.writeSync(this.fd, head);
    this.expected = shape.reduce((a, b) => a * b, 1) * BYTES_OF[type];
  }

  async write(data: NpyArray): Promise<void> {
    if (data.constructor.name !== this.type) throw new Error(`npy: ${this.file} holds ${this.type}, not ${data.constructor.name}`);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    for (let done = 0; done < bytes.length; ) done += await writeAsync(this.fd, bytes, done, bytes.length - done);
    this.written += bytes.length;
  }

  async commit(): Promise<void> {
    try {
      if (this.written !== this.expected) throw new Error(`npy: ${this.file} got ${this.written} bytes of data, its shape needs ${this.expected}`);
      await fsyncAsync(this.fd);
      fs.closeSync(this.fd);
      this.fd = -1;
      fs.renameSync(this.tmp, this.file);
    } catch (e) {
      this.abort();
      throw e;
    }
    this.release();
  }

  abort(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    fs.rmSync(this.tmp, { force: true });
    this.release();
  }
}

const BYTES_OF = { Float32Array: 4, Int32Array: 4, Uint8Array: 1, Uint16Array: 2 } as const;

/** A whole array as a .npy file (temp file, fsync and rename off the calling thread: NpyWriter). */
export async function writeNpyAsync(file: string, data: Float32Array | Int32Array | Uint8Array | Uint16Array, shape: number[]): Promise<void> {
  const w = new NpyWriter(file, data.constructor.name as NpyWriter["type"], shape);
  try {
    await w.write(data);
  } catch (e) {
    w.abort();
    throw e;
  }
  await w.commit();
}

export interface NpyRead {
  data: NpyArray;
  shape: number[];
  descr: string;
}

interface NpyHeader {
  descr: string;
  shape: number[];
  /** Byte offset of the data. */
  offset: number;
}

const ITEM_BYTES: Record<string, number> = { "<f4": 4, "<i4": 4, "|u1": 1, "<u1": 1, "<i8": 8, "<f2": 2 };

function parseHeader(file: string, buf: Buffer): NpyHeader {
  if (buf.length < 10 || buf.toString("latin1", 0, 6) !== "\x93NUMPY") throw new Error(`${file} is not a .npy file`);
  const major = buf[6]!;
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  if (buf.length < start + headerLen) throw new Error(`${file}: truncated .npy header`);
  const header = buf.toString("latin1", start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined || /'fortran_order':\s*True/.test(header)) throw new Error(`${file}: unsupported .npy header`);
  if (!(descr in ITEM_BYTES)) throw new Error(`${file}: unsupported dtype ${descr}`);
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  return { descr, shape, offset: start + headerLen };
}

/** A typed array of `descr` over `bytes` (an aligned copy). */
function view(descr: string, bytes: Uint8Array, count: number): NpyArray {
  if (descr === "<f4") return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  if (descr === "<i4") return new Int32Array(bytes.buffer, bytes.byteOffset, count);
  if (descr === "<f2") return new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  if (descr === "<i8") return new BigInt64Array(bytes.buffer, bytes.byteOffset, count);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, count);
}

export function readNpy(file: string): NpyRead {
  const buf = fs.readFileSync(file);
  const { descr, shape, offset } = parseHeader(file, buf);
  const count = shape.reduce((a, b) => a * b, 1);
  if (buf.length - offset < count * ITEM_BYTES[descr]!) throw new Error(`${file} is truncated`);
  // Copy into an aligned buffer (the header length does not guarantee alignment for every dtype).
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset + offset, count * ITEM_BYTES[descr]!).slice();
  return { data: view(descr, bytes, count), shape, descr };
}

/**
 * Rows of a 1-D or 2-D .npy file read by position (pread), without loading the file: what an
 * index reads per candidate document or per sampled document. The file stays open until close().
 */
export class NpyRows {
  readonly descr: string;
  readonly rows: number;
  /** Values per row. */
  readonly width: number;
  private readonly rowBytes: number;
  private readonly offset: number;
  private fd: number;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, "r");
    try {
      const head = Buffer.alloc(4096);
      const got = fs.readSync(this.fd, head, 0, head.length, 0);
      const h = parseHeader(file, head.subarray(0, got));
      this.descr = h.descr;
      this.rows = h.shape[0] ?? 1;
      this.width = h.shape.slice(1).reduce((a, b) => a * b, 1);
      this.rowBytes = this.width * ITEM_BYTES[h.descr]!;
      this.offset = h.offset;
      if (fs.fstatSync(this.fd).size < this.offset + this.rows * this.rowBytes) throw new Error(`${file} is truncated`);
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
  }

  /** Rows [from, to) as a typed array of the file's dtype (a fresh, aligned buffer). */
  read(from: number, to: number): NpyArray {
    if (from < 0 || to > this.rows || from > to) throw new Error(`${this.file}: rows ${from}..${to} outside 0..${this.rows}`);
    const bytes = new Uint8Array((to - from) * this.rowBytes);
    let done = 0;
    while (done < bytes.length) {
      const n = fs.readSync(this.fd, bytes, done, bytes.length - done, this.offset + from * this.rowBytes + done);
      if (n === 0) throw new Error(`${this.file} is truncated`);
      done += n;
    }
    return view(this.descr, bytes, (to - from) * this.width);
  }

  /** The raw bytes of rows [from, to), read into `target` (large enough); returns the filled part. */
  readBytesInto(from: number, to: number, target: Uint8Array): Uint8Array {
    if (from < 0 || to > this.rows || from > to) throw new Error(`${this.file}: rows ${from}..${to} outside 0..${this.rows}`);
    const bytes = target.subarray(0, (to - from) * this.rowBytes);
    let done = 0;
    while (done < bytes.length) {
      const n = fs.readSync(this.fd, bytes, done, bytes.length - done, this.offset + from * this.rowBytes + done);
      if (n === 0) throw new Error(`${this.file} is truncated`);
      done += n;
    }
    return bytes;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
