/**
 * The runtime reproduces PyLate's encode() on settings the PyLate fixtures do not show: prefix-free
 * models (no slot reserved: truncation to the full length), query expansion off, attention on the
 * expansion tokens. Expected data: test/fixtures-derived/encode.py (PyTorch + transformers + Rust
 * tokenizers, checked to reproduce the PyLate fixtures within 2.4e-7).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { exportModel } from "../src/export/exporter.js";
import { ColbertEncoder, type Embedding } from "../src/runtime/encoder.js";
import type { SettingsOverrides } from "../src/colbert/settings.js";
import { silentLogger } from "../src/util/log.js";
import { fixtureModelDir, tempDir, FP32_TOLERANCE } from "./helpers/fixtures.js";

interface Encoded {
  text: string;
  input_ids: number[];
  embeddings: number[][];
}
interface Case {
  fixture: string;
  settings: Record<string, unknown>;
  queries: Encoded[];
  documents: Encoded[];
}
const DATA = JSON.parse(fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures-derived", "encode-cases.json"), "utf8")) as {
  cases: Record<string, Case>;
};

function overridesOf(s: Record<string, unknown>): SettingsOverrides {
  return {
    queryPrefix: s["query_prefix"] as string | undefined,
    documentPrefix: s["document_prefix"] as string | undefined,
    doQueryExpansion: s["do_query_expansion"] as boolean | undefined,
    attendToExpansionTokens: s["attend_to_expansion_tokens"] as boolean | undefined,
  };
}

function maxDiff(e: Embedding, rows: number[][], what: string): number {
  assert.equal(e.rows, rows.length, `${what}: row count`);
  let max = 0;
  rows.forEach((row, r) => row.forEach((v, c) => (max = Math.max(max, Math.abs(v - e.data[r * e.dim + c]!)))));
  return max;
}

for (const [name, c] of Object.entries(DATA.cases)) {
  test(`${name}: ${JSON.stringify(c.settings)} — ids and embeddings as PyLate (${FP32_TOLERANCE})`, async () => {
    const r = await exportModel({ model: fixtureModelDir(c.fixture), outputDir: tempDir(), overrides: overridesOf(c.settings), logger: silentLogger });
    const enc = await ColbertEncoder.load(r.dir);
    try {
      for (const [type, items] of [["query", c.queries], ["document", c.documents]] as const) {
        const ids = await enc.tokenizer.encodeBatch(items.map((i) => i.text), type);
        ids.forEach((t, i) => assert.deepEqual(t.ids, items[i]!.input_ids, `${type} ${i} ids`));
        const out = await enc.encode(items.map((i) => i.text), type);
        out.forEach((e, i) => {
          const d = maxDiff(e, items[i]!.embeddings, `${type} ${i}`);
          assert.ok(d <= FP32_TOLERANCE, `${type} ${i}: max |diff| ${d}`);
        });
      }
      const cfg = enc.config;
      if (c.settings["query_prefix"] === "") {
        assert.ok(c.documents.some((d) => d.input_ids.length === cfg.document_length), "a document fills the whole length");
      }
      if (c.settings["do_query_expansion"] === false) {
        assert.ok(c.queries.every((q) => q.embeddings.length < cfg.query_length && !q.input_ids.includes(cfg.mask_token_id)), "no expansion rows");
      }
    } finally {
      await enc.close();
    }
  });
}
