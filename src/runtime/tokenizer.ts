/**
 * PyLate-exact tokenization from an export folder (tokenizer.json + onnx_config.json): strip with
 * Python's semantics (and lower-case if the model says so), tokenize with the template's special
 * tokens, truncate the content so the result has length − 1 tokens (length when the prefix is
 * empty: PyLate reserves no slot then), insert the prefix id after the first token, and pad
 * expanded queries with the mask id.
 *
 * Tokens come from the Rust `tokenizers` library itself (Hugging Face's Node binding), the library
 * PyLate and NextPlaid run. Where its native code cannot load, the pure-JavaScript
 * `@huggingface/tokenizers` is used with a warning: it matches on ordinary text but splits on
 * JavaScript's notion of whitespace (U+FEFF, U+0085 differ), so it is not exact on every input.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Tokenizer as NativeTokenizer } from "tokenizers";
import { Tokenizer as JsTokenizer } from "@huggingface/tokenizers";
import { TokenizerVocab } from "../colbert/tokenizer.js";
import { preprocessText } from "../colbert/text.js";
import type { OnnxConfig } from "../colbert/onnx-config.js";
import { readExportJson } from "../util/fs.js";

export type InputType = "query" | "document";

export interface TokenizedText {
  ids: number[];
  /** 1 for attended positions. */
  mask: number[];
}

/** Which library turns text into ids. */
export type TokenizerBackend = "native" | "js";

/** Text → ids with the template's special tokens, no truncation, no padding. */
interface TextTokenizer {
  readonly backend: TokenizerBackend;
  encode(texts: string[]): Promise<number[][]>;
  encodeBare(text: string): Promise<number[]>;
}

const require = createRequire(import.meta.url);
let nativeModule: typeof import("tokenizers") | undefined | null;

/** The native binding, or null where it cannot load (an unsupported platform, a browser bundle). */
function loadNative(): typeof import("tokenizers") | null {
  if (nativeModule === undefined) {
    // The Rust library would otherwise tokenize a batch on its own thread pool, one thread per core,
    // competing with onnxruntime's threads for the same cores: measured on 2 cores, serving ran
    // 16 % slower (6.6 vs 7.8 docs/s). A batch is tokenized off the JavaScript thread either way
    // (the binding's encodeBatch is an async task), and tokenizing is ~1 % of encoding time.
    process.env["TOKENIZERS_PARALLELISM"] ??= "false";
    try {
      nativeModule = require("tokenizers") as typeof import("tokenizers");
    } catch {
      nativeModule = null;
    }
  }
  return nativeModule;
}

class RustTokenizer implements TextTokenizer {
  readonly backend = "native";
  private readonly tok: NativeTokenizer;
  constructor(native: typeof import("tokenizers"), json: Record<string, unknown>) {
    this.tok = native.Tokenizer.fromString(JSON.stringify(json));
    // A tokenizer.json from elsewhere may carry settings that would cut or pad before PyLate's rules.
    this.tok.disableTruncation();
    this.tok.disablePadding();
  }
  async encode(texts: string[]): Promise<number[][]> {
    const encodings = await this.tok.encodeBatch(texts, { addSpecialTokens: true });
    return encodings.map((e) => e.getIds());
  }
  async encodeBare(text: string): Promise<number[]> {
    return (await this.tok.encode(text, null, { addSpecialTokens: false })).getIds();
  }
}

class PureJsTokenizer implements TextTokenizer {
  readonly backend = "js";
  private readonly tok: JsTokenizer;
  constructor(json: Record<string, unknown>, config: Record<string, unknown>) {
    this.tok = new JsTokenizer(json, config);
  }
  async encode(texts: string[]): Promise<number[][]> {
    return texts.map((t) => this.tok.encode(t, { add_special_tokens: true }).ids);
  }
  async encodeBare(text: string): Promise<number[]> {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }
}

export interface TokenizerOptions {
  /** Force a backend (tests, measurements); default: native, else js with a warning. */
  backend?: TokenizerBackend;
  onWarning?: (message: string) => void;
}

export class ColbertTokenizer {
  readonly skiplistIds: Set<number>;

  private constructor(
    private readonly text: TextTokenizer,
    /** Special tokens the template puts before and after a single sequence. */
    private readonly head: number,
    private readonly tail: number,
    readonly config: OnnxConfig,
    vocab: TokenizerVocab,
  ) {
    // Each skiplist word's id by vocabulary lookup; unknown words map to unk (PyLate's behaviour).
    const unk = vocab.unkId();
    this.skiplistIds = new Set(config.skiplist_words.map((w) => vocab.id(w) ?? unk).filter((id): id is number => id !== null && id !== undefined));
  }

  static async create(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown>,
    config: OnnxConfig,
    opts: TokenizerOptions = {},
  ): Promise<ColbertTokenizer> {
    const native = opts.backend === "js" ? null : loadNative();
    if (!native && opts.backend === "native") throw new Error("the native tokenizers binding cannot load on this platform");
    if (!native && opts.backend === undefined) {
      (opts.onWarning ?? ((m: string) => process.emitWarning(m)))(
        "The native tokenizers library cannot load here; using the pure-JavaScript tokenizer, which may differ from PyLate on unusual whitespace (U+FEFF, U+0085)",
      );
    }
    const text: TextTokenizer = native ? new RustTokenizer(native, tokenizerJson) : new PureJsTokenizer(tokenizerJson, tokenizerConfig);
    // The template's special tokens around a one-word text: what truncation must keep.
    const probe = "a";
    const bare = await text.encodeBare(probe);
    const [full] = await text.encode([probe]);
    const at = full!.findIndex((_, i) => bare.every((id, j) => full![i + j] === id));
    const head = Math.max(0, at);
    const tail = Math.max(0, full!.length - head - bare.length);
    return new ColbertTokenizer(text, head, tail, config, new TokenizerVocab(tokenizerJson as never));
  }

  /** From an export folder's tokenizer.json (and tokenizer_config.json, for the pure-JS backend). */
  static async fromFolder(dir: string, config: OnnxConfig, opts: TokenizerOptions = {}): Promise<ColbertTokenizer> {
    const optional = path.join(dir, "tokenizer_config.json");
    return ColbertTokenizer.create(
      readExportJson<Record<string, unknown>>(path.join(dir, "tokenizer.json")),
      fs.existsSync(optional) ? readExportJson<Record<string, unknown>>(optional) : {},
      config,
      opts,
    );
  }

  get backend(): TokenizerBackend {
    return this.text.backend;
  }

  maxLength(type: InputType): number {
    return type === "query" ? this.config.query_length : this.config.document_length;
  }

  prefixId(type: InputType): number | null {
    return type === "query" ? this.config.query_prefix_id : this.config.document_prefix_id;
  }

  async encode(text: string, type: InputType, maxLength = this.maxLength(type)): Promise<TokenizedText> {
    return (await this.encodeBatch([text], type, maxLength))[0]!;
  }

  async encodeBatch(texts: string[], type: InputType, maxLength = this.maxLength(type)): Promise<TokenizedText[]> {
    const prefix = this.prefixId(type);
    // PyLate truncates to length − 1 so the inserted prefix fits; without a prefix, to the length.
    const limit = prefix === null ? maxLength : maxLength - 1;
    const all = await this.text.encode(texts.map((t) => preprocessText(t, this.config.do_lower_case)));
    return all.map((full) => {
      let ids = full;
      if (ids.length > limit) {
        const keep = Math.max(0, limit - this.head - this.tail);
        ids = [...full.slice(0, this.head + keep), ...full.slice(full.length - this.tail)];
      }
      if (prefix !== null) ids.splice(1, 0, prefix);
      const mask = ids.map(() => 1);
      if (type === "query" && this.config.do_query_expansion) {
        const attend = this.config.attend_to_expansion_tokens ? 1 : 0;
        while (ids.length < maxLength) {
          ids.push(this.config.mask_token_id);
          mask.push(attend);
        }
      }
      return { ids, mask };
    });
  }

  /** Which rows of an encoded text PyLate returns. */
  keepRow(type: InputType, id: number, attended: number): boolean {
    if (type === "query") return this.config.do_query_expansion || attended === 1;
    return attended === 1 && !this.skiplistIds.has(id);
  }
}
