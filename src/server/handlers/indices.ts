/** Index management: list, declare, info, delete, config (next-plaid-api handlers/documents.rs). */
import { badRequest, Reply, unprocessable } from "../http.js";
import type { RequestContext, ServerContext } from "../context.js";
import type { IndexConfig } from "../../plaid/types.js";

export async function listIndices(ctx: ServerContext) {
  return ctx.indices().list();
}

export async function declareIndex(ctx: ServerContext, { body }: RequestContext) {
  const name = body["name"];
  if (typeof name !== "string") throw unprocessable("name is required and must be a string");
  if (name === "") throw badRequest("Index name cannot be empty");
  const raw = body["config"] ?? {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw unprocessable("config must be an object");
  const c = raw as Record<string, unknown>;
  const config: Partial<IndexConfig> = {};
  const int = (field: string, min: number) => {
    const v = c[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw unprocessable(`config.${field} must be an integer ≥ ${min}`);
    return v;
  };
  const nbits = int("nbits", 1);
  if (nbits !== undefined && nbits !== 2 && nbits !== 4) throw badRequest("config.nbits must be 2 or 4");
  if (nbits !== undefined) config.nbits = nbits;
  const batch = int("batch_size", 1);
  if (batch !== undefined) config.batch_size = batch;
  const seed = int("seed", 0);
  if (seed !== undefined) config.seed = seed;
  const sfs = int("start_from_scratch", 0);
  if (sfs !== undefined) config.start_from_scratch = sfs;
  const max = int("max_documents", 1);
  if (max !== undefined) config.max_documents = max;
  const fts = c["fts_tokenizer"];
  if (fts !== undefined && fts !== null) {
    if (fts !== "unicode61" && fts !== "trigram") throw badRequest("config.fts_tokenizer must be 'unicode61' or 'trigram'");
    config.fts_tokenizer = fts;
  }
  const stored = await ctx.indices().declare(name, config);
  return { name, config: stored, message: "Index declared. Use POST /indices/{name}/update to add documents." };
}

export async function indexInfo(ctx: ServerContext, { params }: RequestContext) {
  return ctx.indices().info(params["name"]!);
}

export async function deleteIndex(ctx: ServerContext, { params }: RequestContext) {
  const name = params["name"]!;
  await ctx.updates().cancel(name);
  await ctx.indices().drop(name);
  return { deleted: true, name };
}

export async function updateIndexConfig(ctx: ServerContext, { params, body }: RequestContext) {
  const v = body["max_documents"];
  if (v !== undefined && v !== null && (typeof v !== "number" || !Number.isInteger(v) || v < 0)) throw unprocessable("max_documents must be a non-negative integer or null");
  const max = typeof v === "number" ? v : null;
  const config = await ctx.indices().setMaxDocuments(params["name"]!, max);
  return new Reply(200, {
    name: params["name"],
    config,
    message: max === null ? "max_documents limit removed (unlimited)." : `max_documents set to ${max}. Eviction will occur on next document addition if over limit.`,
  });
}
