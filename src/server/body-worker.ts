/**
 * Parses large JSON request bodies off the server's event loop (body-parser.ts): JSON.parse of a
 * 20 MB update takes a few hundred milliseconds, during which no other request — a search on any
 * index — would be answered. Base64 embeddings (`embeddings_b64` of `documents` / `queries`) are
 * decoded here too, checked finite, and handed back as Float32Arrays without a copy (a 300-document
 * update is ~4 M floats: decoding and checking them held the main thread for tens of milliseconds);
 * anything else — and a matrix with a non-finite value or a size that is not whole floats, left as
 * text — is validated on the main thread, which reports the error.
 */
import { parentPort } from "node:worker_threads";

const port = parentPort!;

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

port.on("message", ({ id, body }: { id: number; body: Uint8Array }) => {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch {
    port.postMessage({ id, invalid: true });
    return;
  }
  const transfer: ArrayBuffer[] = [];
  for (const key of ["documents", "queries"]) {
    const list = value && typeof value === "object" ? (value as Record<string, unknown>)[key] : undefined;
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      if (!item || typeof item !== "object" || typeof (item as Record<string, unknown>)["embeddings_b64"] !== "string") continue;
      const bytes = Buffer.from((item as Record<string, string>)["embeddings_b64"]!, "base64");
      if (bytes.byteLength % 4 !== 0) continue; // left as text: the main thread reports the size error
      const data = new Float32Array(bytes.byteLength / 4);
      new Uint8Array(data.buffer).set(bytes);
      if (!allFinite(data)) continue;
      (item as Record<string, unknown>)["embeddings_b64"] = data;
      transfer.push(data.buffer);
    }
  }
  port.postMessage({ id, value }, transfer);
});
