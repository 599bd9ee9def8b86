/** Metadata reads and updates (next-plaid-api handlers/metadata.rs). */
import { badRequest, optionalArray, optionalCount, requiredString, unprocessable } from "../http.js";
import type { RequestContext, ServerContext } from "../context.js";

/** Most document ids one metadata request may name. */
const MAX_IDS = 1_000_000;

function ids(body: Record<string, unknown>, required: boolean): number[] | undefined {
  const v = body["document_ids"];
  if (v === undefined || v === null) {
    if (required) throw unprocessable("document_ids is required");
    return undefined;
  }
  if (Array.isArray(v) && v.length > MAX_IDS) throw unprocessable(`document_ids holds ${v.length} ids; at most ${MAX_IDS} are accepted per request`);
  if (!Array.isArray(v) || v.some((x) => typeof x !== "number" || !Number.isInteger(x))) throw unprocessable("document_ids must be an array of integers");
  return v as number[];
}

export async function metadataAll(ctx: ServerContext, { params }: RequestContext) {
  const metadata = await ctx.indices().metadataAll(params["name"]!);
  return { metadata, count: metadata.length };
}

export async function metadataCount(ctx: ServerContext, { params }: RequestContext) {
  return ctx.indices().metadataCount(params["name"]!);
}

export async function metadataCheck(ctx: ServerContext, { params, body }: RequestContext) {
  const wanted = ids(body, true)!;
  const name = params["name"]!;
  await ctx.indices().info(name);
  if (wanted.length === 0) return { existing_ids: [], missing_ids: [], existing_count: 0, missing_count: 0 };
  const found = new Set((await ctx.indices().metadataGet(name, wanted, undefined, [], undefined)).map((r) => Number(r["_subset_"])));
  const existing = wanted.filter((id) => found.has(id));
  const missing = wanted.filter((id) => !found.has(id));
  return { existing_ids: existing, missing_ids: missing, existing_count: existing.length, missing_count: missing.length };
}

export async function metadataQuery(ctx: ServerContext, { params, body }: RequestContext) {
  const condition = requiredString(body, "condition");
  const document_ids = await ctx.indices().matching(params["name"]!, condition, optionalArray(body, "parameters") ?? []);
  return { document_ids, count: document_ids.length };
}

export async function metadataGet(ctx: ServerContext, { params, body }: RequestContext) {
  const docIds = ids(body, false);
  const c = body["condition"];
  if (c !== undefined && c !== null && typeof c !== "string") throw unprocessable("condition must be a string");
  const condition = typeof c === "string" ? c : undefined;
  if (docIds && condition !== undefined) throw badRequest("Cannot specify both document_ids and condition");
  const metadata = await ctx.indices().metadataGet(params["name"]!, docIds, condition, optionalArray(body, "parameters") ?? [], optionalCount(body, "limit"));
  return { metadata, count: metadata.length };
}

export async function metadataUpdate(ctx: ServerContext, { params, body }: RequestContext) {
  const condition = requiredString(body, "condition");
  const updates = body["updates"];
  if (updates === undefined) throw unprocessable("updates is required");
  if (!updates || typeof updates !== "object" || Array.isArray(updates)) throw badRequest("Updates must be a JSON object");
  const updated = await ctx.indices().metadataUpdate(params["name"]!, condition, optionalArray(body, "parameters") ?? [], updates as Record<string, unknown>);
  return { updated };
}
