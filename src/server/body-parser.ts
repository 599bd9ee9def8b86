/**
 * JSON request bodies: small ones parsed in place, large ones (update batches of embeddings) on a
 * helper thread (body-worker.ts), so the server keeps answering while they are parsed.
 */
import type { Worker } from "node:worker_threads";
import { startWorker } from "../util/worker.js";
import { badRequest, parseJson } from "./http.js";

/** Bodies at least this large are parsed off the event loop (a few milliseconds of parsing below it). */
const OFF_THREAD_BYTES = 1 << 20;

let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

function parser(): Worker {
  if (worker) return worker;
  const w = startWorker(import.meta.url, "body-worker");
  w.on("message", (m: { id: number; value?: unknown; invalid?: boolean }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) w.unref();
    if (m.invalid) p.reject(badRequest("Request body is not valid JSON"));
    else p.resolve(m.value);
  });
  const fail = (e: Error) => {
    if (worker === w) worker = undefined;
    for (const [id, p] of pending) {
      pending.delete(id);
      p.reject(e);
    }
  };
  w.on("error", fail);
  w.on("exit", () => fail(new Error("the body parser thread stopped")));
  w.unref();
  worker = w;
  return w;
}

/** The JSON object in `body` (400 when it is not one). */
export async function parseJsonBody(body: Buffer): Promise<Record<string, unknown>> {
  if (body.length < OFF_THREAD_BYTES) return parseJson(body);
  // A body of its own memory moves to the thread without a copy.
  const own = body.byteOffset === 0 && body.buffer.byteLength === body.length ? body : Buffer.from(body);
  const w = parser();
  const id = nextId++;
  const value = await new Promise<unknown>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, body: own }, [own.buffer as ArrayBuffer]);
  });
  if (!value || typeof value !== "object" || Array.isArray(value)) throw badRequest("Request body must be a JSON object");
  return value as Record<string, unknown>;
}
