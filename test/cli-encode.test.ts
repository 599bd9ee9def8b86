/** colbert-encode: texts from stdin or a file to JSON / JSONL / raw float32. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expected, tempDir, FP32_TOLERANCE } from "./helpers/fixtures.js";
import { exportedFixture } from "./helpers/exported.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const exp = expected("xlmr-tiny-colbert");

function run(args: string[], input?: string) {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/encode.ts"), ...args], { cwd: ROOT, input, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertClose(got: number[][], want: number[][]) {
  assert.equal(got.length, want.length);
  got.forEach((row, r) => row.forEach((v, c) => assert.ok(Math.abs(v - want[r]![c]!) <= FP32_TOLERANCE)));
}

test("stdin → JSON: documents match PyLate", async () => {
  const dir = await exportedFixture("xlmr-tiny-colbert");
  const texts = exp.documents.slice(0, 3);
  const r = run(["--model", dir, "--type", "document", "--quiet"], texts.map((d) => d.text).join("\n"));
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.num_texts, 3);
  out.embeddings.forEach((e: number[][], i: number) => assertClose(e, texts[i]!.embeddings));
});

test("JSONL file → f32 + shapes: queries match PyLate", async () => {
  const dir = await exportedFixture("xlmr-tiny-colbert");
  const work = tempDir();
  const input = path.join(work, "q.jsonl");
  fs.writeFileSync(input, exp.queries.map((q, i) => JSON.stringify(i % 2 ? q.text : { text: q.text })).join("\n"));
  const output = path.join(work, "q.f32");
  const r = run(["--model", dir, "--type", "query", "-i", input, "--jsonl-input", "--format", "f32", "-o", output, "--batch-size", "2"]);
  assert.equal(r.code, 0, r.stderr);
  const { shapes } = JSON.parse(fs.readFileSync(output + ".shapes.json", "utf8"));
  const buf = fs.readFileSync(output);
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  let offset = 0;
  shapes.forEach(([rows, dim]: number[], i: number) => {
    const e = Array.from({ length: rows! }, (_, r) => Array.from(all.subarray(offset + r * dim!, offset + (r + 1) * dim!)));
    assertClose(e, exp.queries[i]!.embeddings);
    offset += rows! * dim!;
  });
  assert.equal(offset, all.length);
  assert.match(r.stderr, /Done: 6 texts, \d+ token rows/);
});

test("bad arguments are one-line errors", async () => {
  const dir = await exportedFixture("xlmr-tiny-colbert");
  for (const [args, pattern] of [
    [["--model", dir, "--type", "passage"], /--type must be query or document/],
    [["--model", dir, "--format", "f32"], /--format f32 needs --output/],
    [["--model", dir, "-i", "/nonexistent/file.txt"], /Input file not found/],
    [["--model", "/nonexistent/dir"], /^Error: Model not found: \/nonexistent\/dir; pass an export folder, a checkpoint folder, or a Hugging Face id/],
  ] as [string[], RegExp][]) {
    const r = run(args, "hello\n");
    assert.equal(r.code, 1);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  }
});
