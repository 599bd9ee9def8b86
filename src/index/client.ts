/**
 * The index engine seen from the server's thread: every IndexEngine method, asynchronous, run on
 * the index worker (worker.ts). Errors come back as IndexError (client mistakes, with NextPlaid's
 * code) or Error (everything else).
 */
import type { Worker } from "node:worker_threads";
import { startWorker } from "../util/worker.js";
import { UserError } from "../errors.js";
import { IndexError, type IndexEngine, type IndexErrorCode, type Progress } from "./types.js";
import type { WorkerMessage, WorkerRequest } from "./worker.js";

type Asynced<T> = { [K in keyof T]: T[K] extends (...a: infer A) => infer R ? (...a: A) => Promise<Awaited<R>> : never };
export type RemoteEngine = Asynced<Omit<IndexEngine, "close">> & { close(): Promise<void> };

export interface IndexEngineOptions {
  /** onnxruntime threads for the index's GEMMs (default: every core). */
  threads?: number;
  /** Heap limit of the index thread in MB (default: Node's). A request beyond it fails; the thread restarts. */
  heapMb?: number;
}

/**
 * Starts the index engine on its own thread. If that thread dies (say, out of memory on a huge
 * request), the calls in flight fail and the next call starts a new one on the same folder —
 * every write is atomic, so it loads the last committed state.
 */
export async function startIndexEngine(root: string, opts: IndexEngineOptions = {}): Promise<RemoteEngine> {
  const { threads, heapMb } = opts;
  // better-sqlite3 is an optional dependency (a native build): say how to get it rather than fail in the worker.
  try {
    await import("better-sqlite3");
  } catch {
    throw new UserError(
      "The index API needs better-sqlite3, an optional dependency that is not installed here (its native build needs python3, make and a C++ compiler): run `npm install better-sqlite3@12` in this package's folder, then start again",
    );
  }
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; progress?: Progress }>();
  let nextId = 1;
  let closing = false;
  let current: Promise<Worker> | undefined;

  const spawn = async (): Promise<Worker> => {
    const worker = startWorker(import.meta.url, "worker", heapMb ? { maxOldGenerationSizeMb: heapMb } : undefined);
    await new Promise<void>((resolve, reject) => {
      const onInit = (m: WorkerMessage) => {
        if (m.type === "ready") resolve();
        else if (m.type === "init-error") reject(new Error(`Index engine failed to start: ${m.message}`));
      };
      worker.on("message", onInit);
      worker.once("error", reject);
      worker.postMessage({ type: "init", root, threads } satisfies WorkerRequest);
    });
    worker.on("message", (m: WorkerMessage) => {
      if (m.type === "ready" || m.type === "init-error") return;
      const p = pending.get(m.id);
      if (!p) return;
      if (m.type === "progress") return p.progress?.(m.stage, m.message);
      pending.delete(m.id);
      if (pending.size === 0) worker.unref();
      if (m.type === "result") p.resolve(m.value);
      else p.reject(m.code ? new IndexError(m.code as IndexErrorCode, m.message) : new Error(m.message));
    });
    let why = "";
    worker.on("error", (e) => (why = e.message));
    worker.once("exit", (code) => {
      if (closing) return;
      current = undefined;
      const e = new Error(`The index engine stopped (${why || `exit code ${code}`}); the next request restarts it`);
      for (const p of pending.values()) p.reject(e);
      pending.clear();
    });
    worker.unref();
    return worker;
  };
  current = spawn();
  await current;

  const call = async (method: keyof IndexEngine, args: unknown[]): Promise<unknown> => {
    let progress: Progress | undefined;
    if (method === "add" && typeof args[args.length - 1] === "function") progress = args.pop() as Progress;
    const worker = await (current ??= spawn());
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject, progress });
      worker.ref();
      worker.postMessage({ type: "call", id, method, args } satisfies WorkerRequest);
    });
  };
  return new Proxy({} as RemoteEngine, {
    get(_t, prop: string) {
      if (prop === "then") return undefined;
      if (prop === "close") {
        return async () => {
          const worker = await current?.catch(() => undefined);
          if (!worker) return;
          await call("close", []).catch(() => undefined);
          closing = true;
          await worker.terminate();
        };
      }
      return (...args: unknown[]) => call(prop as keyof IndexEngine, args);
    },
  });
}
