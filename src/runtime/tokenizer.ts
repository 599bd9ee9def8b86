/**
 * PyLate-exact tokenization from an export folder (tokenizer.json + onnx_config.json): strip
 * (and lower-case if the model says so), tokenize with the template's special tokens, truncate the
 * content so the result has length − 1 tokens, insert the prefix id after the first token, and
 * pad expanded queries with the mask id.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { TokenizerVocab } from "../colbert/tokenizer.js";
import type { OnnxConfig } from "../export/files.js";

export type InputType = "query" | "document";

export interface TokenizedText {
  ids: number[];
  /** 1 for attended positions. */
  mask: number[];
}

export class ColbertTokenizer {
  private readonly tokenizer: Tokenizer;
  /** Special tokens the template puts before and after a single sequence. */
  private readonly head: number[];
  private readonly tail: number[];
  readonly skiplistIds: Set<number>;

  constructor(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown>,
    readonly config: OnnxConfig,
  ) {
    this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    const probe = "a";
    const bare: number[] = this.tokenizer.encode(probe, { add_special_tokens: false }).ids;
    const full: number[] = this.tokenizer.encode(probe, { add_special_tokens: true }).ids;
    const at = full.findIndex((_, i) => bare.every((id, j) => full[i + j] === id));
    this.head = full.slice(0, at);
    this.tail = full.slice(at + bare.length);
    // Each skiplist word's id by vocabulary lookup; unknown words map to unk (PyLate's behaviour).
    const vocab = new TokenizerVocab(tokenizerJson as never);
    const unk = vocab.unkId();
    this.skiplistIds = new Set(
      config.skiplist_words.map((w) => vocab.id(w) ?? unk).filter((id): id is number => id !== null && id !== undefined),
    );
  }

  maxLength(type: InputType): number {
    return type === "query" ? this.config.query_length : this.config.document_length;
  }

  encode(text: string, type: InputType, maxLength = this.maxLength(type)): TokenizedText {
    let t = text.trim();
    if (this.config.do_lower_case) t = t.toLowerCase();
    const content = this.tokenizer.encode(t, { add_special_tokens: false }).ids;
    const budget = Math.max(0, maxLength - 1 - this.head.length - this.tail.length);
    const ids = [...this.head, ...content.slice(0, budget), ...this.tail];
    const prefix = type === "query" ? this.config.query_prefix_id : this.config.document_prefix_id;
    if (prefix !== null) ids.splice(1, 0, prefix);
    const mask = ids.map(() => 1);
    if (type === "query" && this.config.do_query_expansion) {
      const fill = this.config.mask_token_id ?? this.config.pad_token_id ?? 0;
      const attend = this.config.attend_to_expansion_tokens ? 1 : 0;
      while (ids.length < maxLength) {
        ids.push(fill);
        mask.push(attend);
      }
    }
    return { ids, mask };
  }

  /** Which rows of an encoded text PyLate returns. */
  keepRow(type: InputType, id: number, attended: number): boolean {
    if (type === "query") return this.config.do_query_expansion || attended === 1;
    return attended === 1 && !this.skiplistIds.has(id);
  }
}
