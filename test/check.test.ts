/**
 * colbert-check audits an export folder: a clean export passes; each defect a user can meet (the
 * Python tool's configs, a hand-edited or half-copied folder, another quantizer's INT8) is named in
 * one line with its fix, errors giving exit code 1.
 */
import { test } from "node:test";
import { DEFAULT_CHUNK_TOKENS } from "../src/export/chunks.js";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { auditExport, type AuditReport } from "../src/check/audit.js";
import { readModel } from "../src/onnx/reader.js";
import { writeModel } from "../src/onnx/writer.js";
import { FIXTURE_NAMES, fixtureModelDir, tempDir } from "./helpers/fixtures.js";
import { exportedFixtureCopy } from "./helpers/exported.js";
import { editInitializers, fullRangeInt8 } from "./helpers/onnx.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");

function editJson(file: string, fn: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  fn(j);
  fs.writeFileSync(file, JSON.stringify(j));
}

function lines(r: AuditReport, level: "error" | "warning"): string[] {
  return r.findings.filter((f) => f.level === level).map((f) => `${f.subject}: ${f.message}`);
}

for (const name of FIXTURE_NAMES) {
  test(`${name}: a default export passes with no finding, settings equal to the checkpoint's`, async () => {
    const dir = await exportedFixtureCopy(name);
    const r = await auditExport(dir, { source: fixtureModelDir(name) });
    assert.deepEqual(r.findings, []);
    assert.equal(r.ok, true);
    assert.ok(r.checked.some((c) => /probe/.test(c)) && r.checked.some((c) => /model_int8\.onnx vs model\.onnx/.test(c)) && r.checked.some((c) => /settings vs/.test(c)), r.checked.join("; "));
    assert.ok(r.checked.includes("model.onnx graph (plain: every ONNX tool and GPU runtime takes it)"), r.checked.join("; "));
    assert.ok(r.checked.some((c) => c.startsWith(`model_int8.onnx graph (batches in chunks of ${DEFAULT_CHUNK_TOKENS} tokens`)), r.checked.join("; "));
  });
}

test("a model.onnx exported with --chunk-tokens is named as a Loop, with what it means for tools and GPUs", async () => {
  const { exportModel } = await import("../src/export/exporter.js");
  const { silentLogger } = await import("../src/util/log.js");
  const dir = (await exportModel({ model: fixtureModelDir("bert-tiny-colbert"), outputDir: tempDir(), logger: silentLogger, chunkTokens: 256, quantize: false })).dir;
  const r = await auditExport(dir);
  assert.ok(r.checked.includes("model.onnx graph (batches in chunks of 256 tokens, an ONNX Loop)"), r.checked.join("; "));
  assert.deepEqual(
    lines(r, "warning").filter((l) => /Loop/.test(l)).map((l) => /quantize_dynamic/.test(l) && /GPU runtimes/.test(l) && /re-export without --chunk-tokens/.test(l)),
    [true],
  );
});

const CASES: { what: string; fixture?: string; mutate: (dir: string) => void; source?: boolean; error?: RegExp; warning?: RegExp }[] = [
  { what: "null mask_token_id", mutate: (d) => editJson(path.join(d, "onnx_config.json"), (j) => (j["mask_token_id"] = null)), error: /onnx_config\.json: mask_token_id is null: NextPlaid cannot parse/ },
  {
    what: "the Python tool's do_query_expansion: false",
    source: true,
    mutate: (d) => editJson(path.join(d, "onnx_config.json"), (j) => (j["do_query_expansion"] = false)),
    error: /do_query_expansion is false but .*PyLate setting is true/,
  },
  { what: "uses_token_type_ids contradicting the graph", mutate: (d) => editJson(path.join(d, "onnx_config.json"), (j) => (j["uses_token_type_ids"] = false)), error: /takes token_type_ids but .*uses_token_type_ids: false/ },
  { what: "a wrong prefix id", mutate: (d) => editJson(path.join(d, "onnx_config.json"), (j) => (j["query_prefix_id"] = 5)), error: /query_prefix_id is 5 but tokenizer\.json gives "\[Q\] " id/ },
  { what: "a tokenizer that truncates", mutate: (d) => editJson(path.join(d, "tokenizer.json"), (j) => (j["truncation"] = { max_length: 16, strategy: "LongestFirst", stride: 0, direction: "Right" })), error: /tokenizer\.json: has a truncation setting/ },
  { what: "a missing model.onnx", mutate: (d) => fs.rmSync(path.join(d, "model.onnx")), error: /model\.onnx: missing/ },
  { what: "a missing key NextPlaid defaults differently", mutate: (d) => editJson(path.join(d, "onnx_config.json"), (j) => delete j["query_length"]), warning: /query_length missing: NextPlaid then uses 48/ },
  { what: "no model_int8.onnx", mutate: (d) => fs.rmSync(path.join(d, "model_int8.onnx")), warning: /model_int8\.onnx: missing: NextPlaid's --int8 and colgrep/ },
  { what: "full-range INT8 weights", mutate: fullRangeInt8, warning: /full-range int8 weights \(up to ±127\).*saturate/ },
  {
    what: "a skiplist NextPlaid reads differently from PyLate",
    mutate: (d) => editJson(path.join(d, "onnx_config.json"), (j) => (j["skiplist_words"] = (j["skiplist_words"] as string[]).filter((w) => w !== "[UNK]"))),
    warning: /are not tokens: PyLate maps them to "\[UNK\]".*add "\[UNK\]" to skiplist_words/,
  },
  { what: "an empty prefix", mutate: (d) => editJson(path.join(d, "onnx_config.json"), (j) => ((j["document_prefix"] = ""), (j["document_prefix_id"] = null))), warning: /empty document prefix: NextPlaid cannot serve/ },
  {
    what: "NaN weights (outputs not finite)",
    mutate: (d) => void editInitializers(path.join(d, "model.onnx"), (t) => (t.dims.length === 2 && t.dims[0]! > 100 ? (v) => v.fill(NaN) : undefined)),
    error: /model\.onnx: probe: non-finite output values/,
  },
  {
    what: "external data left behind",
    mutate: (d) => {
      const m = readModel(path.join(d, "model.onnx"));
      writeModel(path.join(d, "model.onnx.tmp"), m.model, { externalData: "always" });
      m.close();
      fs.renameSync(path.join(d, "model.onnx.tmp"), path.join(d, "model.onnx"));
      fs.rmSync(path.join(d, "model.onnx.tmp.data"), { force: true });
    },
    error: /\.data: missing: model\.onnx keeps its weights there/,
  },
];

for (const c of CASES) {
  test(`colbert-check names ${c.what}`, async () => {
    const fixture = c.fixture ?? "bert-tiny-colbert";
    const dir = await exportedFixtureCopy(fixture);
    c.mutate(dir);
    const r = await auditExport(dir, { source: c.source ? fixtureModelDir(fixture) : undefined });
    if (c.error) {
      assert.equal(r.ok, false);
      assert.ok(lines(r, "error").some((l) => c.error!.test(l)), lines(r, "error").join("\n") || "no error");
    } else {
      assert.equal(r.ok, true, lines(r, "error").join("\n"));
      assert.ok(lines(r, "warning").some((l) => c.warning!.test(l)), lines(r, "warning").join("\n") || "no warning");
    }
  });
}

test("the CLI prints one line per finding, exit 1 on errors, 0 on warnings only; --json; a missing folder is a one-line error", async () => {
  const cli = (args: string[]) => spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src", "cli", "check.ts"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  const dir = await exportedFixtureCopy("xlmr-tiny-colbert");
  let r = cli([dir]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^OK: .*0 error\(s\), 0 warning\(s\)$/m);
  fs.rmSync(path.join(dir, "model_int8.onnx"));
  editJson(path.join(dir, "onnx_config.json"), (j) => (j["pad_token_id"] = null));
  r = cli([dir, "--quiet"]);
  assert.equal(r.status, 1);
  assert.deepEqual(
    r.stdout.trimEnd().split("\n").map((l) => l.split(":")[0]),
    ["error", "warning", "FAILED"],
    r.stdout,
  );
  r = cli([dir, "--json"]);
  assert.equal(r.status, 1);
  const report = JSON.parse(r.stdout) as AuditReport;
  assert.equal(report.ok, false);
  assert.equal(report.findings.length, 2);
  r = cli([path.join(tempDir(), "nope")]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^Error: Export folder not found: .*; pass a folder holding model\.onnx/);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1);
});

test("colbert-check on a checkpoint folder says to export it first; an item with an error is not also ok; an unreadable config says --source was not compared", async () => {
  await assert.rejects(auditExport(fixtureModelDir("bert-tiny-colbert")), /is a checkpoint folder .*not an ONNX export: run pylate-onnx-export/);
  const dir = await exportedFixtureCopy("bert-tiny-colbert");
  editJson(path.join(dir, "onnx_config.json"), (j) => (j["mask_token_id"] = null));
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src", "cli", "check.ts"), dir, "--source", fixtureModelDir("bert-tiny-colbert")], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stdout, /^error: onnx_config\.json: mask_token_id is null/m);
  assert.doesNotMatch(r.stdout, /^ok: onnx_config\.json/m);
  assert.match(r.stdout, /^warning: --source: the settings were not compared with /m);
});
