/** The configs of an export folder (SPEC §2–3). */
import type { ColbertCheckpoint } from "../colbert/checkpoint.js";
import { settingsToSentenceTransformers } from "../colbert/settings.js";
import { VERSION } from "../version.js";

/** Every key NextPlaid reads from onnx_config.json. */
export interface OnnxConfig {
  model_type: "ColBERT";
  model_name: string;
  model_class: string;
  uses_token_type_ids: boolean;
  query_prefix: string;
  document_prefix: string;
  query_length: number;
  document_length: number;
  do_query_expansion: boolean;
  attend_to_expansion_tokens: boolean;
  skiplist_words: string[];
  embedding_dim: number;
  mask_token_id: number | null;
  pad_token_id: number | null;
  query_prefix_id: number | null;
  document_prefix_id: number | null;
  do_lower_case: boolean;
}

export const ONNX_CONFIG_KEYS: (keyof OnnxConfig)[] = [
  "model_type",
  "model_name",
  "model_class",
  "uses_token_type_ids",
  "query_prefix",
  "document_prefix",
  "query_length",
  "document_length",
  "do_query_expansion",
  "attend_to_expansion_tokens",
  "skiplist_words",
  "embedding_dim",
  "mask_token_id",
  "pad_token_id",
  "query_prefix_id",
  "document_prefix_id",
  "do_lower_case",
];

export function onnxConfig(ck: ColbertCheckpoint, modelName: string): OnnxConfig {
  const s = ck.settings;
  const t = ck.tokenizer;
  return {
    model_type: "ColBERT",
    model_name: modelName,
    model_class: ck.backbone.modelClass(ck.config),
    uses_token_type_ids: ck.backbone.usesTokenTypeIds,
    query_prefix: s.queryPrefix,
    document_prefix: s.documentPrefix,
    query_length: s.queryLength,
    document_length: s.documentLength,
    do_query_expansion: s.doQueryExpansion,
    attend_to_expansion_tokens: s.attendToExpansionTokens,
    skiplist_words: s.skiplistWords,
    embedding_dim: ck.embeddingDim,
    mask_token_id: t.maskTokenId,
    pad_token_id: t.padTokenId,
    query_prefix_id: t.queryPrefixId,
    document_prefix_id: t.documentPrefixId,
    do_lower_case: s.doLowerCase,
  };
}

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
