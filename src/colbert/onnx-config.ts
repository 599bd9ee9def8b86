/**
 * onnx_config.json: the ColBERT settings a runtime needs beside the ONNX model, in the shape
 * NextPlaid's Rust loader (next-plaid-onnx) parses with serde. That parser fails on a `null` in an
 * integer field, and looks skiplist words up in the vocabulary (dropping the unknown ones), so the
 * file is written for it: integer ids always, and the unknown token listed when PyLate would map a
 * skiplist word to it.
 */
import path from "node:path";
import type { ColbertCheckpoint } from "./checkpoint.js";
import { UserError } from "../errors.js";
import { readExportJson } from "../util/fs.js";
import { TokenizerVocab, type PreparedTokenizer } from "./tokenizer.js";

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
  mask_token_id: number;
  pad_token_id: number;
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

/** NextPlaid's serde defaults for keys missing from onnx_config.json (next-plaid-onnx/src/lib.rs). */
export const NEXTPLAID_DEFAULTS: Record<string, unknown> = {
  query_prefix: "[Q] ",
  document_prefix: "[D] ",
  query_length: 48,
  document_length: 300,
  do_query_expansion: true,
  embedding_dim: 128,
  uses_token_type_ids: true,
  mask_token_id: 103,
  pad_token_id: 0,
  skiplist_words: [],
  attend_to_expansion_tokens: false,
  do_lower_case: false,
};

/** Keys NextPlaid parses as integers (a null there makes the whole file unreadable to it). */
export const ONNX_CONFIG_INTEGER_KEYS = ["query_length", "document_length", "embedding_dim", "mask_token_id", "pad_token_id"] as const;

/**
 * The skiplist as NextPlaid must read it to drop the rows PyLate drops: PyLate maps a word missing
 * from the vocabulary to the unknown token (and so drops unknown-token rows); NextPlaid drops the
 * word. Listing the unknown token's string restores PyLate's set of ids.
 */
export function skiplistForRuntime(words: string[], vocab: TokenizerVocab): string[] {
  const unk = vocab.unkToken();
  if (unk === null || words.includes(unk)) return words;
  return words.some((w) => vocab.id(w) === undefined) ? [...words, unk] : words;
}

/** The id PyLate pads queries with: the mask token; without one, the tokenizer's pad (eos) token. */
export function expansionTokenId(t: PreparedTokenizer): number {
  return t.maskTokenId ?? padTokenId(t);
}

function padTokenId(t: PreparedTokenizer): number {
  return t.padTokenId ?? t.unkTokenId ?? 0;
}

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
    skiplist_words: skiplistForRuntime(s.skiplistWords, new TokenizerVocab(t.json)),
    embedding_dim: ck.embeddingDim,
    mask_token_id: expansionTokenId(t),
    pad_token_id: padTokenId(t),
    query_prefix_id: t.queryPrefixId,
    document_prefix_id: t.documentPrefixId,
    do_lower_case: s.doLowerCase,
  };
}

/**
 * An export folder's onnx_config.json as a runtime uses it. Files written by other tools (or by
 * older versions of this one) may hold a null mask or pad id: PyLate's fallbacks fill them.
 */
export function readOnnxConfig(dir: string): OnnxConfig {
  const file = path.join(dir, "onnx_config.json");
  const cfg = readExportJson<OnnxConfig>(file);
  if (!cfg || typeof cfg !== "object") throw new UserError(`Unreadable ${file}: not a JSON object; re-export the model`);
  cfg.mask_token_id ??= cfg.pad_token_id ?? 0;
  cfg.pad_token_id ??= cfg.mask_token_id;
  cfg.query_prefix_id ??= null;
  cfg.document_prefix_id ??= null;
  cfg.skiplist_words ??= [];
  return cfg;
}
