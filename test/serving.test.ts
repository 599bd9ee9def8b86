/**
 * Serving under load: inference runs off the event loop (so /health answers during a long
 * encode), the queue is bounded (503), a client that goes away cancels its queued texts,
 * SIGTERM lets a request in flight finish, and the NextPlaid semantics shared with /encode:
 * /rerank with embeddings (JSON or base64), CORS pre-flight, GET /; idle keep-alive connections
 * stay open past Node's 5 s default.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ColbertEncoder } from "../src/runtime/encoder.js";
import { createServer } from "../src/server/index.js";
import { exportModel } from "../src/export/exporter.js";
import { silentLogger } from "../src/util/log.js";
import { expected, tempDir } from "./helpers/fixtures.js";
import { exportedFixture } from "./helpers/exported.js";
import { startServe } from "./helpers/serve.js";
import { bertShaped } from "../bench/checkpoints.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const words = "late interaction retrieval scores every query token against every document token and sums the best matches".split(" ");
const longDoc = (i: number) => Array.from({ length: 300 }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(" ");

/** A BERT export big enough that one batch of long documents takes a while (FP32 only). */
let midModel: Promise<string> | undefined;
function midExport(): Promise<string> {
  midModel ??= exportModel({
    model: bertShaped(path.join(tempDir(), "mid-bert"), { hidden: 512, intermediate: 2048, layers: 8, vocab: 30522 }),
    outputDir: tempDir(),
    quantize: false,
    logger: silentLogger,
  }).then((r) => r.dir);
  return midModel;
}

async function listen(server: ReturnType<typeof createServer>): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test("/health answers within a few hundred ms while a long batch is being encoded", async () => {
  const encoder = await ColbertEncoder.load(await midExport(), { batchSize: 48, sessions: 1 });
  const server = createServer({ encoder });
  closers.push(() => encoder.close(), () => new Promise((r) => server.close(r)));
  const base = await listen(server);
  const t0 = performance.now();
  const encode = fetch(base + "/encode", { method: "POST", body: JSON.stringify({ texts: Array.from({ length: 48 }, (_, i) => longDoc(i)), input_type: "document" }) });
  let done = false;
  void encode.then(() => (done = true));
  const latencies: number[] = [];
  await new Promise((r) => setTimeout(r, 100));
  while (!done) {
    const t = performance.now();
    const res = await fetch(base + "/health");
    await res.arrayBuffer();
    latencies.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
  const encodeMs = performance.now() - t0;
  assert.equal((await encode).status, 200);
  assert.ok(encodeMs > 500, `the batch must be long enough to matter (${encodeMs.toFixed(0)} ms)`);
  assert.ok(latencies.length >= 3, `health was polled ${latencies.length} times during ${encodeMs.toFixed(0)} ms`);
  assert.ok(Math.max(...latencies) < 300, `health took up to ${Math.max(...latencies).toFixed(0)} ms during a ${encodeMs.toFixed(0)} ms encode`);
});

test("a client that disconnects cancels its queued texts; the queue is bounded (503)", async () => {
  const encoder = await ColbertEncoder.load(await midExport(), { batchSize: 2, sessions: 1 });
  const server = createServer({ encoder, maxQueuedTexts: 40 });
  closers.push(() => encoder.close(), () => new Promise((r) => server.close(r)));
  const base = await listen(server);
  const overload = await fetch(base + "/encode", { method: "POST", body: JSON.stringify({ texts: Array.from({ length: 41 }, (_, i) => longDoc(i)), input_type: "document" }) });
  assert.equal(overload.status, 503);
  assert.deepEqual(await overload.json(), { code: "SERVICE_UNAVAILABLE", message: "Encode queue full. Too many concurrent requests. Retry later." });
  const controller = new AbortController();
  const request = fetch(base + "/encode", { method: "POST", body: JSON.stringify({ texts: Array.from({ length: 40 }, (_, i) => longDoc(i)), input_type: "document" }), signal: controller.signal });
  while (encoder.queuedTexts === 0) await new Promise((r) => setTimeout(r, 5));
  assert.ok(encoder.queuedTexts > 30);
  controller.abort();
  await assert.rejects(request);
  // The queued texts are dropped when a worker next looks (within a batch or two), not encoded.
  const t = performance.now();
  while (encoder.queuedTexts > 0 && performance.now() - t < 20_000) await new Promise((r) => setTimeout(r, 10));
  assert.equal(encoder.queuedTexts, 0);
  assert.ok(performance.now() - t < 5000, "dropped, not worked through");
  // Still serving.
  const ok = await fetch(base + "/encode", { method: "POST", body: JSON.stringify({ texts: ["still here"], input_type: "query" }) });
  assert.equal(ok.status, 200);
});

test("texts of concurrent requests share model calls", async () => {
  const encoder = await ColbertEncoder.load(await midExport(), { batchSize: 32, sessions: 1 });
  const server = createServer({ encoder });
  closers.push(() => encoder.close(), () => new Promise((r) => server.close(r)));
  const base = await listen(server);
  const before = encoder.stats;
  const answers = await Promise.all(
    Array.from({ length: 16 }, (_, i) => fetch(base + "/encode", { method: "POST", body: JSON.stringify({ texts: [longDoc(i)], input_type: "document" }) }).then((r) => r.status)),
  );
  assert.deepEqual(answers, Array(16).fill(200));
  const after = encoder.stats;
  assert.equal(after.texts - before.texts, 16);
  // The first request may run alone; the others wait behind it and go together.
  assert.ok(after.batches - before.batches <= 4, `${after.batches - before.batches} model calls for 16 one-text requests`);
});

test("SIGTERM lets a request in flight finish, then exits 0", async () => {
  const serve = await startServe(["--model", await midExport(), "--batch-size", "16"]);
  const encode = fetch(serve.url + "/encode", { method: "POST", body: JSON.stringify({ texts: Array.from({ length: 32 }, (_, i) => longDoc(i)), input_type: "document" }) });
  // Signal once the model is running it (a request not yet received is not in flight).
  const running = async () => ((await (await fetch(serve.url + "/health")).json()) as { model: { running_batches: number } }).model.running_batches;
  while ((await running()) === 0) await new Promise((r) => setTimeout(r, 10));
  const t = performance.now();
  const exit = serve.stop("SIGTERM");
  const res = await encode;
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { num_texts: number }).num_texts, 32);
  assert.equal(await exit, 0);
  assert.ok(performance.now() - t < 20_000, "exits once the request is answered, not after keep-alive timeouts");
});

test("SIGTERM past --shutdown-timeout with an index write running: the index thread stops between two onnxruntime runs, exit 0, the index as before", { timeout: 120_000 }, async () => {
  const dir = tempDir("shutdown-index-");
  const serve = await startServe(["--index-dir", dir, "--shutdown-timeout", "1"]);
  const post = (route: string, body: unknown) => fetch(serve.url + route, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  assert.equal((await post("/indices", { name: "s", config: {} })).status, 200);
  // One update long enough to be running when the signal comes: k-means over 150 k embeddings.
  const dim = 128;
  const docs = Array.from({ length: 1500 }, (_, d) => {
    const a = Float32Array.from({ length: 100 * dim }, (_, i) => Math.sin(d * 7.1 + i * 0.37));
    return { embeddings_b64: Buffer.from(a.buffer).toString("base64"), shape: [100, dim] };
  });
  assert.equal((await post("/indices/s/update", { documents: docs, metadata: docs.map((_, i) => ({ i })) })).status, 202);
  const running = async () => ((await (await fetch(serve.url + "/health")).json()) as { updates?: { status: string }[] }).updates?.some((u) => u.status === "running");
  while (!(await running())) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await serve.stop("SIGTERM", 60_000), 0);
  assert.match(serve.stderr(), /Requests still running after 1 s; exiting/);
  assert.doesNotMatch(serve.stderr(), /terminate called|Napi::Error|Aborted/);
  // Nothing half-written: the index restarts as declared and not built (NextPlaid answers 404 for
  // it until its first update lands), and takes updates.
  const again = await startServe(["--index-dir", dir]);
  closers.push(() => again.stop());
  assert.equal((await fetch(again.url + "/indices/s")).status, 404);
  const few = await fetch(again.url + "/indices/s/update", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ documents: docs.slice(0, 5), metadata: docs.slice(0, 5).map((_, i) => ({ i })) }) });
  assert.equal(few.status, 202);
});

/** MaxSim written out here, independent of the runtime's. */
function maxSimOf(q: number[][], d: number[][]): number {
  return q.reduce((sum, qr) => sum + Math.max(...d.map((dr) => dr.reduce((s, v, i) => s + v * qr[i]!, 0))), 0);
}

test("POST /rerank ranks PyLate's own embeddings (JSON and base64) by MaxSim; CORS pre-flight; GET / is /health", async () => {
  const exp = expected("bert-tiny-colbert");
  const server = createServer({}); // no model needed for embeddings
  closers.push(() => new Promise((r) => server.close(r)));
  const base = await listen(server);
  const query = exp.queries[0]!.embeddings;
  const docs = exp.documents.map((d) => d.embeddings);
  const want = docs.map((d, index) => ({ index, score: maxSimOf(query, d) })).sort((a, b) => b.score - a.score);
  const b64 = (rows: number[][]) => Buffer.from(Float32Array.from(rows.flat()).buffer).toString("base64");
  for (const body of [
    { query, documents: docs.map((embeddings) => ({ embeddings })) },
    { query_b64: b64(query), query_shape: [query.length, query[0]!.length], documents: docs.map((d) => ({ embeddings_b64: b64(d), shape: [d.length, d[0]!.length] })) },
  ]) {
    const res = await fetch(base + "/rerank", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal(res.status, 200);
    const got = (await res.json()) as { results: { index: number; score: number }[]; num_documents: number };
    assert.equal(got.num_documents, docs.length);
    assert.deepEqual(got.results.map((r) => r.index), want.map((r) => r.index));
    got.results.forEach((r, i) => assert.ok(Math.abs(r.score - want[i]!.score) < 1e-4));
  }
  const bad = await fetch(base + "/rerank", { method: "POST", body: JSON.stringify({ query, documents: [{ embeddings: [[1, 2]] }] }) });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { code: string }).code, "DIMENSION_MISMATCH");
  const noModel = await fetch(base + "/encode", { method: "POST", body: JSON.stringify({ texts: ["x"], input_type: "query" }) });
  assert.equal(((await noModel.json()) as { code: string }).code, "MODEL_NOT_LOADED");

  const pre = await fetch(base + "/encode", { method: "OPTIONS", headers: { origin: "http://example.test", "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });
  assert.equal(pre.status, 200);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  assert.match(pre.headers.get("access-control-allow-headers") ?? "", /content-type/);
  const root = await fetch(base + "/", { headers: { origin: "http://example.test" } });
  assert.equal(root.headers.get("access-control-allow-origin"), "*");
  const h = (await root.json()) as { status: string; indices: unknown[]; updates: unknown[] };
  assert.equal(h.status, "healthy");
  assert.deepEqual([h.indices, h.updates], [[], []]);
});

test("encode semantics shared with NextPlaid: pool_factor 0/1 is no pooling, a whitespace query is a query", async () => {
  const encoder = await ColbertEncoder.load(await exportedFixture("bert-tiny-colbert"));
  const server = createServer({ encoder });
  closers.push(() => encoder.close(), () => new Promise((r) => server.close(r)));
  const base = await listen(server);
  const doc = expected("bert-tiny-colbert").documents[0]!;
  const rows = async (pool: number | null) =>
    ((await (await fetch(base + "/encode", { method: "POST", body: JSON.stringify({ texts: [doc.text], input_type: "document", pool_factor: pool }) })).json()) as { embeddings: number[][][] }).embeddings[0]!.length;
  assert.equal(await rows(0), doc.embeddings.length);
  assert.equal(await rows(1), doc.embeddings.length);
  assert.ok((await rows(2)) < doc.embeddings.length);
  const ws = await fetch(base + "/rerank_with_encoding", { method: "POST", body: JSON.stringify({ query: "   ", documents: ["a", "b"] }) });
  assert.equal(ws.status, 200);
});

test("the encoder's threads start whatever the host's Node options (node --input-type=module -e …), and a script that never calls close() still exits", async () => {
  const dir = await exportedFixture("bert-tiny-colbert");
  const encoderTs = pathToFileURL(path.join(ROOT, "src", "runtime", "encoder.ts")).href;
  const script = `const { ColbertEncoder } = await import(${JSON.stringify(encoderTs)});
    const enc = await ColbertEncoder.load(${JSON.stringify(dir)});
    const [q] = await enc.encodeQueries(["hello"]);
    process.stdout.write(String(q.rows));`; // no close(): idle inference threads must not hold the process
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "32");
});

test("colbert-serve keeps an idle keep-alive connection open past Node's 5 s default (a client reusing it then got EPIPE sending an update)", async () => {
  const serve = await startServe(["--index-dir", tempDir("keepalive-")]);
  closers.push(() => serve.stop());
  const { hostname, port } = new URL(serve.url);
  const socket = net.connect(Number(port), hostname);
  let received = "";
  let closed = false;
  socket.on("data", (d) => (received += d));
  socket.on("close", () => (closed = true));
  const ask = async () => {
    const before = received.length;
    socket.write(`GET /health HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
    for (let i = 0; i < 200 && !/\r\n\r\n[\s\S]*"status"/.test(received.slice(before)); i++) await new Promise((r) => setTimeout(r, 25));
    return received.slice(before);
  };
  assert.match(await ask(), /^HTTP\/1\.1 200/);
  await new Promise((r) => setTimeout(r, 6_500));
  assert.equal(closed, false, "the idle connection is still open after 6.5 s");
  assert.match(await ask(), /^HTTP\/1\.1 200/, "and answers the next request");
  socket.destroy();
});
