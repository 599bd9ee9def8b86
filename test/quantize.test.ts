/** INT8 dynamic quantization: fidelity on every fixture, both CLI forms, external data, bad inputs. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { quantizeModel } from "../src/quantize/index.js";
import { readModel } from "../src/onnx/reader.js";
import { allNodes } from "../src/onnx/model.js";
import { writeModel } from "../src/onnx/writer.js";
import { exportModel } from "../src/export/exporter.js";
import { silentLogger } from "../src/util/log.js";
import { expected, FIXTURE_NAMES, fixtureModelDir, runModel, tempDir } from "./helpers/fixtures.js";
import { exportedFixture, exportedFixtureCopy } from "./helpers/exported.js";
import { editInitializers } from "./helpers/onnx.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");

function cli(args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/quantize.ts"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function fidelity(name: string, modelFile: string) {
  const exp = expected(name);
  const out = await runModel(modelFile, exp.raw_batch, !!exp.raw_batch.token_type_ids);
  // Cosine of each attended row, written out here (independent of the quantizer's own).
  const cos: number[] = [];
  exp.raw_batch.output.forEach((seq, b) =>
    seq.forEach((want, s) => {
      if (exp.raw_batch.attention_mask[b]![s] !== 1) return;
      const got = out[b]![s]!;
      const dot = want.reduce((acc, v, d) => acc + v * got[d]!, 0);
      const norm = Math.sqrt(want.reduce((a, v) => a + v * v, 0) * got.reduce((a, v) => a + v * v, 0));
      cos.push(dot / norm);
    }),
  );
  assert.ok(cos.length > 10);
  return { mean: cos.reduce((a, b) => a + b, 0) / cos.length, min: Math.min(...cos) };
}

for (const name of FIXTURE_NAMES) {
  test(`${name}: INT8 output vs PyLate: mean cosine ≥ 0.9995, min ≥ 0.99`, async () => {
    const dir = await exportedFixtureCopy(name, "m");
    const warnings: string[] = [];
    const report = await quantizeModel(path.join(dir, "model.onnx"), path.join(dir, "model_int8.onnx"), { ...silentLogger, warn: (m) => warnings.push(m) });
    assert.deepEqual(warnings, []);
    assert.ok(report.outputBytes < report.inputBytes / 2.5, `${report.outputBytes} vs ${report.inputBytes}`);
    const { mean, min } = await fidelity(name, path.join(dir, "model_int8.onnx"));
    assert.ok(mean >= 0.9995, `mean cosine ${mean}`);
    assert.ok(min >= 0.99, `min cosine ${min}`);
    assert.ok(report.cosine.mean >= 0.9995 && report.cosine.rows > 0);
  });
}

test("the quantized graph uses onnxruntime's fusable INT8 pattern and keeps attention scores float", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert", "m");
  await quantizeModel(path.join(dir, "model.onnx"), path.join(dir, "model_int8.onnx"));
  const q = readModel(path.join(dir, "model_int8.onnx"));
  const nodes = [...allNodes(q.model.nodes)];
  const count = (op: string) => nodes.filter((n) => n.opType === op).length;
  // 2 layers × (q, k, v, out, ffn in, ffn out) + the Dense = 13 weights; q/k/v share one activation.
  assert.equal(count("MatMulInteger"), 13);
  assert.equal(count("DynamicQuantizeLinear"), 2 * 4 + 1);
  assert.equal(count("MatMul"), 4, "attention scores and context stay float");
  assert.ok(q.model.initializers.every((t) => !/^encoder\.layer\.\d+\..*\.weight$/.test(t.name) || t.dataType !== 1 || t.dims.length === 1));
  // Every MatMulInteger weight within ±64, the bound where u8·s8 pair sums cannot saturate int16
  // (VPMADDUBSW on x86 without VNNI), and each uses it all; embedding rows keep the full ±127.
  const inits = new Map(q.model.initializers.map((t) => [t.name, t]));
  const peak = (name: string) => {
    const d = inits.get(name)!.data();
    return new Int8Array(d.buffer, d.byteOffset, d.byteLength).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  };
  for (const n of nodes.filter((n) => n.opType === "MatMulInteger")) {
    assert.equal(inits.get(n.inputs[1]!)!.dataType, 3, "int8 weights");
    assert.equal(peak(n.inputs[1]!), 64, n.inputs[1]);
  }
  const tables = nodes.filter((n) => n.opType === "Gather" && inits.get(n.inputs[0]!)?.dataType === 3);
  assert.ok(tables.length > 0);
  for (const n of tables) assert.equal(peak(n.inputs[0]!), 127, n.inputs[0]);
  q.close();
  const session = await ort.InferenceSession.create(path.join(dir, "model_int8.onnx"), { optimizedModelFilePath: path.join(dir, "opt.onnx") });
  await session.release();
  const opt = readModel(path.join(dir, "opt.onnx"));
  assert.ok([...allNodes(opt.model.nodes)].some((n) => n.opType === "DynamicQuantizeMatMul" || n.opType === "MatMulIntegerToFloat"), "onnxruntime fused the pattern");
  opt.close();
});

test("colbert-quantize DIR writes DIR/model_int8.onnx; MODEL.onnx -o OUT writes OUT; --json reports", async () => {
  const dir = await exportedFixtureCopy("xlmr-tiny-colbert", "m");
  fs.rmSync(path.join(dir, "model_int8.onnx")); // written by the export by default
  let r = cli([dir, "--quiet"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.ok(fs.existsSync(path.join(dir, "model_int8.onnx")));
  // Again, right after: up to date (as after a default export), not an error; --json says so.
  const before = fs.statSync(path.join(dir, "model_int8.onnx")).mtimeMs;
  r = cli([dir, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /model_int8\.onnx is up to date .*pass --force to quantize again/);
  assert.equal(JSON.parse(r.stdout).up_to_date, true);
  assert.equal(fs.statSync(path.join(dir, "model_int8.onnx")).mtimeMs, before, "left as it was");
  // A model.onnx newer than its model_int8.onnx (re-exported, edited): quantized again.
  const later = new Date(Date.now() + 5_000);
  fs.utimesSync(path.join(dir, "model.onnx"), later, later);
  r = cli([dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /is older than model\.onnx: quantizing again/);
  // An explicit -o file that exists is the user's: refused without --force.
  const out = path.join(tempDir(), "custom.onnx");
  fs.writeFileSync(out, "mine");
  r = cli([path.join(dir, "model.onnx"), "-o", out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /already exists; pass --force/);
  assert.equal(fs.readFileSync(out, "utf8"), "mine");
  r = cli([path.join(dir, "model.onnx"), "-o", out, "--json", "--force"]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.output, out);
  assert.ok(report.cosine.mean > 0.9995);
  assert.match(r.stderr, /MB → .* MB .*cosine/);
});

test("a model with external data is quantized and its input left untouched", async () => {
  const src = await exportedFixture("modernbert-tiny-colbert");
  const dir = path.join(tempDir(), "ext");
  fs.cpSync(src, dir, { recursive: true });
  const m = readModel(path.join(src, "model.onnx"));
  writeModel(path.join(dir, "model.onnx"), m.model, { externalData: "always" });
  m.close();
  assert.ok(fs.existsSync(path.join(dir, "model.onnx.data")));
  const before = fs.readFileSync(path.join(dir, "model.onnx.data"));
  await quantizeModel(path.join(dir, "model.onnx"), path.join(dir, "model_int8.onnx"));
  assert.deepEqual(fs.readFileSync(path.join(dir, "model.onnx.data")), before);
  const { mean, min } = await fidelity("modernbert-tiny-colbert", path.join(dir, "model_int8.onnx"));
  assert.ok(mean >= 0.9995 && min >= 0.99, `${mean} ${min}`);
});

test("a model that quantizes badly is flagged: outlier weights leave the rest of their tensors a few levels", async () => {
  const dir = await exportedFixtureCopy("bert-tiny-colbert", "m");
  const file = path.join(dir, "model.onnx");
  // Every feed-forward weight gets one entry at 40× its largest: per-tensor scales then leave the
  // others a handful of levels.
  const edited = editInitializers(file, (t) =>
    /intermediate\.dense\.weight|output\.dense\.weight/.test(t.name) && t.dims.length === 2
      ? (w) => {
          w[0] = 40 * Math.max(...Array.from(w, Math.abs));
        }
      : undefined,
  );
  assert.ok(edited > 0);
  const warnings: string[] = [];
  const report = await quantizeModel(file, path.join(dir, "model_int8.onnx"), { ...silentLogger, warn: (m) => warnings.push(m) });
  assert.ok(report.cosine.mean < 0.999 || report.cosine.min < 0.99, JSON.stringify(report.cosine));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^Warning: the INT8 model drifts from FP32 on the probe texts \(mean cosine 0\.\d{4}, min -?\d\.\d{4};.*check retrieval quality/);
});

test("bad inputs: missing file, not ONNX, truncated ONNX, output = input", async () => {
  const work = tempDir();
  let r = cli([path.join(work, "nope.onnx")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: ONNX model not found/);
  fs.writeFileSync(path.join(work, "text.onnx"), "this is not a protobuf at all, just text\n".repeat(10));
  r = cli([path.join(work, "text.onnx")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: Not a valid ONNX model/);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  const good = fs.readFileSync(path.join(await exportedFixture("bert-tiny-colbert"), "model.onnx"));
  fs.writeFileSync(path.join(work, "cut.onnx"), good.subarray(0, Math.floor(good.length / 2)));
  r = cli([path.join(work, "cut.onnx"), "-o", path.join(work, "cut_int8.onnx")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: Not a valid ONNX model/);
  assert.ok(!fs.existsSync(path.join(work, "cut_int8.onnx")));
  fs.writeFileSync(path.join(work, "same.onnx"), good);
  r = cli([path.join(work, "same.onnx"), "-o", path.join(work, "same.onnx"), "--force"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is the input model/);
  assert.deepEqual(fs.readFileSync(path.join(work, "same.onnx")), good);
});

test("an export writes model_int8.onnx by default; quantize: false skips it, and a reused export gains it later", async () => {
  const out = tempDir();
  const model = fixtureModelDir("stanford-colbert-tiny");
  const first = await exportModel({ model, outputDir: out, logger: silentLogger, quantize: false });
  assert.ok(!first.files.includes("model_int8.onnx"));
  const again = await exportModel({ model, outputDir: out, logger: silentLogger });
  assert.equal(again.reused, true);
  assert.ok(again.files.includes("model_int8.onnx"));
  const fresh = await exportModel({ model, outputDir: tempDir(), logger: silentLogger });
  assert.ok(fresh.files.includes("model_int8.onnx"));
});
