/**
 * Tokenizer backends: exactness on the seeded multilingual texts of test/fixtures-tokenizer (ids
 * compared with what PyLate's rules give through the Rust library) and speed (texts/s tokenizing
 * 1000 documents, PyLate truncation included), for the native Rust binding (the default) and the
 * pure-JS fallback (the library used before).
 *   node --import tsx bench/tokenizer.ts
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { exportModel } from "../src/export/exporter.js";
import { ColbertTokenizer, type TokenizedText } from "../src/runtime/tokenizer.js";
import { silentLogger } from "../src/util/log.js";
import { machineLine } from "./checkpoints.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const data = JSON.parse(fs.readFileSync(path.join(root, "test", "fixtures-tokenizer", "expected.json"), "utf8")) as {
  texts: string[];
  cases: Record<string, { fixture: string; query_prefix: string; do_lower_case: boolean; documents: TokenizedText[] }>;
};
// 1000 English-like documents (~250 words) from the fixture texts' vocabulary.
const words = fs.readFileSync(path.join(root, "test", "fixtures", "bert-tiny-colbert", "expected.json"), "utf8").match(/[A-Za-z]{3,}/g)!;
const docs = Array.from({ length: 1000 }, (_, i) => Array.from({ length: 250 }, (_, j) => words[(i * 7919 + j * 31) % words.length]).join(" "));

console.log(`machine: ${machineLine()}; ${new Date().toISOString().slice(0, 10)}`);
console.log("case | backend | documents differing from PyLate | 1000 docs: texts/s (best of 5)");
for (const [name, c] of Object.entries(data.cases)) {
  const overrides = c.query_prefix === "" ? { queryPrefix: "", documentPrefix: "" } : undefined;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "bench-tok-"));
  const r = await exportModel({ model: path.join(root, "test", "fixtures", c.fixture, "model"), outputDir: out, overrides, logger: silentLogger });
  for (const backend of ["native", "js"] as const) {
    const tok = await ColbertTokenizer.fromFolder(r.dir, { ...r.onnxConfig, do_lower_case: c.do_lower_case }, { backend });
    const got = await tok.encodeBatch(data.texts, "document");
    const bad = got.filter((g, i) => JSON.stringify(g) !== JSON.stringify(c.documents[i])).length;
    let best = Infinity;
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      await tok.encodeBatch(docs, "document");
      best = Math.min(best, performance.now() - t);
    }
    console.log(`${name} | ${backend} | ${bad}/${data.texts.length} | ${(docs.length / (best / 1000)).toFixed(0)}`);
  }
  fs.rmSync(out, { recursive: true, force: true });
}
