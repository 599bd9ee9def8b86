/** HTTP plumbing shared by the handlers: errors in NextPlaid's shape, bodies, validation helpers. */
import type http from "node:http";

/** An error answered as `{code, message}` with `status` (NextPlaid's error.rs codes). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new HttpError(400, "BAD_REQUEST", message);
/** A body whose fields have the wrong type or are missing (axum's 422 in NextPlaid). */
export const unprocessable = (message: string) => new HttpError(422, "UNPROCESSABLE_ENTITY", message);

/** A handler's answer with a status other than 200 (202 for queued work). */
export class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {}
}

/** A handler's answer already serialised as JSON text (sent as it is). */
export class JsonText {
  constructor(readonly text: string) {}
}

/** An optional non-negative integer field (422 when it is something else). */
export function optionalCount(body: Record<string, unknown>, field: string): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw unprocessable(`${field} must be a non-negative integer`);
  return v;
}

/** An optional array field (422 when it is not an array). */
export function optionalArray(body: Record<string, unknown>, field: string): unknown[] | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw unprocessable(`${field} must be an array`);
  return v;
}

/** A required string field. */
export function requiredString(body: Record<string, unknown>, field: string): string {
  const v = body[field];
  if (typeof v !== "string") throw unprocessable(`${field} is required and must be a string`);
  return v;
}

export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new HttpError(413, "PAYLOAD_TOO_LARGE", `Request body exceeds ${limit} bytes`));
      return;
    }
    // With its length declared, the body is copied into place as it arrives: no copy of all of it
    // at the end, which held the event loop (and every other request) for tens of milliseconds
    // per update batch of embeddings.
    const whole = Number.isFinite(declared) && declared > 0 ? Buffer.allocUnsafe(declared) : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let inWhole = 0;
    req.on("data", (c: Buffer) => {
      if (size + c.length > limit) {
        size += c.length;
        reject(new HttpError(413, "PAYLOAD_TOO_LARGE", `Request body exceeds ${limit} bytes`));
        req.resume();
        return;
      }
      if (whole && chunks.length === 0 && inWhole + c.length <= whole.length) {
        c.copy(whole, inWhole);
        inWhole += c.length;
      } else chunks.push(c);
      size += c.length;
    });
    req.on("end", () => {
      if (whole && chunks.length === 0 && inWhole === whole.length) resolve(whole);
      else resolve(Buffer.concat(whole ? [whole.subarray(0, inWhole), ...chunks] : chunks));
    });
    req.on("error", reject);
  });
}

export function parseJson(body: Buffer): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body.toString("utf8"));
  } catch {
    throw badRequest("Request body is not valid JSON");
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw badRequest("Request body must be a JSON object");
  return v as Record<string, unknown>;
}

export function stringList(v: unknown, field: string, max: number): string[] {
  if (!Array.isArray(v) || v.some((t) => typeof t !== "string")) throw badRequest(`${field} must be an array of strings`);
  if (v.length === 0) throw badRequest(`No ${field} provided`);
  if (v.length > max) throw badRequest(`${field} has ${v.length} entries; the limit is ${max}`);
  return v as string[];
}

/** pool_factor: absent, null, 0 or 1 mean no pooling (as NextPlaid); otherwise a positive integer. */
export function poolFactorOf(body: Record<string, unknown>): number | undefined {
  const p = body["pool_factor"];
  if (p === undefined || p === null) return undefined;
  if (typeof p !== "number" || !Number.isInteger(p) || p < 0) throw badRequest("pool_factor must be a non-negative integer or null");
  return p > 1 ? p : undefined;
}
