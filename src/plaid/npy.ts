/**
 * NumPy .npy (v1.0) files for the index's arrays, so an index folder can be inspected with
 * `numpy.load`. Writes go through a temp file + fsync + rename (never a half file under the final
 * name); reads check the header against what the caller expects.
 */
import fs from "node:fs";
import { writeFileAtomic } from "../util/fs.js";

export type NpyArray = Float32Array | Int32Array | Uint8Array | Int64Array;
type Int64Array = BigInt64Array;

const DESCR: Record<string, string> = { Float32Array: "<f4", Int32Array: "<i4", Uint8Array: "|u1", BigInt64Array: "<i8" };

export function encodeNpy(data: NpyArray, shape: number[]): Uint8Array {
  const descr = DESCR[data.constructor.name];
  if (!descr) throw new Error(`npy: unsupported array type ${data.constructor.name}`);
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
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([head, body]);
}

export function writeNpy(file: string, data: NpyArray, shape: number[]): void {
  writeFileAtomic(file, encodeNpy(data, shape));
}

export interface NpyRead {
  data: NpyArray;
  shape: number[];
}

export function readNpy(file: string): NpyRead {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString("latin1", 0, 6) !== "\x93NUMPY") throw new Error(`${file} is not a .npy file`);
  const major = buf[6]!;
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString("latin1", start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined || /'fortran_order':\s*True/.test(header)) throw new Error(`${file}: unsupported .npy header`);
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  // Copy into an aligned buffer (the header length does not guarantee alignment for every dtype).
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset + offset, buf.length - offset).slice();
  let data: NpyArray;
  if (descr === "<f4") data = new Float32Array(bytes.buffer, 0, count);
  else if (descr === "<i4") data = new Int32Array(bytes.buffer, 0, count);
  else if (descr === "|u1" || descr === "<u1") data = new Uint8Array(bytes.buffer, 0, count);
  else if (descr === "<i8") data = new BigInt64Array(bytes.buffer, 0, count);
  else throw new Error(`${file}: unsupported dtype ${descr}`);
  if (data.byteLength > bytes.byteLength) throw new Error(`${file} is truncated`);
  return { data, shape };
}
