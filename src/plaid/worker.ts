/**
 * The index engine on its own thread: k-means, compression and search run here, so the server's
 * event loop never waits on vector math. Protocol (client.ts): "init" → "ready" | "init-error";
 * "call" → "progress"* then "result" | "error"; "background" when a retrain starts or ends.
 */
import { parentPort } from "node:worker_threads";
import { PlaidEngine } from "./engine.js";
import { KernelGate } from "./kernels.js";
import { IndexError, type IndexEngine } from "./types.js";
import { watchStalls } from "../util/stalls.js";

export type WorkerRequest = { type: "init"; root: string; threads?: number; gate: Int32Array } | { type: "call"; id: number; method: keyof IndexEngine; args: unknown[] };

export type WorkerMessage =
  | { type: "ready" }
  /** The engine started (busy) or ended a background retrain of the index (error: why it failed). */
  | { type: "background"; busy: boolean; error?: string }
  | { type: "init-error"; message: string }
  | { type: "progress"; id: number; stage: string; message: string }
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; code?: string; message: string };

const port = parentPort!;
watchStalls();
let engine: PlaidEngine | undefined;

port.on("message", (msg: WorkerRequest) => {
  if (msg.type === "init") {
    PlaidEngine.create(msg.root, msg.threads, new KernelGate(msg.gate), { onBackground: (_index, busy, error) => port.postMessage({ type: "background", busy, error } satisfies WorkerMessage) }).then(
      (e) => {
        engine = e;
        port.postMessage({ type: "ready" } satisfies WorkerMessage);
      },
      (e: Error) => port.postMessage({ type: "init-error", message: e.message } satisfies WorkerMessage),
    );
    return;
  }
  const { id, method, args } = msg;
  const run = async () => {
    const fn = engine![method] as (...a: unknown[]) => unknown;
    // The last argument of add() is its progress callback.
    const callArgs = method === "add" ? [...args, (stage: string, message: string) => port.postMessage({ type: "progress", id, stage, message } satisfies WorkerMessage)] : args;
    return await fn.apply(engine, callArgs);
  };
  run().then(
    (value) => port.postMessage({ type: "result", id, value } satisfies WorkerMessage),
    (e: unknown) =>
      port.postMessage({
        type: "error",
        id,
        code: e instanceof IndexError ? e.code : undefined,
        message: (e as Error)?.message ?? String(e),
      } satisfies WorkerMessage),
  );
});
