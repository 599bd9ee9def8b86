import type { Value } from "../onnx/graph.js";
import type { Ctx } from "./nn.js";

/** A HuggingFace config.json. */
export type HFConfig = Record<string, unknown>;

export interface BackboneInputs {
  inputIds: Value;
  attentionMask: Value;
  /** Present only for backbones with `usesTokenTypeIds`. */
  tokenTypeIds?: Value;
}

export interface BuildArgs {
  ctx: Ctx;
  config: HFConfig;
  inputs: BackboneInputs;
  /** Rows the word-embedding table must have: the final tokenizer length. */
  vocabRows: number;
}

/** One transformer family: how to recognise it and how to build its forward pass. */
export interface Backbone {
  /** Registry key, e.g. "bert". */
  name: string;
  /** config.json `architectures[0]` values handled. */
  architectures: string[];
  /** config.json `model_type` values handled (fallback when architectures is unknown). */
  modelTypes: string[];
  /** Prefixes transformers strips when a base model loads a checkpoint saved with a head. */
  basePrefixes: string[];
  /** The word-embedding tensor (the one resized to the tokenizer length). */
  wordEmbeddings: string;
  usesTokenTypeIds: boolean;
  /** The base-model class name written to onnx_config.json (e.g. "BertModel"). */
  modelClass(config: HFConfig): string;
  hiddenSize(config: HFConfig): number;
  /** Builds the encoder; returns the last hidden state [batch, seq, hidden]. */
  build(args: BuildArgs): Value;
}

/** Reads a config field with a default, checking its type. */
export function cfg<T extends number | string | boolean>(config: HFConfig, key: string, fallback?: T): T {
  const v = config[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) throw new Error(`config.json has no "${key}"`);
    return fallback;
  }
  return v as T;
}
