/** The NextPlaid-compatible HTTP server on loopback. */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type http from "node:http";
import { ColbertEncoder, type Embedding } from "../src/runtime/encoder.js";
import { createServer } from "../src/server/index.js";
import { expected, FP32_TOLERANCE } from "./helpers/fixtures.js";
import { exportedFixture } from "./helpers/exported.js";
import { startServe } from "./helpers/serve.js";

const exp = expected("bert-tiny-colbert");
const docs = exp.documents.map((d) => d.text);
const queries = exp.queries.map((q) => q.text);
let encoder: ColbertEncoder;
let server: http.Server;
let base: string;

before(async () => {
  encoder = await ColbertEncoder.load(await exportedFixture("bert-tiny-colbert"), { batchSize: 8 });
  server = createServer({ encoder, maxBodyBytes: 64 * 1024, maxTexts: 10 });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise((r) => server.close(r));
  await encoder.close();
});

async function post(route: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + route, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

function asRows(e: Embedding): number[][] {
  return Array.from({ length: e.rows }, (_, r) => Array.from(e.data.subarray(r * e.dim, (r + 1) * e.dim)));
}

test("GET /health describes the model", async () => {
  const res = await fetch(base + "/health");
  const h = (await res.json()) as Record<string, any>;
  assert.equal(res.status, 200);
  assert.equal(h.status, "healthy");
  assert.equal(h.loaded_indices, 0);
  assert.deepEqual(h.indices, []);
  assert.equal(h.model.embedding_dim, 16);
  assert.equal(h.model.query_length, 32);
  assert.equal(h.model.do_query_expansion, true);
  assert.equal(h.model.uses_token_type_ids, true);
  assert.equal(h.model.mask_token_id, 4);
  assert.equal(h.model.quantized, false);
  assert.equal(h.model.batch_size, 8);
  assert.equal(typeof h.memory_usage_bytes, "number");
});

test("POST /encode (JSON) returns the library's embeddings", async () => {
  const lib = await encoder.encodeDocuments(docs);
  const { status, json } = await post("/encode", { texts: docs, input_type: "document" });
  assert.equal(status, 200);
  assert.equal(json.num_texts, docs.length);
  json.embeddings.forEach((e: number[][], i: number) => {
    const want = asRows(lib[i]!);
    assert.equal(e.length, want.length);
    e.forEach((row, r) => row.forEach((v, c) => assert.ok(Math.abs(v - want[r]![c]!) < 1e-7)));
  });
  // …and PyLate's, within the FP32 tolerance.
  json.embeddings[0].forEach((row: number[], r: number) => row.forEach((v, c) => assert.ok(Math.abs(v - exp.documents[0]!.embeddings[r]![c]!) <= FP32_TOLERANCE)));
});

test("POST /encode with X-Embeddings-Format: base64 decodes to the library's embeddings", async () => {
  const lib = await encoder.encodeQueries(queries);
  const { status, json } = await post("/encode", { texts: queries, input_type: "query" }, { "X-Embeddings-Format": "base64" });
  assert.equal(status, 200);
  assert.equal(json.num_texts, queries.length);
  json.embeddings_b64.forEach((b64: string, i: number) => {
    const buf = Buffer.from(b64, "base64");
    const got = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    assert.deepEqual(json.shapes[i], [lib[i]!.rows, 16]);
    assert.deepEqual(Array.from(got), Array.from(lib[i]!.data));
  });
});

test("POST /encode with pool_factor returns pooled documents", async () => {
  const pooled = exp.documents_pool_factor_2!;
  const { json } = await post("/encode", { texts: pooled.map((p) => p.text), input_type: "document", pool_factor: 2 });
  json.embeddings.forEach((e: number[][], i: number) => assert.equal(e.length, pooled[i]!.embeddings.length));
});

/** MaxSim written out here, independent of the runtime's. */
function maxSimOf(q: number[][], d: number[][]): number {
  return q.reduce((sum, qr) => sum + Math.max(...d.map((dr) => dr.reduce((acc, v, i) => acc + v * qr[i]!, 0))), 0);
}

test("POST /rerank_with_encoding ranks documents as MaxSim over PyLate's own embeddings does", async () => {
  const { status, json } = await post("/rerank_with_encoding", { query: queries[0], documents: docs });
  assert.equal(status, 200);
  assert.equal(json.num_documents, docs.length);
  const want = exp.documents.map((d, index) => ({ index, score: maxSimOf(exp.queries[0]!.embeddings, d.embeddings) })).sort((a, b) => b.score - a.score);
  assert.deepEqual(json.results.map((r: any) => r.index), want.map((r) => r.index));
  json.results.forEach((r: any, i: number) => assert.ok(Math.abs(r.score - want[i]!.score) < 1e-4, `${r.score} vs ${want[i]!.score}`));
});

test("bad requests get JSON errors with 4xx codes", async () => {
  // Status and code as NextPlaid's error.rs maps them (its SDK dispatches on both).
  const cases: [string, unknown, number, string][] = [
    ["/encode", { texts: [], input_type: "query" }, 400, "BAD_REQUEST"],
    ["/encode", { texts: "not a list", input_type: "query" }, 400, "BAD_REQUEST"],
    ["/encode", { texts: [1, 2], input_type: "query" }, 400, "BAD_REQUEST"],
    ["/encode", { texts: Array(11).fill("x"), input_type: "query" }, 400, "BAD_REQUEST"], // maxTexts 10
    ["/encode", { texts: ["x"], input_type: "passage" }, 422, "VALIDATION_ERROR"],
    ["/encode", { texts: ["x"], input_type: "document", pool_factor: -1 }, 400, "BAD_REQUEST"],
    ["/encode", "{not json", 400, "BAD_REQUEST"],
    ["/encode", "[1,2]", 400, "BAD_REQUEST"],
    ["/encode", { texts: ["x".repeat(70 * 1024)], input_type: "document" }, 413, "PAYLOAD_TOO_LARGE"],
    ["/rerank_with_encoding", { query: "", documents: ["a"] }, 400, "BAD_REQUEST"],
    ["/rerank_with_encoding", { query: "q", documents: [] }, 400, "BAD_REQUEST"],
    ["/rerank", { query: [[1, 0]], documents: [] }, 400, "BAD_REQUEST"],
    ["/rerank", { query: [[1, 0]], documents: [{ embeddings: [[1, 0, 0]] }] }, 400, "DIMENSION_MISMATCH"],
    ["/rerank", { query_b64: "AAAA", query_shape: [2, 2], documents: [{ embeddings: [[1, 0]] }] }, 400, "BAD_REQUEST"],
    ["/rerank", { query: [[1, null]], documents: [{ embeddings: [[1, 0]] }] }, 400, "BAD_REQUEST"],
    ["/nope", {}, 404, "NOT_FOUND"],
  ];
  for (const [route, body, status, code] of cases) {
    const r = await post(route, body);
    assert.equal(r.status, status, `${route} ${JSON.stringify(body).slice(0, 60)}`);
    assert.equal(r.json.code, code, `${route} ${JSON.stringify(body).slice(0, 60)}`);
    assert.equal(typeof r.json.message, "string");
  }
  const get = await fetch(base + "/encode");
  assert.equal(get.status, 405);
  assert.equal(((await get.json()) as any).code, "METHOD_NOT_ALLOWED");
  // Still serving after all of that.
  assert.equal((await fetch(base + "/health")).status, 200);
});

test("200 concurrent requests are all answered correctly (micro-batched)", async () => {
  const libDocs = await encoder.encodeDocuments(docs);
  const libQueries = await encoder.encodeQueries(queries);
  const requests = Array.from({ length: 200 }, (_, i) => {
    const isQuery = i % 2 === 0;
    const idx = i % (isQuery ? queries.length : docs.length);
    return post("/encode", { texts: [isQuery ? queries[idx] : docs[idx]], input_type: isQuery ? "query" : "document" }, { "X-Embeddings-Format": "base64" }).then(
      ({ status, json }) => {
        assert.equal(status, 200);
        const buf = Buffer.from(json.embeddings_b64[0], "base64");
        const want = (isQuery ? libQueries : libDocs)[idx]!;
        assert.deepEqual(Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4)), Array.from(want.data));
      },
    );
  });
  await Promise.all(requests);
});

test("colbert-serve starts, serves FP32 by default (as colbert-encode; --int8 for model_int8.onnx), and exits 0 on SIGTERM", async () => {
  const dir = await exportedFixture("bert-tiny-colbert");
  for (const [args, file, precision] of [[[], "model.onnx", "FP32"], [["--int8"], "model_int8.onnx", "INT8"]] as const) {
    const serve = await startServe(["--model", dir, ...args]);
    try {
      // The start line names the served folder, the model file and the precision.
      assert.match(serve.stderr(), new RegExp(`: ${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(.*, ${file.replace(".", "\\.")}, ${precision}\\) on http://127\\.0\\.0\\.1:\\d+`));
      const health = (await (await fetch(serve.url + "/health")).json()) as any;
      assert.equal(health.model.quantized, precision === "INT8");
      const res = await fetch(serve.url + "/encode", { method: "POST", body: JSON.stringify({ texts: ["hello"], input_type: "query" }) });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as any).embeddings[0].length, 32);
    } finally {
      assert.equal(await serve.stop("SIGTERM"), 0);
    }
  }
});
