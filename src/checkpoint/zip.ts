/**
 * Just enough of the zip format to locate the records of a PyTorch archive: the central
 * directory (with zip64), and the absolute data offset of stored (uncompressed) entries.
 */
import fs from "node:fs";
import { UserError } from "../errors.js";

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

function read(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = fs.readSync(fd, buf, 0, length, position);
  return buf.subarray(0, n);
}

export function readZipDirectory(fd: number, file: string): Map<string, ZipEntry> {
  const bad = (why: string) => new UserError(`Unreadable PyTorch checkpoint ${file}: ${why}; re-download it or use a safetensors checkpoint`);
  const size = fs.fstatSync(fd).size;
  const tailLen = Math.min(size, 65557 + 20);
  const tail = read(fd, size - tailLen, tailLen);
  const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw bad("not a zip archive (the legacy torch.save format is not supported)");
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (cdOffset === 0xffffffff || count === 0xffff || cdSize === 0xffffffff) {
    const locator = eocd - 20;
    if (locator < 0 || tail.readUInt32LE(locator) !== 0x07064b50) throw bad("broken zip64 directory");
    const z64 = read(fd, Number(tail.readBigUInt64LE(locator + 8)), 56);
    if (z64.readUInt32LE(0) !== 0x06064b50) throw bad("broken zip64 directory");
    count = Number(z64.readBigUInt64LE(32));
    cdSize = Number(z64.readBigUInt64LE(40));
    cdOffset = Number(z64.readBigUInt64LE(48));
  }
  if (cdOffset + cdSize > size) throw bad("truncated file");
  const cd = read(fd, cdOffset, cdSize);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) throw bad("corrupt central directory");
    const method = cd.readUInt16LE(p + 10);
    let compressedSize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    const name = cd.toString("utf8", p + 46, p + 46 + nameLen);
    // zip64 extended information: present fields replace the 0xffffffff ones, in this order.
    let x = p + 46 + nameLen;
    const extraEnd = x + extraLen;
    while (x + 4 <= extraEnd) {
      const id = cd.readUInt16LE(x);
      const len = cd.readUInt16LE(x + 2);
      if (id === 0x0001) {
        let q = x + 4;
        if (usize === 0xffffffff) (usize = Number(cd.readBigUInt64LE(q))), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = Number(cd.readBigUInt64LE(q))), (q += 8);
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = Number(cd.readBigUInt64LE(q));
      }
      x += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size: usize, localHeaderOffset });
    p = extraEnd + commentLen;
  }
  return entries;
}

/** Absolute offset of a stored entry's bytes (after its local header). */
export function entryDataOffset(fd: number, entry: ZipEntry, file: string): number {
  const h = read(fd, entry.localHeaderOffset, 30);
  if (h.length < 30 || h.readUInt32LE(0) !== 0x04034b50) {
    throw new UserError(`Unreadable PyTorch checkpoint ${file}: corrupt entry ${entry.name}; re-download it`);
  }
  return entry.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
}

export function readEntry(fd: number, entry: ZipEntry, file: string): Buffer {
  if (entry.method !== 0) throw new UserError(`Unsupported compressed entry ${entry.name} in ${file}; re-save the checkpoint as safetensors`);
  return read(fd, entryDataOffset(fd, entry, file), entry.size);
}
