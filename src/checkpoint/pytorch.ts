/**
 * pytorch_model.bin (torch.save zip format): data.pkl is read with the restricted unpickler,
 * tensors are read by offset from the uncompressed storage records.
 */
import fs from "node:fs";
import path from "node:path";
import type { WeightStore } from "./types.js";
import { entryDataOffset, readEntry, readZipDirectory } from "./zip.js";
import { unpickle, type TensorRef } from "./unpickler.js";
import { combineStores, safeShardPath, storeFromEntries, type TensorEntry } from "./safetensors.js";
import { UserError } from "../errors.js";

const ELEM: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

export function openPytorchBin(file: string): WeightStore {
  const fd = fs.openSync(file, "r");
  try {
    const zip = readZipDirectory(fd, file);
    const pkl = [...zip.keys()].find((n) => n.endsWith("data.pkl") && n.split("/").length === 2);
    if (!pkl) throw new UserError(`Unreadable PyTorch checkpoint ${file}: no data.pkl; re-download it or use a safetensors checkpoint`);
    const root = pkl.slice(0, pkl.indexOf("/"));
    const state = unpickle(readEntry(fd, zip.get(pkl)!, file), file);
    if (!(state instanceof Map)) throw new UserError(`${file} does not hold a state dict; re-save it with torch.save(model.state_dict())`);
    const entries = new Map<string, TensorEntry>();
    for (const [name, value] of state) {
      const t = value as TensorRef;
      if (!t || t.kind !== "tensor") continue;
      if (!isContiguous(t.shape, t.stride)) throw new UserError(`Tensor "${name}" in ${file} is not contiguous; re-save the checkpoint as safetensors`);
      const record = zip.get(`${root}/data/${t.storage.key}`);
      if (!record) throw new UserError(`Unreadable PyTorch checkpoint ${file}: missing storage ${t.storage.key}; re-download it`);
      if (record.method !== 0) throw new UserError(`Unsupported compressed storage in ${file}; re-save the checkpoint as safetensors`);
      const elem = ELEM[t.storage.dtype]!;
      const bytes = t.shape.reduce((a, b) => a * b, 1) * elem;
      if ((t.offset * elem) + bytes > record.size) throw new UserError(`Unreadable PyTorch checkpoint ${file}: tensor "${name}" lies outside its storage; re-download it`);
      entries.set(String(name), {
        name: String(name),
        dtype: t.storage.dtype,
        shape: t.shape,
        offset: entryDataOffset(fd, record, file) + t.offset * elem,
        bytes,
      });
    }
    return storeFromEntries(entries, fd, file);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

export function openShardedPytorchBin(indexFile: string): WeightStore {
  const index = JSON.parse(fs.readFileSync(indexFile, "utf8")) as { weight_map?: Record<string, string> };
  if (!index.weight_map) throw new UserError(`${indexFile} has no weight_map; re-download the checkpoint`);
  const dir = path.dirname(indexFile);
  const stores: WeightStore[] = [];
  try {
    for (const shard of new Set(Object.values(index.weight_map))) stores.push(openPytorchBin(safeShardPath(dir, shard, indexFile)));
  } catch (e) {
    stores.forEach((s) => s.close());
    throw e;
  }
  return combineStores(stores);
}
