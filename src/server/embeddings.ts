/** Token-embedding matrices as the NextPlaid API carries them: JSON rows, or base64 little-endian f32 + shape. */
import type { Embedding } from "../runtime/encoder.js";
import { badRequest, JsonText } from "./http.js";

export function toRows(e: Embedding): number[][] {
  return Array.from({ length: e.rows }, (_, r) => Array.from(e.data.subarray(r * e.dim, (r + 1) * e.dim)));
}

/**
 * `{"embeddings": [rows…], "num_texts": n}` as JSON text, a document at a time with a turn of the
 * event loop between: one JSON.stringify of 48 documents × 300 tokens × 128 floats held the thread
 * ~0.5 s (37 MB), and /health, searches and every other request waited behind it.
 */
export async function embeddingsJson(out: Embedding[]): Promise<JsonText> {
  const parts: string[] = [];
  for (const e of out) {
    parts.push(JSON.stringify(toRows(e)));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return new JsonText(`{"embeddings":[${parts.join(",")}],"num_texts":${out.length}}`);
}

export function toBase64(e: Embedding): string {
  return Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString("base64");
}

/** `[[f32…]…]` → Embedding, checking shape and finiteness (models.rs json_embeddings_to_array2). */
export function fromRows(v: unknown, label: string): Embedding {
  if (!Array.isArray(v) || v.length === 0) throw badRequest(`Empty ${label} embeddings`);
  const dim = Array.isArray(v[0]) ? (v[0] as unknown[]).length : 0;
  if (dim === 0) throw badRequest(`Zero dimension ${label} embeddings`);
  const data = new Float32Array(v.length * dim);
  v.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== dim) throw badRequest(`Inconsistent ${label} embedding dimension at row ${r}: expected ${dim}, got ${Array.isArray(row) ? row.length : "not a list"}`);
    row.forEach((x, c) => {
      if (typeof x !== "number" || !Number.isFinite(x)) throw badRequest(`${label} embedding contains non-finite value at row ${r}, col ${c}`);
      data[r * dim + c] = x;
    });
  });
  return { rows: v.length, dim, data };
}

/**
 * base64 of little-endian f32 + [rows, dim] → Embedding. A Float32Array instead of text was decoded
 * and checked finite off the event loop by the body parser (body-worker.ts; JSON itself never
 * yields one), so only its size is checked here.
 */
export function fromBase64(b64: unknown, shape: unknown, label: string): Embedding {
  if (typeof b64 !== "string" && !(b64 instanceof Float32Array)) throw badRequest(`${label} embeddings_b64 must be a base64 string`);
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((n) => Number.isInteger(n) && n >= 0)) throw badRequest(`${label} shape must be [rows, dim]`);
  const [rows, dim] = shape as [number, number];
  if (rows === 0) throw badRequest(`Empty ${label} embeddings`);
  if (dim === 0) throw badRequest(`Zero dimension ${label} embeddings`);
  const decoded = typeof b64 === "string" ? Buffer.from(b64, "base64") : b64;
  if (decoded.byteLength !== rows * dim * 4) throw badRequest(`${label} embeddings_b64 holds ${decoded.byteLength} bytes; shape [${rows}, ${dim}] needs ${rows * dim * 4}`);
  if (decoded instanceof Float32Array) return { rows, dim, data: decoded };
  const data = new Float32Array(rows * dim);
  new Uint8Array(data.buffer).set(decoded);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw badRequest(`${label} embedding contains non-finite value at row ${Math.floor(i / dim)}, col ${i % dim}`);
  }
  return { rows, dim, data };
}

/** A document as the API sends it: {embeddings} or {embeddings_b64, shape} (base64 preferred). */
export function documentEmbedding(doc: unknown, label = "document"): Embedding {
  if (!doc || typeof doc !== "object") throw badRequest(`Each ${label} must be an object with embeddings or embeddings_b64 + shape`);
  const d = doc as Record<string, unknown>;
  if (d["embeddings_b64"] !== undefined && d["shape"] !== undefined) return fromBase64(d["embeddings_b64"], d["shape"], label);
  if (d["embeddings"] === undefined) throw badRequest("Must provide either 'embeddings' or 'embeddings_b64' + 'shape'");
  return fromRows(d["embeddings"], label);
}
