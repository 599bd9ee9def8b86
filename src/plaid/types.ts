/**
 * The index module's one interface (IndexEngine) and the types that cross it — what a server
 * needs from an index engine. Kept free of runtime dependencies (SQLite, onnxruntime), so code
 * that only talks to an engine (the HTTP layer, the worker client) loads without them.
 */
import type { Fusion } from "./fusion.js";
import type { Documents, SearchParams } from "./plaid.js";

/** A document's metadata as stored: its JSON keys (booleans as 1/0, arrays/objects as JSON text) and `_subset_`, its id. */
export type MetadataRow = Record<string, unknown>;

export type IndexErrorCode =
  | "INDEX_NOT_FOUND"
  | "INDEX_ALREADY_EXISTS"
  | "INDEX_NOT_DECLARED"
  | "METADATA_NOT_FOUND"
  | "BAD_REQUEST"
  | "DIMENSION_MISMATCH"
  /** The operation ran past its time budget; its thread was stopped (NextPlaid's route timeout answers 408). */
  | "REQUEST_TIMEOUT"
  /** The index's thread restarted under this call (another call ran out of time or memory): retry. */
  | "SERVICE_UNAVAILABLE";

/** An error a client caused; `code` is NextPlaid's error code. */
export class IndexError extends Error {
  constructor(
    readonly code: IndexErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** An index's config.json (NextPlaid's IndexConfigStored). */
export interface IndexConfig {
  nbits: 2 | 4;
  batch_size: number;
  seed: number | null;
  start_from_scratch: number;
  max_documents: number | null;
  fts_tokenizer: string;
}

export const DEFAULT_START_FROM_SCRATCH = 999;

export interface IndexInfo {
  name: string;
  num_documents: number;
  num_embeddings: number;
  num_partitions: number;
  avg_doclen: number;
  dimension: number;
  nbits: number;
  has_metadata: boolean;
  metadata_count: number | null;
  max_documents?: number;
}

/** An index's info, and whether it is built (has documents) or only declared. */
export interface IndexSummary {
  info: IndexInfo;
  built: boolean;
}

export interface Query {
  /** [tokens, dim] */
  data: Float32Array;
  dim: number;
}

export interface SearchRequest {
  queries: Query[];
  params: SearchParams;
  subset?: number[];
  textQuery?: string[];
  alpha: number;
  fusion: Fusion;
  filterCondition?: string;
  filterParameters: unknown[];
}

export interface QueryResult {
  query_id: number;
  document_ids: number[];
  scores: number[];
  metadata: (MetadataRow | null)[];
}

export type Progress = (stage: string, message: string) => void;

/** What a server needs from an index engine. */
export interface IndexEngine {
  /** Names of indices with documents, sorted. */
  list(): string[];
  /** Every index folder: declared (config only) or built. */
  overview(): IndexInfo[];
  /** One index's summary, undefined when there is no such index. */
  summary(name: string): IndexSummary | undefined;
  declare(name: string, config: Partial<IndexConfig>): IndexConfig;
  config(name: string): IndexConfig | undefined;
  setMaxDocuments(name: string, max: number | null): IndexConfig;
  drop(name: string): Promise<void>;
  info(name: string): IndexInfo;
  add(name: string, docs: Documents, dim: number, metadata: unknown[], progress?: Progress): Promise<{ first: number; count: number }>;
  /** Ids matching a filter (validates it: 400 on a bad condition). */
  matching(name: string, condition: string, parameters: unknown[]): number[];
  deleteWhere(name: string, condition: string, parameters: unknown[]): Promise<number>;
  search(name: string, request: SearchRequest): Promise<QueryResult[]>;
  metadataAll(name: string): MetadataRow[];
  metadataCount(name: string): { count: number; has_metadata: boolean };
  metadataGet(name: string, ids: number[] | undefined, condition: string | undefined, parameters: unknown[], limit: number | undefined): MetadataRow[];
  metadataUpdate(name: string, condition: string, parameters: unknown[], updates: Record<string, unknown>): number;
  /** Trains the index's codec again on every document it holds (a bulk build's codec); resolves once committed. */
  retrain(name: string): Promise<void>;
  /** Resolves once no background retrain runs on the index. */
  settle(name: string): Promise<void>;
  close(): Promise<void>;
}

