/**
 * safetensors: 8-byte little-endian header length, JSON header {name: {dtype, shape,
 * data_offsets}}, then the data. Tensors are read by offset (files can pass 2 GiB).
 */
import fs from "node:fs";
import path from "node:path";
import type { DType, TensorInfo, WeightStore } from "./types.js";
import { bf16ToF32, f16ToF32 } from "./dtype.js";
import { UserError } from "../errors.js";
import type { Scratch } from "./scratch.js";

const DTYPE_SIZE: Record<DType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
/** Headers are JSON text; anything this large is not a real header. */
const MAX_HEADER = 100 * 2 ** 20;

interface Entry extends TensorInfo {
  /** Absolute file offset of the data. */
  offset: number;
  bytes: number;
}

function readExactly(fd: number, buf: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw new UserError(`Corrupt safetensors file ${file}: unexpected end of file; re-download it`);
    done += n;
  }
}

/** Converts raw little-endian bytes of `dtype` to float32 (16-bit types into `scratch` if given). */
export function toF32(raw: Uint8Array, dtype: DType, name: string, scratch?: Scratch): Float32Array {
  const halfOut = (n: number) => (scratch ? scratch.f32("convert", n) : new Float32Array(n));
  switch (dtype) {
    case "F32":
      return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    case "F16":
      return f16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2), halfOut(raw.byteLength / 2));
    case "BF16":
      return bf16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2), halfOut(raw.byteLength / 2));
    case "F64":
      return Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8));
    default:
      throw new UserError(`Tensor "${name}" has integer dtype ${dtype}, expected a float tensor`);
  }
}

export function openSafetensors(file: string): WeightStore {
  const corrupt = (why: string) => new UserError(`Corrupt safetensors file ${file}: ${why}; re-download it`);
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw corrupt("shorter than its 8-byte header length");
    const lenBuf = Buffer.alloc(8);
    readExactly(fd, lenBuf, 0, file);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 1 || headerLen > MAX_HEADER || 8 + headerLen > size) throw corrupt(`header length ${headerLen} does not fit the file (${size} bytes)`);
    const headerBuf = Buffer.alloc(headerLen);
    readExactly(fd, headerBuf, 8, file);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString("utf8")) as Record<string, unknown>;
    } catch {
      throw corrupt("its header is not valid JSON");
    }
    if (!header || typeof header !== "object" || Array.isArray(header)) throw corrupt("its header is not a JSON object");
    const dataStart = 8 + headerLen;
    const entries = new Map<string, Entry>();
    for (const [name, v] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const e = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      const elem = DTYPE_SIZE[e?.dtype as DType];
      if (!elem || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) {
        throw corrupt(`tensor "${name}" has an invalid header entry`);
      }
      const [begin, end] = e.data_offsets;
      const count = e.shape.reduce((a, b) => a * b, 1);
      if (!(begin >= 0 && end >= begin && dataStart + end <= size)) throw corrupt(`tensor "${name}" lies outside the file`);
      if (end - begin !== count * elem) throw corrupt(`tensor "${name}" has ${end - begin} bytes for shape [${e.shape}] ${e.dtype}`);
      entries.set(name, { name, dtype: e.dtype as DType, shape: e.shape, offset: dataStart + begin, bytes: end - begin });
    }
    return storeFromEntries(entries, fd, file);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** A WeightStore over tensors at known offsets of an open file (safetensors, torch zip records). */
export function storeFromEntries(entries: Map<string, Entry>, fd: number, file: string): WeightStore {
  let open = true;
  const get = (name: string) => {
    const e = entries.get(name);
    if (!e) throw new UserError(`Tensor "${name}" is not in ${file}`);
    return e;
  };
  return {
    names: () => [...entries.keys()],
    has: (name) => entries.has(name),
    info: (name) => {
      const { dtype, shape } = get(name);
      return { name, dtype, shape };
    },
    readF32: (name, scratch) => {
      const e = get(name);
      // Own (or scratch) ArrayBuffers keep the data 4-byte aligned for the typed-array views.
      const raw = scratch ? scratch.bytes("read", e.bytes) : new Uint8Array(new ArrayBuffer(e.bytes));
      readExactly(fd, raw, e.offset, file);
      return toF32(raw, e.dtype, name, scratch);
    },
    close: () => {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

export type { Entry as TensorEntry };

/** A store over several stores (shards); each name must live in exactly one. */
export function combineStores(stores: WeightStore[]): WeightStore {
  const owner = new Map<string, WeightStore>();
  for (const s of stores) for (const n of s.names()) owner.set(n, s);
  const get = (name: string) => {
    const s = owner.get(name);
    if (!s) throw new UserError(`Tensor "${name}" is in none of the checkpoint shards`);
    return s;
  };
  return {
    names: () => [...owner.keys()],
    has: (n) => owner.has(n),
    info: (n) => get(n).info(n),
    readF32: (n, scratch) => get(n).readF32(n, scratch),
    close: () => stores.forEach((s) => s.close()),
  };
}

/** Shard file names come from a downloaded index: never let them leave the folder. */
export function safeShardPath(dir: string, shard: string, index: string): string {
  if (typeof shard !== "string" || shard.includes("..") || path.isAbsolute(shard) || shard.includes("\\")) {
    throw new UserError(`Refusing shard name "${shard}" in ${index}: it points outside the model folder`);
  }
  return path.join(dir, shard);
}

export function openShardedSafetensors(indexFile: string): WeightStore {
  let index: { weight_map?: Record<string, string> };
  try {
    index = JSON.parse(fs.readFileSync(indexFile, "utf8"));
  } catch {
    throw new UserError(`Unreadable ${indexFile}; re-download the checkpoint`);
  }
  if (!index.weight_map || typeof index.weight_map !== "object") throw new UserError(`${indexFile} has no weight_map; re-download the checkpoint`);
  const dir = path.dirname(indexFile);
  const shards = [...new Set(Object.values(index.weight_map))].map((s) => safeShardPath(dir, s, indexFile));
  const stores: WeightStore[] = [];
  try {
    for (const s of shards) {
      if (!fs.existsSync(s)) throw new UserError(`Missing shard ${path.basename(s)} listed in ${indexFile}; re-download the checkpoint`);
      stores.push(openSafetensors(s));
    }
  } catch (e) {
    stores.forEach((s) => s.close());
    throw e;
  }
  return combineStores(stores);
}

export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/** Writes a safetensors file tensor by tensor (streamed, not concatenated in memory). */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header["__metadata__"] = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  // Pad the header with spaces so the data stays 8-byte aligned, as the reference writer does.
  const headerBytes = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, " ")]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  const fd = fs.openSync(file, "w");
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, headerBytes);
    for (const t of tensors) {
      let done = 0;
      while (done < t.data.byteLength) done += fs.writeSync(fd, t.data, done, t.data.byteLength - done);
    }
  } finally {
    fs.closeSync(fd);
  }
}
