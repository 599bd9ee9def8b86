/**
 * The exported tokenizer: the source tokenizer.json with PyLate's prefix tokens added exactly as
 * PyLate adds them, and the ids a ColBERT runtime needs (mask, pad, prefixes, unk).
 */
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../errors.js";
import type { ColbertSettings } from "./settings.js";

interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

type TokenizerJson = {
  added_tokens: AddedTokenJson[];
  model: { type?: string; vocab: Record<string, number> | [string, number][]; unk_token?: string | null; unk_id?: number | null };
  truncation: unknown;
  padding: unknown;
  [k: string]: unknown;
};

export interface PreparedTokenizer {
  /** tokenizer.json to write. */
  json: TokenizerJson;
  /** tokenizer_config.json to write. */
  config: Record<string, unknown>;
  /** len(tokenizer) after the prefixes: the embedding rows. */
  length: number;
  /** Prefix tokens that had to be added. */
  added: string[];
  maskTokenId: number | null;
  padTokenId: number | null;
  unkTokenId: number | null;
  queryPrefixId: number | null;
  documentPrefixId: number | null;
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

export class TokenizerVocab {
  private readonly vocab = new Map<string, number>();
  private readonly added = new Map<string, number>();
  readonly modelSize: number;

  constructor(readonly json: TokenizerJson) {
    const v = json.model.vocab;
    if (Array.isArray(v)) v.forEach(([piece], i) => this.vocab.set(piece, i));
    else for (const [piece, id] of Object.entries(v)) this.vocab.set(piece, id);
    this.modelSize = this.vocab.size;
    for (const t of json.added_tokens ?? []) this.added.set(t.content, t.id);
  }

  /** convert_tokens_to_ids for one token, or undefined. */
  id(token: string): number | undefined {
    return this.added.get(token) ?? this.vocab.get(token);
  }

  /** len(tokenizer): distinct ids of the model vocabulary and the added tokens. */
  get length(): number {
    const ids = new Set<number>(this.vocab.values());
    for (const id of this.added.values()) ids.add(id);
    return ids.size;
  }

  /** The id the tokenizers library gives a newly added token. */
  nextId(): number {
    const maxAdded = Math.max(-1, ...this.added.values());
    return maxAdded >= this.modelSize ? maxAdded + 1 : this.modelSize;
  }

  add(content: string): number {
    const id = this.nextId();
    const token: AddedTokenJson = { id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false };
    this.json.added_tokens.push(token);
    this.added.set(content, id);
    return id;
  }

  unkId(): number | null {
    const m = this.json.model;
    if (typeof m.unk_id === "number") return m.unk_id;
    if (typeof m.unk_token === "string") return this.id(m.unk_token) ?? null;
    return null;
  }

  /** The unknown token's string (WordPiece/BPE name it; Unigram gives its id). */
  unkToken(): string | null {
    const m = this.json.model;
    if (typeof m.unk_token === "string") return m.unk_token;
    if (typeof m.unk_id === "number") return this.token(m.unk_id) ?? null;
    return null;
  }

  /** convert_ids_to_tokens for one id, or undefined. */
  token(id: number): string | undefined {
    for (const [t, i] of this.added) if (i === id) return t;
    const v = this.json.model.vocab;
    if (Array.isArray(v)) return v[id]?.[0];
    for (const [t, i] of this.vocab) if (i === id) return t;
    return undefined;
  }
}

export function readTokenizerJson(dir: string): TokenizerJson {
  const file = path.join(dir, "tokenizer.json");
  if (!fs.existsSync(file)) {
    throw new UserError(`No tokenizer.json in ${dir}: this tool needs a fast (Rust) tokenizer file; save one with AutoTokenizer.from_pretrained(...).save_pretrained(...)`);
  }
  let json: TokenizerJson;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8")) as TokenizerJson;
  } catch (e) {
    throw new UserError(`Unreadable tokenizer.json in ${dir} (${(e as Error).message}); re-download or re-save the tokenizer`);
  }
  if (!json || typeof json !== "object" || !json.model || typeof json.model.vocab !== "object" || json.model.vocab === null) {
    throw new UserError(`Unreadable tokenizer.json in ${dir}: it has no model vocabulary; re-download or re-save the tokenizer`);
  }
  json.added_tokens ??= [];
  return json;
}

export function prepareTokenizer(dir: string, settings: ColbertSettings): PreparedTokenizer {
  const json = readTokenizerJson(dir);
  const configFile = path.join(dir, "tokenizer_config.json");
  const config = fs.existsSync(configFile) ? (JSON.parse(fs.readFileSync(configFile, "utf8")) as Record<string, unknown>) : {};
  const specialMapFile = path.join(dir, "special_tokens_map.json");
  const specialMap = fs.existsSync(specialMapFile) ? (JSON.parse(fs.readFileSync(specialMapFile, "utf8")) as Record<string, unknown>) : {};
  const special = (key: string) => tokenString(config[key]) ?? tokenString(specialMap[key]);

  const vocab = new TokenizerVocab(json);
  const added: string[] = [];
  const prefixId = (prefix: string): number | null => {
    if (prefix === "") return null;
    const known = vocab.id(prefix);
    if (known !== undefined) return known;
    added.push(prefix);
    return vocab.add(prefix);
  };
  const queryPrefixId = prefixId(settings.queryPrefix);
  const documentPrefixId = prefixId(settings.documentPrefix);

  const idOf = (key: string): number | null => {
    const t = special(key);
    return t === undefined ? null : (vocab.id(t) ?? null);
  };
  const maskTokenId = idOf("mask_token");
  const padTokenId = maskTokenId ?? idOf("eos_token") ?? idOf("pad_token");

  // No consumer should inherit stale truncation/padding: the runtime applies PyLate's own.
  json.truncation = null;
  json.padding = null;

  if (added.length > 0) {
    const decoder = { ...((config["added_tokens_decoder"] as Record<string, unknown>) ?? {}) };
    for (const content of added) {
      decoder[String(vocab.id(content))] = { content, lstrip: false, normalized: true, rstrip: false, single_word: false, special: false };
    }
    config["added_tokens_decoder"] = decoder;
  }

  return {
    json,
    config,
    length: vocab.length,
    added,
    maskTokenId,
    padTokenId,
    unkTokenId: vocab.unkId(),
    queryPrefixId,
    documentPrefixId,
  };
}
