/**
 * Every CLI option a user can reach, through the CLI itself (one table per command): what it
 * changes in the output, and the one-line error when it is misused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expected, fixtureModelDir, tempDir } from "./helpers/fixtures.js";
import { exportedFixture, exportedFixtureCopy } from "./helpers/exported.js";
import { startServe } from "./helpers/serve.js";
import { readModel } from "../src/onnx/reader.js";
import { DataType } from "../src/onnx/model.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");

function cli(name: string, args: string[], input?: string) {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src", "cli", `${name}.ts`), ...args], {
    cwd: ROOT,
    input,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, HF_HUB_OFFLINE: "1", HF_HOME: tempDir("hf-home-") },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, any>;

test("pylate-onnx-export: each settings option lands in onnx_config.json; --force re-exports", () => {
  const model = fixtureModelDir("bert-tiny-colbert");
  const cases: [string[], (cfg: Record<string, any>) => void][] = [
    [["--query-prefix", "", "--document-prefix", ""], (c) => assert.deepEqual([c.query_prefix, c.document_prefix, c.query_prefix_id, c.document_prefix_id], ["", "", null, null])],
    [["--query-prefix", "<q>", "--document-prefix", "<d>"], (c) => assert.deepEqual([c.query_prefix, c.document_prefix, typeof c.query_prefix_id], ["<q>", "<d>", "number"])],
    [["--query-length", "24", "--document-length", "100"], (c) => assert.deepEqual([c.query_length, c.document_length], [24, 100])],
    [["--attend-to-expansion-tokens"], (c) => assert.equal(c.attend_to_expansion_tokens, true)],
    [["--no-query-expansion", "--attend-to-expansion-tokens"], (c) => assert.deepEqual([c.do_query_expansion, c.attend_to_expansion_tokens], [false, false])],
  ];
  for (const [args, check] of cases) {
    const out = tempDir();
    const r = cli("export", [model, "-o", out, "--quiet", "--json", "--no-quantize", ...args]);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    check(readJson(path.join(JSON.parse(r.stdout).dir, "onnx_config.json")));
  }
  const out = tempDir();
  assert.equal(JSON.parse(cli("export", [model, "-o", out, "--quiet", "--json", "--no-quantize"]).stdout).reused, false);
  assert.equal(JSON.parse(cli("export", [model, "-o", out, "--quiet", "--json", "--no-quantize"]).stdout).reused, true);
  assert.equal(JSON.parse(cli("export", [model, "-o", out, "--quiet", "--json", "--no-quantize", "--force"]).stdout).reused, false);
  // The default model.onnx is the plain graph; --chunk-tokens N re-exports it with its batch loop, 0 is the default again.
  const loops = (dir: string) => {
    const read = readModel(path.join(dir, "model.onnx"));
    read.close();
    return [read.model.nodes.some((n) => n.opType === "Loop"), read.model.metadata?.["chunk_tokens"]];
  };
  const plain = JSON.parse(cli("export", [model, "-o", out, "--quiet", "--json", "--no-quantize", "--chunk-tokens", "0"]).stdout) as { dir: string; reused: boolean };
  assert.equal(plain.reused, true, "--chunk-tokens 0 is the default");
  assert.deepEqual(loops(plain.dir), [false, "0"]);
  const chunked = JSON.parse(cli("export", [model, "-o", out, "--quiet", "--json", "--no-quantize", "--chunk-tokens", "512"]).stdout) as { dir: string; reused: boolean };
  assert.equal(chunked.reused, false);
  assert.deepEqual(loops(chunked.dir), [true, "512"]);
  for (const [args, pattern] of [
    [["--chunk-tokens", "-1"], /--chunk-tokens must be 0 \(whole batches\) or a positive integer/],
    [["--chunk-tokens", "1.5"], /--chunk-tokens must be 0 \(whole batches\) or a positive integer/],
    [["--query-length", "0"], /--query-length must be a positive integer/],
    [["--document-length", "abc"], /--document-length must be a positive integer/],
    [["--no-such-option"], /unknown option '--no-such-option'/],
  ] as [string[], RegExp][]) {
    const r = cli("export", [model, "-o", tempDir(), "--quiet", ...args]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1);
  }
});

test("colbert-encode: --format jsonl, --pool-factor, --int8, and its bad inputs", async () => {
  const dir = await exportedFixture("xlmr-tiny-colbert");
  const docs = expected("xlmr-tiny-colbert").documents;
  const input = docs.map((d) => d.text).join("\n");
  const jsonl = cli("encode", ["--model", dir, "--format", "jsonl", "--quiet"], input);
  assert.equal(jsonl.code, 0, jsonl.stderr);
  const lines = jsonl.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { index: number; shape: number[]; embedding: number[][] });
  assert.equal(lines.length, docs.length, "one line per text");
  lines.forEach((l, i) => {
    assert.equal(l.index, i);
    assert.equal(l.embedding.length, docs[i]!.embeddings.length);
  });
  const pooled = JSON.parse(cli("encode", ["--model", dir, "--pool-factor", "2", "--quiet"], input).stdout) as { shapes: number[][] };
  assert.equal(pooled.shapes.length, docs.length);
  assert.ok(pooled.shapes.every((s, i) => s[0]! <= docs[i]!.embeddings.length) && pooled.shapes.some((s, i) => s[0]! < docs[i]!.embeddings.length));
  const int8 = JSON.parse(cli("encode", ["--model", dir, "--int8", "--quiet"], input).stdout) as { embeddings: number[][][] };
  int8.embeddings.forEach((e, i) => {
    assert.equal(e.length, docs[i]!.embeddings.length);
    e.forEach((row, r) => assert.ok(row.reduce((s, v, c) => s + v * docs[i]!.embeddings[r]![c]!, 0) > 0.99, "INT8 rows stay close to PyLate's"));
  });
  for (const [args, stdin, pattern] of [
    [["--format", "csv"], "a", /--format must be json, jsonl, f32 or npy, got "csv"/],
    [[], "", /No texts in the input/],
    [["--jsonl-input"], '{"text": "ok"}\n{"text": 3}\n', /Input line 2 is neither a JSON string nor an object with a "text" field/],
    [["--jsonl-input"], '"ok"\nnot json\n', /Input line 2 is not JSON/],
    [["--int8", "--fp32"], "a", /--int8 and --fp32 exclude each other/],
  ] as [string[], string, RegExp][]) {
    const r = cli("encode", ["--model", dir, ...args], stdin);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stdout}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1);
  }
});

test("colbert-quantize: --per-tensor, --force, and an already-quantized input", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert");
  const out = path.join(dir, "pc.onnx");
  let r = cli("quantize", [path.join(dir, "model.onnx"), "-o", out, "--per-tensor", "--json", "--quiet"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).cosine.mean > 0.999);
  // One scale per tensor: the MatMul weight scales are scalars (the default has one per column).
  const scales = (file: string) => readModel(file).model.initializers.filter((t) => t.name.endsWith(".weight_scale") && t.dataType === DataType.FLOAT).map((t) => t.dims.length);
  assert.ok(scales(out).length > 0 && scales(out).every((d) => d === 0));
  assert.ok(scales(path.join(dir, "model_int8.onnx")).some((d) => d === 1));
  r = cli("quantize", [path.join(dir, "model.onnx"), "-o", out, "--quiet"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /pc\.onnx already exists; pass --force to overwrite it/);
  const before = fs.statSync(out).mtimeMs;
  r = cli("quantize", [path.join(dir, "model.onnx"), "-o", out, "--quiet", "--force"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(fs.statSync(out).mtimeMs > before);
  r = cli("quantize", [path.join(dir, "model_int8.onnx"), "-o", path.join(dir, "again.onnx"), "--quiet"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /has no MatMul with constant weights to quantize; is it already quantized\?/);
  assert.equal(fs.existsSync(path.join(dir, "again.onnx")), false);
});

test("colbert-serve: --host, --int8 reported by /health, --int8 without an INT8 model is an error", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert");
  const serve = await startServe(["--model", dir, "--host", "127.0.0.1", "--int8", "--sessions", "1", "--threads", "1"]);
  try {
    assert.match(serve.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const h = (await (await fetch(serve.url + "/health")).json()) as { model: Record<string, unknown> };
    assert.deepEqual([h.model["quantized"], h.model["num_sessions"], h.model["threads_per_session"]], [true, 1, 1]);
  } finally {
    assert.equal(await serve.stop(), 0);
  }
  fs.rmSync(path.join(dir, "model_int8.onnx"));
  const r = cli("serve", ["--model", dir, "--int8", "--port", "0"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: No model_int8\.onnx in .*: run colbert-quantize/);
});
