/**
 * The exported tokenizer.json reproduces PyLate's input_ids for every fixture text: tokenize with
 * the template, truncate to length − 1, insert the prefix id after the first token, pad queries
 * with the mask id to query_length (SPEC §6).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { exportModel } from "../src/export/exporter.js";
import { silentLogger } from "../src/util/log.js";
import { expected, FIXTURE_NAMES, fixtureModelDir, tempDir } from "./helpers/fixtures.js";

for (const name of FIXTURE_NAMES) {
  test(`${name}: exported tokenizer.json gives PyLate's input_ids for every query and document`, async () => {
    const exp = expected(name);
    const r = await exportModel({ model: fixtureModelDir(name), outputDir: tempDir(), logger: silentLogger });
    const cfg = r.onnxConfig;
    const read = (f: string) => JSON.parse(fs.readFileSync(path.join(r.dir, f), "utf8"));
    const tok = new Tokenizer(read("tokenizer.json"), read("tokenizer_config.json"));
    const encode = (text: string, prefixId: number | null, length: number) => {
      const withSpecials = tok.encode(text.trim(), { add_special_tokens: true }).ids;
      const content = tok.encode(text.trim(), { add_special_tokens: false }).ids;
      const specials = withSpecials.length - content.length; // [CLS] … [SEP]
      const budget = length - 1 - specials;
      const ids = content.length > budget ? [withSpecials[0]!, ...content.slice(0, budget), withSpecials.at(-1)!] : withSpecials;
      if (prefixId !== null) ids.splice(1, 0, prefixId);
      return ids;
    };
    for (const d of exp.documents) assert.deepEqual(encode(d.text, cfg.document_prefix_id, cfg.document_length), d.input_ids, d.text);
    for (const q of exp.queries) {
      const ids = encode(q.text, cfg.query_prefix_id, cfg.query_length);
      const padded = [...ids, ...Array(cfg.query_length - ids.length).fill(cfg.mask_token_id)];
      assert.deepEqual(padded, q.input_ids, q.text);
      assert.deepEqual(q.attention_mask, padded.map((_, i) => (i < ids.length ? 1 : 0)));
    }
  });
}
