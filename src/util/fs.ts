import fs from "node:fs";
import path from "node:path";
import { removeOnInterrupt } from "./cleanup.js";
import { UserError } from "../errors.js";

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

/** A JSON file of an export folder; missing or unreadable is a one-line error saying what to do. */
export function readExportJson<T>(file: string): T {
  if (!fs.existsSync(file)) throw new UserError(`${path.basename(file)} not found: ${file}; pass a folder written by pylate-onnx-export`);
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch (e) {
    throw new UserError(`Unreadable ${file} (${(e as Error).message}); re-export the model`);
  }
}
