/** Every supported backbone, looked up by config.json `architectures[0]`, then `model_type`. */
import { bert } from "./bert.js";
import { distilBert } from "./distilbert.js";
import { electra } from "./electra.js";
import { modernBert } from "./modernbert.js";
import { xlmRoberta } from "./xlm-roberta.js";
import type { Backbone, HFConfig } from "./types.js";
import { UserError } from "../errors.js";

export const BACKBONES: readonly Backbone[] = [bert, modernBert, xlmRoberta, electra, distilBert];

export function backboneFor(config: HFConfig): Backbone {
  const arch = Array.isArray(config["architectures"]) ? String(config["architectures"][0]) : undefined;
  const modelType = typeof config["model_type"] === "string" ? config["model_type"] : undefined;
  const found =
    BACKBONES.find((b) => arch !== undefined && b.architectures.includes(arch)) ??
    BACKBONES.find((b) => modelType !== undefined && b.modelTypes.includes(modelType));
  if (!found) {
    const supported = BACKBONES.flatMap((b) => b.architectures).join(", ");
    throw new UserError(`Unsupported architecture ${arch ?? modelType ?? "(none in config.json)"}; supported: ${supported}`);
  }
  return found;
}
