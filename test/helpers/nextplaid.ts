/**
 * NextPlaid's encode path (next-plaid-onnx/src/lib.rs in lightonai/next-plaid, v1.6.x), ported
 * step by step so tests can show what NextPlaid computes from an export folder:
 * - ColbertConfig::from_file: serde parse of onnx_config.json (a null integer fails the parse);
 * - update_token_ids: a mask id of 103 / pad id of 0 is replaced by [MASK]/<mask>, [PAD]/<pad>;
 * - build_skiplist: token_to_id of each word, words missing from the vocabulary dropped;
 * - preprocess_texts: Rust `trim()` (Unicode White_Space), to_lowercase if do_lower_case;
 * - encode_batch(texts, add_special_tokens = true) with the Rust tokenizers library;
 * - prepare_batch_from_tokenizer_encodings: truncate to max_length − 1, prefix id at 1, queries
 *   with expansion padded with the mask id at attention 1, others with the pad id at attention 0;
 * - model.onnx (not model_int8.onnx unless int8), inputs by name, output "output";
 * - rows: all of them for expanded queries, else the first real_len + 1 minus skiplist ids
 *   (documents only).
 */
import fs from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { Tokenizer } from "tokenizers";
import { NEXTPLAID_DEFAULTS } from "../../src/colbert/onnx-config.js";

interface NextPlaidConfig {
  query_prefix: string;
  document_prefix: string;
  query_length: number;
  document_length: number;
  do_query_expansion: boolean;
  embedding_dim: number;
  uses_token_type_ids: boolean;
  mask_token_id: number;
  pad_token_id: number;
  skiplist_words: string[];
  query_prefix_id: number | null;
  document_prefix_id: number | null;
  do_lower_case: boolean;
}

// next-plaid-onnx's serde defaults (lib.rs 616-645), kept with the file format's contract.
const DEFAULTS = NEXTPLAID_DEFAULTS;

/** serde: a missing key takes its default (None for the Option prefix ids); a null in a non-Option field is a parse error. */
export function parseNextPlaidConfig(text: string): NextPlaidConfig {
  const raw = JSON.parse(text) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...DEFAULTS, query_prefix_id: null, document_prefix_id: null };
  for (const [k, v] of Object.entries(raw)) {
    if (v === null && k in DEFAULTS) throw new Error(`Failed to parse onnx_config.json: invalid type: null at ${k}`);
    if (k in out || k === "query_prefix_id" || k === "document_prefix_id") out[k] = v;
  }
  return out as unknown as NextPlaidConfig;
}

/** Rust's char::is_whitespace (Unicode White_Space): not U+FEFF, not U+001C–U+001F; U+0085 yes. */
const RUST_WS = "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
export function rustTrim(s: string): string {
  return s.replace(new RegExp(`^[${RUST_WS}]+`), "").replace(new RegExp(`[${RUST_WS}]+$`), "");
}

export interface NextPlaidModel {
  config: NextPlaidConfig;
  encode(texts: string[], isQuery: boolean): Promise<{ rows: number; dim: number; data: Float32Array }[]>;
  close(): Promise<void>;
}

export async function loadNextPlaid(dir: string, int8 = false): Promise<NextPlaidModel> {
  const config = parseNextPlaidConfig(fs.readFileSync(path.join(dir, "onnx_config.json"), "utf8"));
  const tokenizer = Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
  // update_token_ids
  if (config.mask_token_id === 103) config.mask_token_id = tokenizer.tokenToId("[MASK]") ?? tokenizer.tokenToId("<mask>") ?? 103;
  if (config.pad_token_id === 0) config.pad_token_id = tokenizer.tokenToId("[PAD]") ?? tokenizer.tokenToId("<pad>") ?? 0;
  // build_skiplist
  const skiplist = new Set<number>();
  for (const w of config.skiplist_words) {
    const id = tokenizer.tokenToId(w);
    if (id !== null) skiplist.add(id);
  }
  const session = await ort.InferenceSession.create(path.join(dir, int8 ? "model_int8.onnx" : "model.onnx"));

  async function encode(texts: string[], isQuery: boolean) {
    const processed = texts.map((t) => (config.do_lower_case ? rustTrim(t).toLowerCase() : rustTrim(t)));
    const encodings = await tokenizer.encodeBatch(processed, { addSpecialTokens: true });
    const [prefixStr, prefixIdOpt, maxLength] = isQuery
      ? [config.query_prefix, config.query_prefix_id, config.query_length]
      : [config.document_prefix, config.document_prefix_id, config.document_length];
    const prefixId = prefixIdOpt ?? tokenizer.tokenToId(prefixStr);
    if (prefixId === null) throw new Error(`Prefix token '${prefixStr}' not found in tokenizer vocabulary`);
    const truncateLimit = Math.max(0, maxLength - 1);
    const realLens = encodings.map((e) => {
      const m = e.getAttentionMask();
      let n = 0;
      while (n < m.length && m[n] !== 0) n++;
      return Math.max(1, n);
    });
    let batchMaxLen = Math.max(...realLens.map((r) => (r > truncateLimit ? maxLength : r + 1)));
    const expand = isQuery && config.do_query_expansion;
    if (expand) batchMaxLen = maxLength;
    const b = encodings.length;
    const ids = new BigInt64Array(b * batchMaxLen).fill(BigInt(expand ? config.mask_token_id : config.pad_token_id));
    const mask = new BigInt64Array(b * batchMaxLen).fill(expand ? 1n : 0n);
    const types = new BigInt64Array(b * batchMaxLen);
    const tokenIds: number[][] = [];
    const originalLengths: number[] = [];
    encodings.forEach((e, row) => {
      const src = e.getIds();
      const srcMask = e.getAttentionMask();
      const srcTypes = e.getTypeIds();
      const realLen = realLens[row]!;
      const keepSep = realLen > truncateLimit;
      const contentPrefixLen = keepSep ? Math.max(0, truncateLimit - 1) : realLen;
      originalLengths.push(keepSep ? maxLength : realLen + 1);
      const start = row * batchMaxLen;
      ids[start] = BigInt(src[0]!);
      mask[start] = BigInt(srcMask[0]!);
      types[start] = BigInt(srcTypes[0]!);
      ids[start + 1] = BigInt(prefixId);
      mask[start + 1] = 1n;
      types[start + 1] = 0n;
      const tok = [src[0]!, prefixId];
      let w = start + 2;
      for (let i = 1; i < contentPrefixLen; i++, w++) {
        ids[w] = BigInt(src[i]!);
        mask[w] = BigInt(srcMask[i]!);
        types[w] = BigInt(srcTypes[i]!);
        tok.push(src[i]!);
      }
      if (keepSep) {
        ids[w] = BigInt(src[realLen - 1]!);
        mask[w] = BigInt(srcMask[realLen - 1]!);
        types[w] = BigInt(srcTypes[realLen - 1]!);
        tok.push(src[realLen - 1]!);
      }
      tokenIds.push(tok);
    });
    const dims = [b, batchMaxLen];
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor("int64", ids, dims), attention_mask: new ort.Tensor("int64", mask, dims) };
    if (config.uses_token_type_ids) feeds["token_type_ids"] = new ort.Tensor("int64", types, dims);
    const out = (await session.run(feeds))["output"]!;
    const dim = (out.dims as number[])[2]!;
    const data = out.data as Float32Array;
    return encodings.map((_, i) => {
      const base = i * batchMaxLen * dim;
      if (expand) return { rows: batchMaxLen, dim, data: data.slice(base, base + batchMaxLen * dim) };
      const keep = tokenIds[i]!.slice(0, originalLengths[i]).flatMap((id, j) => (!isQuery && skiplist.has(id) ? [] : [j]));
      const rows = new Float32Array(keep.length * dim);
      keep.forEach((j, r) => rows.set(data.subarray(base + j * dim, base + (j + 1) * dim), r * dim));
      return { rows: keep.length, dim, data: rows };
    });
  }

  return { config, encode, close: () => session.release() };
}
