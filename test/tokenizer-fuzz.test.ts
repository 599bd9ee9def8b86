/**
 * The runtime tokenizes any text as PyLate does: seeded random multilingual texts (CJK, Arabic,
 * Devanagari, emoji with joiners, combining marks, full-width forms, BOMs, zero-width and control
 * characters) give exactly the ids that the Rust tokenizers library with PyLate's rules gives
 * (test/fixtures-tokenizer/generate.py, run once with Python `tokenizers`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { exportModel } from "../src/export/exporter.js";
import { ColbertTokenizer, type TokenizedText } from "../src/runtime/tokenizer.js";
import type { OnnxConfig } from "../src/colbert/onnx-config.js";
import { pythonStrip } from "../src/colbert/text.js";
import { silentLogger } from "../src/util/log.js";
import { fixtureModelDir, tempDir } from "./helpers/fixtures.js";

interface Case {
  fixture: string;
  query_prefix: string;
  document_prefix: string;
  do_lower_case: boolean;
  queries: TokenizedText[];
  documents: TokenizedText[];
}
const data = JSON.parse(
  fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures-tokenizer", "expected.json"), "utf8"),
) as { texts: string[]; cases: Record<string, Case> };

function mismatches(actual: TokenizedText[], want: TokenizedText[]): string[] {
  const out: string[] = [];
  want.forEach((w, i) => {
    const a = actual[i]!;
    if (JSON.stringify(a.ids) !== JSON.stringify(w.ids) || JSON.stringify(a.mask) !== JSON.stringify(w.mask)) {
      out.push(`text ${i} ${JSON.stringify(data.texts[i]!.slice(0, 40))}: ${JSON.stringify(a.ids.slice(0, 12))}… vs ${JSON.stringify(w.ids.slice(0, 12))}…`);
    }
  });
  return out;
}

for (const [name, c] of Object.entries(data.cases)) {
  test(`${name}: ${data.texts.length} random multilingual texts tokenize exactly as PyLate (queries and documents)`, async () => {
    const overrides = c.query_prefix === "" ? { queryPrefix: "", documentPrefix: "" } : undefined;
    const r = await exportModel({ model: fixtureModelDir(c.fixture), outputDir: tempDir(), overrides, logger: silentLogger });
    const cfg: OnnxConfig = { ...r.onnxConfig, do_lower_case: c.do_lower_case };
    const tok = await ColbertTokenizer.fromFolder(r.dir, cfg);
    assert.equal(tok.backend, "native");
    assert.deepEqual(mismatches(await tok.encodeBatch(data.texts, "query"), c.queries), []);
    assert.deepEqual(mismatches(await tok.encodeBatch(data.texts, "document"), c.documents), []);
    if (c.query_prefix === "") {
      // PyLate reserves no slot for an empty prefix: a long text fills the whole length.
      assert.ok(c.documents.some((d) => d.ids.length === cfg.document_length));
      assert.ok(c.queries.every((q) => q.ids.length === cfg.query_length));
    }
  });
}

test("the texts exercise what differs between tokenizer implementations", () => {
  const all = data.texts.join("");
  for (const ch of ["\ufeff", "\u0085", "\u200d", "\u001c", "\u3000", "\u0301"]) assert.ok(all.includes(ch), JSON.stringify(ch));
  assert.ok(data.cases["bert-tiny-colbert"]!.documents.some((d) => d.ids.length === 180), "some documents are truncated");
  assert.ok(data.cases["bert-tiny-colbert"]!.queries.some((q) => q.mask.at(-1) === 1), "some queries are truncated");
});

test("the pure-JS tokenizer (fallback where native code cannot load) is not exact on a BOM: why native is the default", async () => {
  const c = data.cases["xlmr-tiny-colbert"]!;
  const r = await exportModel({ model: fixtureModelDir(c.fixture), outputDir: tempDir(), logger: silentLogger });
  const i = data.texts.indexOf("국 \ufeff ス");
  const js = await ColbertTokenizer.fromFolder(r.dir, r.onnxConfig, { backend: "js" });
  const native = await ColbertTokenizer.fromFolder(r.dir, r.onnxConfig, { backend: "native" });
  assert.equal(js.backend, "js");
  assert.deepEqual(await native.encode(data.texts[i]!, "document"), c.documents[i]);
  assert.notDeepEqual(await js.encode(data.texts[i]!, "document"), c.documents[i]);
});

test("text is stripped with Python's str.strip() semantics, not JavaScript's trim()", () => {
  assert.equal(pythonStrip("\ufeff a \ufeff"), "\ufeff a \ufeff");
  assert.equal(pythonStrip("\u0085\u001c\u001d\u001e\u001f a\u3000\u00a0\u2028\n"), "a");
  assert.equal(pythonStrip(" \t "), "");
  assert.equal(pythonStrip("\u200b a \u200b"), "\u200b a \u200b"); // zero-width space is not whitespace
});
