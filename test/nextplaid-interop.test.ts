/**
 * NextPlaid, the real consumer of an export folder, computes PyLate's embeddings from our export:
 * its encode path (ported in helpers/nextplaid.ts) on every fixture's texts equals PyLate within
 * 2e-6, and on random multilingual texts equals our runtime (which is PyLate-exact) row for row.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "tokenizers";
import { ColbertEncoder, type Embedding } from "../src/runtime/encoder.js";
import { pythonStrip } from "../src/colbert/text.js";
import { exportModel } from "../src/export/exporter.js";
import { silentLogger } from "../src/util/log.js";
import { copyFixture, expected, FIXTURE_NAMES, FP32_TOLERANCE, tempDir } from "./helpers/fixtures.js";
import { exportedFixture } from "./helpers/exported.js";
import { loadNextPlaid, parseNextPlaidConfig, rustTrim } from "./helpers/nextplaid.js";

const TEXTS = (
  JSON.parse(fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures-tokenizer", "expected.json"), "utf8")) as { texts: string[] }
).texts
  // NextPlaid trims with Rust's trim(), PyLate with Python's strip(): they differ on U+001C–U+001F at the ends.
  .filter((t) => rustTrim(t) === pythonStrip(t));

function maxDiff(a: Embedding, b: { rows: number; dim: number; data: Float32Array } | number[][]): number {
  const rows = Array.isArray(b) ? b : Array.from({ length: b.rows }, (_, r) => Array.from(b.data.subarray(r * b.dim, (r + 1) * b.dim)));
  assert.equal(a.rows, rows.length, "row count");
  let max = 0;
  rows.forEach((row, r) => row.forEach((v, c) => (max = Math.max(max, Math.abs(v - a.data[r * a.dim + c]!)))));
  return max;
}

for (const name of FIXTURE_NAMES) {
  test(`${name}: NextPlaid's encode path on our export gives PyLate's query and document embeddings (${FP32_TOLERANCE})`, async () => {
    const exp = expected(name);
    const np = await loadNextPlaid(await exportedFixture(name));
    try {
      const queries = await np.encode(exp.queries.map((q) => q.text), true);
      queries.forEach((e, i) => assert.ok(maxDiff(e, exp.queries[i]!.embeddings) <= FP32_TOLERANCE, `query ${i}: ${maxDiff(e, exp.queries[i]!.embeddings)}`));
      const docs = await np.encode(exp.documents.map((d) => d.text), false);
      docs.forEach((e, i) => assert.ok(maxDiff(e, exp.documents[i]!.embeddings) <= FP32_TOLERANCE, `document ${i}`));
    } finally {
      await np.close();
    }
  });

  test(`${name}: NextPlaid's encode path equals our runtime on ${TEXTS.length} random multilingual texts`, async () => {
    const dir = await exportedFixture(name);
    const np = await loadNextPlaid(dir);
    const enc = await ColbertEncoder.load(dir);
    try {
      for (const type of ["query", "document"] as const) {
        const ours = await enc.encode(TEXTS, type);
        const theirs = await np.encode(TEXTS, type === "query");
        ours.forEach((e, i) => {
          const d = maxDiff(e, theirs[i]!);
          assert.ok(d <= FP32_TOLERANCE, `${type} ${i} ${JSON.stringify(TEXTS[i]!.slice(0, 30))}: ${d}`);
        });
      }
    } finally {
      await np.close();
      await enc.close();
    }
  });
}

test("onnx_config.json has integers where NextPlaid needs them, even for a tokenizer without a mask token", async () => {
  const dir = copyFixture("bert-tiny-colbert");
  const file = path.join(dir, "tokenizer_config.json");
  const cfg = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  delete cfg["mask_token"];
  cfg["pad_token"] = "[PAD]";
  fs.writeFileSync(file, JSON.stringify(cfg));
  const r = await exportModel({ model: dir, outputDir: tempDir(), logger: silentLogger });
  const text = fs.readFileSync(path.join(r.dir, "onnx_config.json"), "utf8");
  const parsed = parseNextPlaidConfig(text);
  // PyLate pads queries with the pad token when there is no mask token.
  const padId = Tokenizer.fromFile(path.join(r.dir, "tokenizer.json")).tokenToId("[PAD]");
  assert.equal(typeof padId, "number");
  assert.equal(parsed.mask_token_id, padId);
  assert.equal(parsed.pad_token_id, padId);
  assert.throws(() => parseNextPlaidConfig(text.replace(/"mask_token_id":\s*\d+/, '"mask_token_id":null')), /null at mask_token_id/);
});

test("a model that attends to expansion tokens keeps them attended in the graph", async () => {
  const r = await exportModel({ model: copyFixture("bert-tiny-colbert"), outputDir: tempDir(), overrides: { attendToExpansionTokens: true }, logger: silentLogger });
  const np = await loadNextPlaid(r.dir);
  const enc = await ColbertEncoder.load(r.dir);
  const base = await ColbertEncoder.load(await exportedFixture("bert-tiny-colbert"));
  try {
    const [ours] = await enc.encodeQueries(["what is late interaction?"]);
    const [theirs] = await np.encode(["what is late interaction?"], true);
    const [notAttending] = await base.encodeQueries(["what is late interaction?"]);
    assert.ok(maxDiff(ours!, theirs!) <= FP32_TOLERANCE);
    // …and that differs from the model that ignores them: the graph op is conditional.
    assert.ok(maxDiff(ours!, notAttending!) > 1e-3);
  } finally {
    await Promise.all([np.close(), enc.close(), base.close()]);
  }
});

test("NextPlaid --int8 finds model_int8.onnx in a default export and stays close to PyLate", async () => {
  for (const name of FIXTURE_NAMES) {
    const exp = expected(name);
    const np = await loadNextPlaid(await exportedFixture(name), true);
    try {
      const got = [...(await np.encode(exp.queries.map((q) => q.text), true)), ...(await np.encode(exp.documents.map((d) => d.text), false))];
      const want = [...exp.queries, ...exp.documents].map((e) => e.embeddings);
      let sum = 0;
      let n = 0;
      got.forEach((e, i) => {
        assert.equal(e.rows, want[i]!.length);
        want[i]!.forEach((row, r) => {
          let dot = 0;
          let nw = 0;
          let ng = 0;
          row.forEach((v, c) => {
            const g = e.data[r * e.dim + c]!;
            dot += v * g;
            nw += v * v;
            ng += g * g;
          });
          sum += dot / Math.sqrt(nw * ng);
          n++;
        });
      });
      assert.ok(sum / n >= 0.9995, `${name}: mean cosine ${sum / n}`);
    } finally {
      await np.close();
    }
  }
});
