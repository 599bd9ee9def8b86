/**
 * PyLate's ColBERT settings, resolved the way PyLate resolves them:
 * explicit flag > config_sentence_transformers.json (or Stanford artifact.metadata) > default.
 * `""` is a real value (a prefix-free model); `null` / absent means "use the default".
 */

export interface ColbertSettings {
  queryPrefix: string;
  documentPrefix: string;
  queryLength: number;
  documentLength: number;
  doQueryExpansion: boolean;
  attendToExpansionTokens: boolean;
  skiplistWords: string[];
  doLowerCase: boolean;
}

export type SettingsOverrides = Partial<ColbertSettings>;

/** string.punctuation, PyLate's default skiplist. */
export const DEFAULT_SKIPLIST = Array.from("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

export const DEFAULTS: ColbertSettings = {
  queryPrefix: "[Q] ",
  documentPrefix: "[D] ",
  queryLength: 32,
  documentLength: 180,
  doQueryExpansion: true,
  attendToExpansionTokens: false,
  skiplistWords: DEFAULT_SKIPLIST,
  doLowerCase: false,
};

/** Keys of config_sentence_transformers.json, by setting. */
const ST_KEYS: Record<Exclude<keyof ColbertSettings, "doLowerCase">, string> = {
  queryPrefix: "query_prefix",
  documentPrefix: "document_prefix",
  queryLength: "query_length",
  documentLength: "document_length",
  doQueryExpansion: "do_query_expansion",
  attendToExpansionTokens: "attend_to_expansion_tokens",
  skiplistWords: "skiplist_words",
};

/** Settings found in config_sentence_transformers.json. */
export function settingsFromSentenceTransformers(config: Record<string, unknown>): SettingsOverrides {
  const out: Record<string, unknown> = {};
  for (const [setting, key] of Object.entries(ST_KEYS)) {
    const v = config[key];
    if (v !== undefined && v !== null) out[setting] = v;
  }
  return out as SettingsOverrides;
}

/** Settings found in a Stanford-NLP ColBERT artifact.metadata. */
export function settingsFromStanfordMetadata(meta: Record<string, unknown>): SettingsOverrides {
  const out: SettingsOverrides = {};
  if (typeof meta["query_token_id"] === "string") out.queryPrefix = meta["query_token_id"];
  if (typeof meta["doc_token_id"] === "string") out.documentPrefix = meta["doc_token_id"];
  if (typeof meta["query_maxlen"] === "number") out.queryLength = meta["query_maxlen"];
  if (typeof meta["doc_maxlen"] === "number") out.documentLength = meta["doc_maxlen"];
  if (typeof meta["attend_to_mask_tokens"] === "boolean") out.attendToExpansionTokens = meta["attend_to_mask_tokens"];
  return out;
}

/** Stanford ColBERT's own defaults (its prefixes are the [unused0]/[unused1] vocabulary tokens). */
export const STANFORD_DEFAULTS: SettingsOverrides = { queryPrefix: "[unused0]", documentPrefix: "[unused1]" };

/** Applies layers from lowest to highest precedence over the defaults. */
export function resolveSettings(...layers: (SettingsOverrides | undefined)[]): ColbertSettings {
  const s: ColbertSettings = { ...DEFAULTS };
  for (const layer of layers) {
    if (!layer) continue;
    for (const [k, v] of Object.entries(layer)) {
      if (v !== undefined && v !== null) (s as unknown as Record<string, unknown>)[k] = v;
    }
  }
  if (!s.doQueryExpansion) s.attendToExpansionTokens = false;
  return s;
}

/** config_sentence_transformers.json content for resolved settings. */
export function settingsToSentenceTransformers(s: ColbertSettings): Record<string, unknown> {
  return {
    query_prefix: s.queryPrefix,
    document_prefix: s.documentPrefix,
    query_length: s.queryLength,
    document_length: s.documentLength,
    attend_to_expansion_tokens: s.attendToExpansionTokens,
    skiplist_words: s.skiplistWords,
    do_query_expansion: s.doQueryExpansion,
  };
}
