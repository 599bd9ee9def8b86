/** Opens a checkpoint folder's weights, whichever of the Hugging Face formats it uses. */
import fs from "node:fs";
import path from "node:path";
import type { WeightStore } from "./types.js";
import { openSafetensors, openShardedSafetensors } from "./safetensors.js";
import { openPytorchBin, openShardedPytorchBin } from "./pytorch.js";
import { UserError } from "../errors.js";

const FORMATS: [string, (file: string) => WeightStore][] = [
  ["model.safetensors", openSafetensors],
  ["model.safetensors.index.json", openShardedSafetensors],
  ["pytorch_model.bin", openPytorchBin],
  ["pytorch_model.bin.index.json", openShardedPytorchBin],
];

export async function openCheckpointWeights(dir: string): Promise<WeightStore> {
  for (const [name, open] of FORMATS) {
    const file = path.join(dir, name);
    if (fs.existsSync(file)) return open(file);
  }
  throw new UserError(`No weights found in ${dir}: expected model.safetensors or pytorch_model.bin`);
}
