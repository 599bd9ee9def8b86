/** POST /encode (next-plaid-api handlers/encode.rs). */
import { HttpError, poolFactorOf, stringList } from "../http.js";
import { embeddingsJson, toBase64 } from "../embeddings.js";
import type { RequestContext, ServerContext } from "../context.js";

export async function encode(ctx: ServerContext, { req, body, signal }: RequestContext) {
  const texts = stringList(body["texts"], "texts", ctx.maxTexts);
  const type = body["input_type"];
  if (type !== "query" && type !== "document") throw new HttpError(422, "VALIDATION_ERROR", `input_type must be "query" or "document"`);
  const out = await ctx.encode(texts, type, poolFactorOf(body), signal);
  if (String(req.headers["x-embeddings-format"] ?? "").toLowerCase() === "base64") {
    return { embeddings_b64: out.map(toBase64), shapes: out.map((e) => [e.rows, e.dim]), num_texts: out.length };
  }
  return embeddingsJson(out);
}
