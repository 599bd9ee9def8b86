/**
 * The index engine seen from the server's thread: every IndexEngine method, asynchronous, run on
 * worker threads (worker.ts) — one per index, so a long build or a slow filter on one index never
 * delays another. Every call has a time budget: past it, the index's thread is stopped (nothing
 * half-committed: every write is atomic), the call fails with REQUEST_TIMEOUT, and the next call
 * starts a new thread on the last committed state. Errors come back as IndexError (client
 * mistakes, with NextPlaid's code) or Error (everything else).
 */
import type { Worker } from "node:worker_threads";
import { startWorker } from "../util/worker.js";
import { transfers } from "../util/handover.js";
import { loadSqlite } from "./sqlite.js";
import { indexNames, invalidIndexName } from "./names.js";
import { KernelGate } from "./kernels.js";
import { IndexError, type IndexEngine, type IndexErrorCode, type IndexSummary, type Progress } from "./types.js";
import type { WorkerMessage, WorkerRequest } from "./worker.js";

type Asynced<T> = { [K in keyof T]: T[K] extends (...a: infer A) => infer R ? (...a: A) => Promise<Awaited<R>> : never };

/** What /health shows of the engine: per index thread, whether it is working, stuck or restarting. */
export interface EngineStatus {
  /** "restarting": some index's thread is starting again after it was stopped; "busy": some request has run over busyAfterMs (5 s); else "ready". */
  status: "ready" | "busy" | "restarting";
  /** Index threads running now. */
  threads: { index: string; state: "starting" | "idle" | "busy" | "restarting"; running_calls: number; oldest_call_ms: number; restarts: number; retraining: boolean; retrain_error?: string }[];
}

/**
 * close(): lets each index thread finish its calls and close its indices (graceful, the default),
 * or, with `graceful` false, stops them between two onnxruntime runs (a process exiting during
 * one aborts): writes in progress are abandoned, committed state stays.
 */
export type RemoteEngine = Asynced<Omit<IndexEngine, "close">> & { close(graceful?: boolean): Promise<void>; status(): EngineStatus };

export interface IndexEngineOptions {
  /** onnxruntime threads for each index's GEMMs (default: every core). */
  threads?: number;
  /** Heap limit of each index thread in MB (default: Node's). A request beyond it fails; the thread restarts. */
  heapMb?: number;
  /** Budget of one request-bound call — search, metadata, filter, config (default 300 s, NextPlaid's route timeout). */
  requestTimeoutMs?: number;
  /** Budget of one background write — an update batch or a delete (default 3 600 s). */
  writeTimeoutMs?: number;
  /** An index thread with no call for this long is stopped (default 10 minutes); the next call starts it again. */
  idleMs?: number;
  /** A request-bound call running longer than this makes the engine "busy" in /health (default 5 s). */
  busyAfterMs?: number;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
export const DEFAULT_WRITE_TIMEOUT_MS = 3_600_000;

/** Background writes, under the write budget; every other call is request-bound. */
const WRITES = new Set<string>(["add", "deleteWhere"]);
/** Calls safe to run again when the thread died under them (they change nothing). */
const READS = new Set<string>(["summary", "config", "info", "matching", "search", "metadataAll", "metadataCount", "metadataGet"]);

interface Pending {
  method: string;
  args: unknown[];
  resolve(v: unknown): void;
  reject(e: Error): void;
  progress?: Progress;
  started: number;
  budgetMs: number;
  timer?: NodeJS.Timeout;
  retried: boolean;
}

/** One index's thread: started on demand, stopped past a budget or when idle, restarted by the next call. */
class IndexThread {
  private worker?: Promise<Worker>;
  private live?: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idleTimer?: NodeJS.Timeout;
  restarts = 0;
  private restarting = false;
  private ready = false;
  /** The gate of each started thread (a stop must use the one of the thread it stops). */
  private readonly gates = new WeakMap<Worker, KernelGate>();
  private closed = false;
  /** Set when stop() begins: no restart, no retry from then on. */
  private stopping = false;
  /** The engine on the thread is retraining the index's codec in the background (no idle stop meanwhile). */
  private background = false;
  /** Why the last background retrain failed (none: it succeeded, or none ran). */
  private retrainError: string | undefined;

  constructor(
    readonly name: string,
    private readonly root: string,
    private readonly opts: IndexEngineOptions,
    private readonly onIdle: (t: IndexThread) => void,
  ) {}

  get running(): boolean {
    return this.worker !== undefined;
  }

  private spawn(): Promise<Worker> {
    const { heapMb, threads } = this.opts;
    const gate = KernelGate.create();
    const worker = startWorker(import.meta.url, "worker", heapMb ? { maxOldGenerationSizeMb: heapMb } : undefined);
    let why = "";
    worker.on("error", (e) => (why = e.message));
    worker.once("exit", (code) => {
      // A thread stopped past a budget is no longer `live`: its exit concerns no call.
      if (this.live !== worker) return;
      this.live = undefined;
      this.worker = undefined;
      this.ready = false;
      this.background = false;
      if (this.closed) return;
      this.restarts++;
      this.died(`The index engine stopped (${why || `exit code ${code}`}); the next request restarts it`, undefined);
    });
    const ready = new Promise<Worker>((resolve, reject) => {
      const onInit = (m: WorkerMessage) => {
        if (m.type === "ready") resolve(worker);
        else if (m.type === "init-error") reject(new Error(`Index engine failed to start: ${m.message}`));
      };
      worker.on("message", onInit);
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`The index engine stopped while starting (exit code ${code})`)));
      worker.postMessage({ type: "init", root: this.root, threads, gate: gate.state } satisfies WorkerRequest);
    });
    worker.on("message", (m: WorkerMessage) => {
      if (m.type === "ready" || m.type === "init-error") return;
      if (m.type === "background") {
        if (this.live === worker) {
          this.background = m.busy;
          if (!m.busy) this.retrainError = m.error;
        }
        if (!m.busy) this.armIdle();
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.type === "progress") return p.progress?.(m.stage, m.message);
      this.settle(m.id);
      if (m.type === "result") p.resolve(m.value);
      else p.reject(m.code ? new IndexError(m.code as IndexErrorCode, m.message) : new Error(m.message));
    });
    // Referenced while it starts (a call waits on it); unreferenced when idle.
    this.live = worker;
    this.gates.set(worker, gate);
    return ready.then(
      (w) => {
        // A thread stopped while it started reports nothing about its replacement.
        if (this.live !== w) return w;
        this.restarting = false;
        this.ready = true;
        if (this.pending.size === 0) w.unref();
        return w;
      },
      (e: Error) => {
        if (this.live === worker) {
          this.live = undefined;
          this.worker = undefined;
          this.restarting = false;
        }
        void worker.terminate();
        throw e;
      },
    );
  }

  private settle(id: number): void {
    const p = this.pending.get(id);
    if (p?.timer) clearTimeout(p.timer);
    this.pending.delete(id);
    this.armIdle();
  }

  /** With no call left: the thread stops holding the process, and stops itself after idleMs. */
  private armIdle(): void {
    if (this.pending.size > 0 || this.closed) return;
    this.live?.unref();
    clearTimeout(this.idleTimer);
    const idleMs = this.opts.idleMs ?? 600_000;
    this.idleTimer = setTimeout(() => {
      if (this.pending.size === 0 && !this.background) this.onIdle(this);
      else if (this.pending.size === 0) this.armIdle();
    }, idleMs);
    this.idleTimer.unref();
  }

  /**
   * The thread is gone (out of memory, or stopped past a budget): the call that ran out of time
   * fails with REQUEST_TIMEOUT, reads caught in it run once more on a new thread, writes fail.
   */
  private died(message: string, timedOut: number | undefined): void {
    const calls = [...this.pending.entries()];
    this.pending.clear();
    for (const [id, p] of calls) {
      if (p.timer) clearTimeout(p.timer);
      const outcome = READS.has(p.method) ? "it changed nothing" : "a write is committed entirely or not at all: check the index before retrying it";
      if (id === timedOut) {
        const budget = p.budgetMs >= 1000 ? `${Math.round(p.budgetMs / 1000)} s` : `${p.budgetMs} ms`;
        p.reject(new IndexError("REQUEST_TIMEOUT", `The ${p.method} call on index '${this.name}' ran past its ${budget} budget and was stopped; ${outcome}`));
      } else if (READS.has(p.method) && !p.retried && !this.closed && !this.stopping) {
        // Once more on the new thread, within what is left of its budget.
        const left = Math.max(1, p.budgetMs - (Date.now() - p.started));
        this.enqueue(p.method, p.args, left, p.progress, true, p.started).then(p.resolve, p.reject);
      } else if (timedOut !== undefined) {
        p.reject(new IndexError("SERVICE_UNAVAILABLE", `The index thread of '${this.name}' was restarted while this ${p.method} call ran (another call ran past its budget); ${outcome}`));
      } else {
        p.reject(new Error(message));
      }
    }
    this.armIdle();
  }

  /** Stops the thread past a call's budget; the next call starts a new one. */
  private expire(id: number): void {
    const worker = this.live;
    const gate = worker && this.gates.get(worker);
    this.live = undefined;
    this.ready = false;
    this.background = false;
    if (worker && gate) stopWhenNoKernelRuns(worker, gate);
    if (this.closed || this.stopping) {
      this.worker = undefined;
    } else {
      this.restarts++;
      this.restarting = true;
      // Restart now, so /health shows "restarting" until the committed state is loaded again.
      this.worker = this.spawn();
      this.worker.catch(() => undefined);
    }
    this.died("The index engine is closed", id);
  }

  call(method: string, args: unknown[], budgetMs: number, progress?: Progress): Promise<unknown> {
    return this.enqueue(method, args, budgetMs, progress, false);
  }

  private async enqueue(method: string, args: unknown[], budgetMs: number, progress: Progress | undefined, retried: boolean, started = Date.now()): Promise<unknown> {
    if (this.closed) throw new Error("The index engine is closed");
    clearTimeout(this.idleTimer);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const p: Pending = { method, args, resolve, reject, progress, started, budgetMs, retried };
      this.pending.set(id, p);
      // The budget counts from the call, thread start included.
      if (budgetMs > 0 && Number.isFinite(budgetMs)) {
        p.timer = setTimeout(() => {
          if (this.pending.has(id)) this.expire(id);
        }, budgetMs);
        p.timer.unref();
      }
      if (this.worker === undefined && this.restarts > 0) this.restarting = true;
      const worker = (this.worker ??= this.spawn());
      worker.then(
        (w) => {
          if (!this.pending.has(id) || this.live !== w) return;
          w.ref();
          w.postMessage({ type: "call", id, method: method as keyof IndexEngine, args } satisfies WorkerRequest, transfers(args));
        },
        (e: Error) => {
          if (!this.pending.has(id)) return;
          this.settle(id);
          reject(e);
        },
      );
    });
  }

  state(): EngineStatus["threads"][number] {
    const now = Date.now();
    let oldest = 0;
    for (const p of this.pending.values()) oldest = Math.max(oldest, now - p.started);
    const state = this.restarting ? "restarting" : !this.ready ? "starting" : this.pending.size > 0 || this.background ? "busy" : "idle";
    return { index: this.name, state, running_calls: this.pending.size, oldest_call_ms: oldest, restarts: this.restarts, retraining: this.background, ...(this.retrainError ? { retrain_error: this.retrainError } : {}) };
  }

  /** True when a request-bound call has run longer than busyAfterMs. */
  slow(): boolean {
    const now = Date.now();
    const after = this.opts.busyAfterMs ?? 5_000;
    for (const p of this.pending.values()) if (!WRITES.has(p.method) && now - p.started > after) return true;
    return false;
  }

  /** Waits for the calls in flight (closing the engine on the thread), then stops the thread. */
  async stop(graceful: boolean): Promise<void> {
    clearTimeout(this.idleTimer);
    this.stopping = true;
    if (!this.worker) {
      this.closed = true;
      return;
    }
    if (graceful) await this.call("close", [], 30_000).catch(() => undefined);
    const worker = this.worker;
    this.closed = true;
    this.worker = undefined;
    const w = await worker?.catch(() => undefined);
    const gate = w && this.gates.get(w);
    this.live = undefined;
    // A search may still be running a graph on it (a drop does not wait for reads): stop through
    // the gate, waiting at most 10 s (a thread stuck in native code is abandoned).
    if (w && gate) await Promise.race([new Promise<void>((resolve) => stopWhenNoKernelRuns(w, gate, resolve)), new Promise<void>((r) => setTimeout(r, 10_000).unref())]);
    else await w?.terminate().catch(() => undefined);
    // Calls still waiting on it end now, not at their budget.
    this.died("The index engine is closed", undefined);
  }
}

/**
 * Terminates a thread once no onnxruntime run is in flight on it (terminating during one aborts
 * the process); the gate makes it start no new run, and its writes check the gate before they
 * commit. A thread stuck in native code may never stop: it is abandoned, not awaited.
 */
function stopWhenNoKernelRuns(worker: Worker, gate: KernelGate, stopped?: () => void): void {
  const stop = () =>
    void worker
      .terminate()
      .catch(() => undefined)
      .finally(() => stopped?.());
  // An abandoned thread must not keep the process alive.
  worker.unref();
  if (gate.stopRequested()) return stop();
  const poll = setInterval(() => {
    if (gate.inFlight() === 0) {
      clearInterval(poll);
      stop();
    }
  }, 2);
  poll.unref();
}

/**
 * Starts the index engine on `root`. Each index runs on its own thread, started by its first call;
 * if a thread dies (out of memory on a huge request) or is stopped past a budget, the calls in
 * flight fail (reads are run once more) and the next call starts a new thread on the same folder,
 * which loads the last committed state.
 */
export async function startIndexEngine(root: string, opts: IndexEngineOptions = {}): Promise<RemoteEngine> {
  // SQLite is node:sqlite or the optional better-sqlite3 (sqlite.ts): say how to get it rather than fail in a worker.
  await loadSqlite();
  const requestBudget = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const writeBudget = opts.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
  const threads = new Map<string, IndexThread>();
  /** Summaries of indices whose thread is stopped (nothing changes them until it starts again). */
  const summaries = new Map<string, IndexSummary | undefined>();
  let closing = false;

  const thread = (name: string): IndexThread => {
    const invalid = invalidIndexName(name);
    if (invalid) throw new IndexError("BAD_REQUEST", invalid);
    let t = threads.get(name);
    if (!t) {
      t = new IndexThread(name, root, opts, (idle) => {
        if (threads.get(name) !== idle) return;
        // Remember its summary, then let the thread go.
        void idle
          .call("summary", [name], requestBudget)
          .then((s) => summaries.set(name, s as IndexSummary | undefined))
          .catch(() => summaries.delete(name))
          .finally(() => {
            if (threads.get(name) === idle && idle.state().running_calls === 0) {
              threads.delete(name);
              void idle.stop(true);
            }
          });
      });
      threads.set(name, t);
    }
    return t;
  };

  const call = (name: string, method: string, args: unknown[], progress?: Progress): Promise<unknown> => {
    const t = thread(name);
    if (!READS.has(method)) summaries.delete(name);
    return t.call(method, [name, ...args], WRITES.has(method) ? writeBudget : requestBudget, progress);
  };

  /** Every index's summary: from its thread (waiting at most 100 ms when it is busy), else the last known. */
  const summariesNow = async (): Promise<IndexSummary[]> => {
    if (closing) throw new Error("The index engine is closed");
    const names = indexNames(root);
    const out = await Promise.all(
      names.map(async (name) => {
        const t = threads.get(name);
        if (!t && summaries.has(name)) return summaries.get(name);
        const fresh = call(name, "summary", []).then((s) => {
          const v = s as IndexSummary | undefined;
          summaries.set(name, v);
          return v;
        });
        const known = summaries.get(name);
        if (!known) return fresh.catch(() => undefined);
        fresh.catch(() => undefined);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<typeof known>((resolve) => (timer = setTimeout(() => resolve(known), 100)));
        try {
          return await Promise.race([fresh.catch(() => known), late]);
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return out.filter((s): s is IndexSummary => s !== undefined);
  };

  const engine = {
    async list() {
      return (await summariesNow()).filter((s) => s.built).map((s) => s.info.name);
    },
    async overview() {
      return (await summariesNow()).map((s) => s.info);
    },
    async drop(name: string) {
      if (closing) throw new Error("The index engine is closed");
      await call(name, "drop", []);
      const t = threads.get(name);
      threads.delete(name);
      summaries.delete(name);
      await t?.stop(false);
    },
    status(): EngineStatus {
      const list = [...threads.values()].map((t) => t.state()).sort((a, b) => a.index.localeCompare(b.index));
      const status = list.some((t) => t.state === "restarting") ? "restarting" : [...threads.values()].some((t) => t.slow()) ? "busy" : "ready";
      return { status, threads: list };
    },
    async close(graceful = true) {
      if (closing && graceful) return;
      closing = true;
      await Promise.all([...threads.values()].map((t) => t.stop(graceful)));
      threads.clear();
    },
  };
  return new Proxy(engine as unknown as RemoteEngine, {
    get(_t, prop: string) {
      if (prop === "then") return undefined;
      if (prop in engine) return engine[prop as keyof typeof engine];
      return (name: string, ...args: unknown[]) => {
        if (closing) return Promise.reject(new Error("The index engine is closed"));
        let progress: Progress | undefined;
        if (prop === "add" && typeof args[args.length - 1] === "function") progress = args.pop() as Progress;
        return Promise.resolve().then(() => {
          if (closing) throw new Error("The index engine is closed");
          return call(name, prop, args, progress);
        });
      };
    },
  });
}
