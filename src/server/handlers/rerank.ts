/** POST /rerank (embeddings) and POST /rerank_with_encoding (texts): MaxSim, best first (handlers/rerank.rs). */
import { maxSim, type Embedding } from "../../runtime/encoder.js";
import { badRequest, HttpError, poolFactorOf, stringList } from "../http.js";
import { documentEmbedding, fromBase64, fromRows } from "../embeddings.js";
import type { RequestContext, ServerContext } from "../context.js";

function ranked(query: Embedding, docs: Embedding[]) {
  const results = docs.map((d, index) => {
    const score = maxSim(query, d);
    if (!Number.isFinite(score)) throw badRequest("Rerank score contains non-finite value");
    return { index, score };
  });
  results.sort((a, b) => b.score - a.score || a.index - b.index);
  return { results, num_documents: docs.length };
}

export async function rerank(ctx: ServerContext, { body }: RequestContext) {
  const documents = body["documents"];
  if (!Array.isArray(documents) || documents.length === 0) throw badRequest("No documents provided");
  if (documents.length > ctx.maxTexts) throw badRequest(`documents has ${documents.length} entries; the limit is ${ctx.maxTexts}`);
  let query: Embedding;
  if (body["query_b64"] !== undefined && body["query_shape"] !== undefined) query = fromBase64(body["query_b64"], body["query_shape"], "query");
  else if (body["query"] !== undefined) query = fromRows(body["query"], "query");
  else throw badRequest("Must provide either 'query' or 'query_b64' + 'query_shape'");
  const docs = documents.map((d) => {
    const e = documentEmbedding(d);
    if (e.dim !== query.dim) throw new HttpError(400, "DIMENSION_MISMATCH", `Expected dimension ${query.dim}, got ${e.dim}`);
    return e;
  });
  return ranked(query, docs);
}

export async function rerankWithEncoding(ctx: ServerContext, { body, signal }: RequestContext) {
  const query = body["query"];
  // NextPlaid rejects only an empty query; whitespace is a (short) query.
  if (typeof query !== "string" || query === "") throw badRequest("Empty query text");
  const documents = stringList(body["documents"], "documents", ctx.maxTexts);
  ctx.model();
  const [q, docs] = await Promise.all([ctx.encode([query], "query", undefined, signal), ctx.encode(documents, "document", poolFactorOf(body), signal)]);
  return ranked(q[0]!, docs);
}
