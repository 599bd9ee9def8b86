/** Search with embeddings or texts, filtered, keyword and hybrid (next-plaid-api handlers/search.rs). */
import { badRequest, optionalArray, requiredString, stringList, unprocessable } from "../http.js";
import { documentEmbedding } from "../embeddings.js";
import type { RequestContext, ServerContext } from "../context.js";
import type { Query, SearchRequest } from "../../plaid/types.js";
import type { Embedding } from "../../runtime/encoder.js";

interface Options {
  /** The route's own filter fields (search/filtered*). */
  filterRequired?: boolean;
  /** search_with_encoding has no filter fields, search/filtered* no subset. */
  allowFilter?: boolean;
  allowSubset?: boolean;
}

/**
 * Largest search parameters accepted: each sizes work and memory per query, so a small body could
 * otherwise ask for gigabytes (422, before anything is allocated). Far beyond useful values:
 * n_full_scores is exhaustive long before 1 M on any index this server holds per query.
 */
export const SEARCH_LIMITS = { top_k: 100_000, n_ivf_probe: 65_536, n_full_scores: 1_000_000, subset: 1_000_000 } as const;

function paramsOf(body: Record<string, unknown>): SearchRequest["params"] {
  const p = body["params"] ?? {};
  if (typeof p !== "object" || Array.isArray(p)) throw unprocessable("params must be an object");
  const o = p as Record<string, unknown>;
  const int = (field: string, dflt: number) => {
    const v = o[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw unprocessable(`params.${field} must be a non-negative integer`);
    const max = SEARCH_LIMITS[field as keyof typeof SEARCH_LIMITS];
    if (v > max) throw unprocessable(`params.${field} is ${v}; at most ${max} is accepted`);
    return v;
  };
  const thr = o["centroid_score_threshold"];
  if (thr !== undefined && thr !== null && (typeof thr !== "number" || !Number.isFinite(thr))) throw unprocessable("params.centroid_score_threshold must be a number or null");
  return {
    topK: int("top_k", 10),
    nIvfProbe: int("n_ivf_probe", 8),
    nFullScores: int("n_full_scores", 4096),
    centroidScoreThreshold: typeof thr === "number" ? thr : undefined,
  };
}

function request(body: Record<string, unknown>, queries: Embedding[], opts: Options): SearchRequest {
  const textQuery = optionalArray(body, "text_query");
  if (textQuery && textQuery.some((t) => typeof t !== "string")) throw unprocessable("text_query must be an array of strings");
  if (queries.length === 0 && (!textQuery || textQuery.length === 0)) {
    throw badRequest("At least one of 'queries' (embeddings) or 'text_query' (keyword) must be provided");
  }
  const alpha = body["alpha"] ?? 0.75;
  if (typeof alpha !== "number" || !(alpha >= 0 && alpha <= 1)) throw badRequest("alpha must be between 0.0 and 1.0");
  const fusion = body["fusion"] ?? "relative_score";
  if (fusion !== "rrf" && fusion !== "relative_score") throw badRequest("fusion must be 'rrf' or 'relative_score'");
  const hybrid = queries.length > 0 && textQuery && textQuery.length > 0;
  if (hybrid && queries.length !== 1) {
    throw badRequest(`Hybrid search requires exactly 1 query embedding (got ${queries.length}). text_query is a single string and can only fuse with one semantic query.`);
  }
  if (hybrid && textQuery.length !== queries.length) throw badRequest(`queries length (${queries.length}) must match text_query length (${textQuery.length}) in hybrid mode`);
  let subset: number[] | undefined;
  if (opts.allowSubset !== false) {
    const s = optionalArray(body, "subset");
    if (s && s.length > SEARCH_LIMITS.subset) throw unprocessable(`subset holds ${s.length} ids; at most ${SEARCH_LIMITS.subset} are accepted (use filter_condition to restrict a search to more documents)`);
    if (s && s.some((x) => typeof x !== "number" || !Number.isInteger(x))) throw unprocessable("subset must be an array of document ids");
    subset = s as number[] | undefined;
  }
  let filterCondition: string | undefined;
  let filterParameters: unknown[] = [];
  if (opts.allowFilter !== false) {
    const f = body["filter_condition"];
    if (opts.filterRequired) filterCondition = requiredString(body, "filter_condition");
    else if (f !== undefined && f !== null) {
      if (typeof f !== "string") throw unprocessable("filter_condition must be a string");
      filterCondition = f;
    }
    filterParameters = optionalArray(body, "filter_parameters") ?? [];
  }
  return {
    queries: queries.map((q): Query => ({ data: q.data, dim: q.dim })),
    params: paramsOf(body),
    subset,
    textQuery: textQuery as string[] | undefined,
    alpha,
    fusion,
    filterCondition,
    filterParameters,
  };
}

async function run(ctx: ServerContext, name: string, r: SearchRequest) {
  const results = await ctx.indices().search(name, r);
  return { results, num_queries: results.length };
}

function embeddingQueries(body: Record<string, unknown>, required: boolean): Embedding[] {
  const q = body["queries"];
  if (q === undefined || q === null) {
    if (required) throw unprocessable("queries is required");
    return [];
  }
  if (!Array.isArray(q)) throw unprocessable("queries must be an array");
  if (required && q.length === 0) throw badRequest("No queries provided");
  return q.map((x) => documentEmbedding(x, "query"));
}

/** POST /indices/{name}/search */
export async function search(ctx: ServerContext, { params, body }: RequestContext) {
  return run(ctx, params["name"]!, request(body, embeddingQueries(body, false), {}));
}

/** POST /indices/{name}/search/filtered */
export async function searchFiltered(ctx: ServerContext, { params, body }: RequestContext) {
  return run(ctx, params["name"]!, request(body, embeddingQueries(body, true), { filterRequired: true, allowSubset: false }));
}

async function encodedQueries(ctx: ServerContext, body: Record<string, unknown>, signal: AbortSignal): Promise<Embedding[]> {
  const texts = stringList(body["queries"], "queries", ctx.maxTexts);
  return ctx.encode(texts, "query", undefined, signal);
}

/** POST /indices/{name}/search_with_encoding */
export async function searchWithEncoding(ctx: ServerContext, { params, body, signal }: RequestContext) {
  if (Array.isArray(body["queries"]) && body["queries"].length === 0) throw badRequest("No queries provided");
  return run(ctx, params["name"]!, request(body, await encodedQueries(ctx, body, signal), { allowFilter: false }));
}

/** POST /indices/{name}/search/filtered_with_encoding */
export async function searchFilteredWithEncoding(ctx: ServerContext, { params, body, signal }: RequestContext) {
  if (Array.isArray(body["queries"]) && body["queries"].length === 0) throw badRequest("No queries provided");
  requiredString(body, "filter_condition");
  return run(ctx, params["name"]!, request(body, await encodedQueries(ctx, body, signal), { filterRequired: true, allowSubset: false }));
}
