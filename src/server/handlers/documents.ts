/** Adding and deleting documents, asynchronously (next-plaid-api handlers/documents.rs). */
import { badRequest, HttpError, poolFactorOf, Reply, requiredString, stringList, unprocessable } from "../http.js";
import { documentEmbedding } from "../embeddings.js";
import type { RequestContext, ServerContext } from "../context.js";

function metadataOf(body: Record<string, unknown>, count: number): unknown[] {
  const m = body["metadata"];
  if (!Array.isArray(m)) throw unprocessable("metadata is required: an array with one object per document ({} for a document without metadata)");
  if (m.length !== count) throw badRequest(`Metadata length (${m.length}) must match documents length (${count})`);
  return m;
}

async function declared(ctx: ServerContext, name: string): Promise<void> {
  if (!(await ctx.indices().config(name))) {
    throw new HttpError(404, "INDEX_NOT_DECLARED", `Index '${name}' not declared. Call POST /indices first to declare the index.`);
  }
}

/** POST /indices/{name}/update: embeddings (+ metadata) queued for the index's next batch. */
export async function update(ctx: ServerContext, { params, body }: RequestContext) {
  const name = params["name"]!;
  await declared(ctx, name);
  const docs = body["documents"];
  if (!Array.isArray(docs)) throw unprocessable("documents is required and must be an array");
  const embeddings = docs.map((d) => documentEmbedding(d));
  if (embeddings.length === 0) throw badRequest("At least one document is required");
  const metadata = metadataOf(body, embeddings.length);
  ctx.updates().add(name, { docs: embeddings, metadata });
  return new Reply(202, "Update queued for batching");
}

/** POST /indices/{name}/update_with_encoding: texts encoded as documents, then queued. */
export async function updateWithEncoding(ctx: ServerContext, { params, body, signal }: RequestContext) {
  const name = params["name"]!;
  await declared(ctx, name);
  const texts = stringList(body["documents"], "documents", ctx.maxTexts);
  const metadata = metadataOf(body, texts.length);
  const queues = ctx.updates();
  if (queues.pending(name) >= queues.capacity) throw new HttpError(503, "SERVICE_UNAVAILABLE", `Update queue full for index '${name}'. Max ${queues.capacity} pending items. Retry later.`);
  ctx.model();
  queues.tracker.stage(name, "encoding", "encoding documents");
  let embeddings;
  try {
    embeddings = await ctx.encode(texts, "document", poolFactorOf(body), signal);
  } catch (e) {
    queues.tracker.failed(name, (e as Error).message);
    throw e;
  }
  queues.add(name, { docs: embeddings, metadata });
  return new Reply(202, "Update queued for batching");
}

/** POST /indices/{name}/documents (legacy): the index must exist already; dimensions checked now. */
export async function addDocuments(ctx: ServerContext, { params, body }: RequestContext) {
  const name = params["name"]!;
  const docs = body["documents"];
  if (!Array.isArray(docs)) throw unprocessable("documents is required and must be an array");
  if (docs.length === 0) throw badRequest("No documents provided");
  const metadata = metadataOf(body, docs.length);
  const info = await ctx.indices().info(name);
  const embeddings = docs.map((d) => documentEmbedding(d));
  for (const e of embeddings) {
    if (e.dim !== info.dimension) throw new HttpError(400, "DIMENSION_MISMATCH", `Expected dimension ${info.dimension}, got ${e.dim}`);
  }
  ctx.updates().add(name, { docs: embeddings, metadata }, "document update queued");
  return new Reply(202, "Update queued in background");
}

/** DELETE /indices/{name}/documents: the condition is checked now, the delete runs in the index's queue. */
export async function deleteDocuments(ctx: ServerContext, { params, body }: RequestContext) {
  const name = params["name"]!;
  const condition = requiredString(body, "condition");
  if (condition.trim() === "") throw badRequest("Delete condition cannot be empty");
  const parameters = body["parameters"] ?? [];
  if (!Array.isArray(parameters)) throw unprocessable("parameters must be an array");
  const ids = await ctx.indices().matching(name, condition, parameters);
  if (ids.length === 0) return new Reply(202, "No documents match the condition");
  ctx.updates().delete(name, condition, parameters);
  return new Reply(202, "Delete condition queued for batch processing");
}
