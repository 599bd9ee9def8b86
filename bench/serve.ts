/**
 * Serving benchmark: colbert-serve (built dist/, its own process) on the ModernBERT-base-shaped
 * export, loaded over loopback by this process.
 * - /health latency (p50/p99, one probe every 50 ms) while 4 clients keep 16-document encodes running;
 * - documents/s over that load, for each sessions × threads setting;
 * - p50/p99 latency of one-document requests from 16 concurrent clients.
 *   npm run build && node --import tsx bench/serve.ts [--seconds 15] [--int8] [--dist DIR]
 * --dist runs another build (e.g. a worktree of an older commit) for a before/after in one run;
 * --legacy omits the options older builds lack (--threads, --fp32; their sessions split the cores).
 */
import { spawn, type ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { exportModel } from "../src/export/exporter.js";
import { CACHE, machineLine, modernBertBase } from "./checkpoints.js";
import { fillerText } from "./common.js";

const argv = process.argv;
const value = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const SECONDS = Number(value("--seconds")) || 15;
const INT8 = argv.includes("--int8");
const LEGACY = argv.includes("--legacy");
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.resolve(value("--dist") ?? path.join(root, "dist"));

const dir = (await exportModel({ model: modernBertBase(), outputDir: path.join(CACHE, "exports"), quiet: true })).dir;
const doc = (i: number) => fillerText(i, 400);

async function start(sessions: number, threads: number | undefined): Promise<{ url: string; child: ChildProcess }> {
  const args = [path.join(dist, "cli", "serve.js"), "--model", dir, "--port", "0"];
  if (sessions > 0) args.push("--sessions", String(sessions));
  if (threads && !LEGACY) args.push("--threads", String(threads));
  if (INT8) args.push("--int8");
  else if (!LEGACY) args.push("--fp32");
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on("data", (d) => {
      err += d;
      const m = /on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once("exit", () => reject(new Error(err)));
  });
  return { url, child };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

let resets = 0;
/** One encode request; a connection reset (a blocked server racing its keep-alive timer) is counted and retried. */
async function post(url: string, texts: string[]): Promise<void> {
  for (;;) {
    try {
      return await postOnce(url, texts);
    } catch (e) {
      if ((e as { cause?: { code?: string } }).cause?.code !== "ECONNRESET") throw e;
      resets++;
    }
  }
}

async function postOnce(url: string, texts: string[]): Promise<void> {
  const res = await fetch(url + "/encode", { method: "POST", headers: { "content-type": "application/json", "x-embeddings-format": "base64" }, body: JSON.stringify({ texts, input_type: "document" }) });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

async function saturated(url: string): Promise<{ healthP50: number; healthP99: number; healthMax: number; healthErrors: number; docsPerS: number }> {
  const end = performance.now() + SECONDS * 1000;
  let docs = 0;
  const clients = Array.from({ length: 4 }, async (_, c) => {
    for (let k = 0; performance.now() < end; k++) {
      await post(url, Array.from({ length: 16 }, (_, i) => doc(c * 1000 + k * 16 + i)));
      docs += 16;
    }
  });
  const health: number[] = [];
  let healthErrors = 0;
  const probe = (async () => {
    await new Promise((r) => setTimeout(r, 500)); // the load is running
    while (performance.now() < end) {
      const t = performance.now();
      try {
        const res = await fetch(url + "/health");
        await res.arrayBuffer();
      } catch {
        healthErrors++; // a reset connection counts, with the time it took to fail
      }
      health.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const t0 = performance.now();
  await Promise.all([...clients, probe]);
  return { healthP50: pct(health, 50), healthP99: pct(health, 99), healthMax: Math.max(...health), healthErrors, docsPerS: docs / ((performance.now() - t0) / 1000) };
}

async function concurrentSingles(url: string): Promise<{ p50: number; p99: number; docsPerS: number }> {
  const lat: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async (_, c) => {
      for (let k = 0; k < 4; k++) {
        const t = performance.now();
        await post(url, [doc(5000 + c * 4 + k)]);
        lat.push(performance.now() - t);
      }
    }),
  );
  return { p50: pct(lat, 50), p99: pct(lat, 99), docsPerS: 64 / ((performance.now() - t0) / 1000) };
}

console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}; ${INT8 ? "INT8" : "FP32"}; build ${dist}; ${SECONDS} s of load per setting`);
const cores = os.availableParallelism();
const settings: [number, number | undefined][] = LEGACY ? [[1, cores], [2, Math.max(1, Math.floor(cores / 2))]] : [[1, cores], [2, Math.max(1, Math.floor(cores / 2))], [0, undefined]];
for (const [sessions, threads] of settings) {
  const { url, child } = await start(sessions, threads);
  try {
    // Warm-up: onnxruntime plans memory per input shape on its first run.
    await Promise.all(Array.from({ length: Math.max(1, sessions) }, (_, k) => post(url, Array.from({ length: 32 }, (_, i) => doc(9000 + k * 32 + i)))));
    const s = await saturated(url);
    const c = await concurrentSingles(url);
    const label = threads ? `${sessions} session(s) × ${threads} thread(s)` : "defaults";
    const resetNote = resets ? `; ${resets} encode requests hit a connection reset and were retried` : "";
    resets = 0;
    console.log(
      `${label}: /health under load p50 ${s.healthP50.toFixed(1)} ms, p99 ${s.healthP99.toFixed(1)} ms, max ${s.healthMax.toFixed(0)} ms${s.healthErrors ? ` (${s.healthErrors} probes failed)` : ""}; ` +
        `${s.docsPerS.toFixed(2)} docs/s (4 clients × 16 docs); 16 clients × 1 doc: p50 ${(c.p50 / 1000).toFixed(2)} s, p99 ${(c.p99 / 1000).toFixed(2)} s, ${c.docsPerS.toFixed(2)} docs/s${resetNote}`,
    );
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}
