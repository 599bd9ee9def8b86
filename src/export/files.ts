/** The configs of an export folder besides onnx_config.json (SPEC §2; that one: colbert/onnx-config.ts). */
import type { ColbertCheckpoint } from "../colbert/checkpoint.js";
import { settingsToSentenceTransformers } from "../colbert/settings.js";
import { VERSION } from "../version.js";

/** The backbone's config.json with the vocabulary size of the exported embedding. */
export function exportedHfConfig(ck: ColbertCheckpoint): Record<string, unknown> {
  return { ...ck.config, vocab_size: ck.tokenizer.length };
}

export function exportedSentenceTransformersConfig(ck: ColbertCheckpoint): Record<string, unknown> {
  return {
    ...(ck.sentenceTransformersConfig ?? { model_type: "ColBERT", similarity_fn_name: "MaxSim" }),
    ...settingsToSentenceTransformers(ck.settings),
    exported_by: `pylate-onnx-export ${VERSION}`,
  };
}
