import fs from "node:fs";
import path from "node:path";
import { removeOnInterrupt } from "./cleanup.js";

/** A temp name beside `target`, so the final rename stays on one file system. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now().toString(36)}.tmp`);
}

/** Writes `data` to `target` through a temp file + fsync + rename: readers never see a half file. */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(target);
  const release = removeOnInterrupt(tmp);
  try {
    const fd = fs.openSync(tmp, "w");
    try {
      fs.writeSync(fd, typeof data === "string" ? Buffer.from(data, "utf8") : data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    release();
  }
}

export function writeJsonAtomic(target: string, value: unknown): void {
  writeFileAtomic(target, JSON.stringify(value, null, 2) + "\n");
}
