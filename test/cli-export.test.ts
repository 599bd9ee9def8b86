/** The pylate-onnx-export command: output, flags, and every bad input as a one-line error. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { copyFixture, fixtureModelDir, tempDir } from "./helpers/fixtures.js";
import { storedZip } from "./helpers/zip.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLI = path.join(ROOT, "src", "cli", "export.ts");

function cli(args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", CLI, ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, HF_HUB_OFFLINE: "1", HF_HOME: tempDir("hf-home-") }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI on `model` and asserts a one-line error matching `pattern`, exit 1, nothing written. */
function assertError(model: string, pattern: RegExp, extra: string[] = []) {
  const out = tempDir();
  const r = cli([model, "-o", out, "--quiet", ...extra]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^Error: /);
  assert.match(lines[0]!, pattern);
  assert.deepEqual(fs.readdirSync(out), [], "nothing written");
}

test("exports a fixture: all files, --json summary on stdout, --quiet keeps stderr empty", () => {
  const out = tempDir();
  const r = cli([fixtureModelDir("bert-tiny-colbert") + "/", "-o", out, "--quiet", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.dir, path.join(out, "bert-tiny-colbert-onnx"));
  assert.equal(summary.embedding_dim, 16);
  assert.equal(summary.model_class, "BertModel");
  for (const f of ["model.onnx", "model_int8.onnx", "tokenizer.json", "tokenizer_config.json", "config.json", "onnx_config.json", "config_sentence_transformers.json"]) {
    assert.ok(summary.files.includes(f), f);
  }
  assert.deepEqual(fs.readdirSync(out), ["bert-tiny-colbert-onnx"]);
});

test("--no-quantize skips model_int8.onnx; --quantize is accepted", () => {
  const out = tempDir();
  let r = cli([fixtureModelDir("bert-tiny-colbert"), "-o", out, "--quiet", "--json", "--no-quantize"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!JSON.parse(r.stdout).files.includes("model_int8.onnx"));
  r = cli([fixtureModelDir("bert-tiny-colbert"), "-o", tempDir(), "--quiet", "--json", "--quantize"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).files.includes("model_int8.onnx"));
});

test("progress goes to stderr without --quiet, and the self-check result is shown", () => {
  const r = cli([fixtureModelDir("modernbert-tiny-colbert"), "-o", tempDir()]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /Self-check passed/);
  assert.match(r.stderr, /Exported to /);
});

test("--help and --version exit 0", () => {
  assert.match(cli(["--help"]).stdout, /--push-to-hub/);
  const v = cli(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+/);
});

test("an unknown option is a one-line error", () => {
  assertError(fixtureModelDir("bert-tiny-colbert"), /unknown option '--frobnicate'/, ["--frobnicate"]);
});

test("missing model folder", () => {
  assertError(path.join(os.tmpdir(), "does-not-exist-xyz"), /Model folder not found/);
});

test("folder without weights", () => {
  const dir = copyFixture("bert-tiny-colbert");
  fs.rmSync(path.join(dir, "model.safetensors"));
  assertError(dir, /No weights found in .*model\.safetensors or pytorch_model\.bin/);
});

test("unsupported architecture names it and lists the supported ones", () => {
  const dir = copyFixture("bert-tiny-colbert");
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, architectures: ["GPT2Model"], model_type: "gpt2" }));
  assertError(dir, /Unsupported architecture GPT2Model; supported: .*BertModel.*ModernBertModel.*XLMRobertaModel/);
});

test("plain encoder without a projection", () => {
  const dir = copyFixture("bert-tiny-colbert");
  fs.rmSync(path.join(dir, "1_Dense"), { recursive: true });
  fs.rmSync(path.join(dir, "modules.json"));
  assertError(dir, /plain encoder.*--embedding-size/);
});

test("truncated safetensors", () => {
  const dir = copyFixture("bert-tiny-colbert");
  const file = path.join(dir, "model.safetensors");
  fs.truncateSync(file, fs.statSync(file).size - 1000);
  assertError(dir, /Corrupt safetensors file .*lies outside the file.*re-download/);
});

test("garbage safetensors header", () => {
  const dir = copyFixture("bert-tiny-colbert");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(16n);
  fs.writeFileSync(path.join(dir, "model.safetensors"), Buffer.concat([len, Buffer.from("{not json at all"), Buffer.alloc(64)]));
  assertError(dir, /Corrupt safetensors file .*not valid JSON/);
});

test("a malicious pickle is refused and nothing in it runs", () => {
  const dir = copyFixture("stanford-colbert-tiny");
  const marker = path.join(tempDir(), "pwned");
  // GLOBAL os.system, the shell command, TUPLE1, REDUCE, STOP: what pickle.loads would execute.
  const cmd = Buffer.from(`touch ${marker}`);
  const pkl = Buffer.concat([
    Buffer.from([0x80, 0x02]),
    Buffer.from("cos\nsystem\n", "latin1"),
    Buffer.from([0x58]),
    (() => { const b = Buffer.alloc(4); b.writeUInt32LE(cmd.length); return b; })(),
    cmd,
    Buffer.from([0x85, 0x52, 0x2e]),
  ]);
  fs.writeFileSync(path.join(dir, "pytorch_model.bin"), storedZip([{ name: "archive/data.pkl", data: pkl }, { name: "archive/version", data: Buffer.from("3\n") }]));
  assertError(dir, /Refusing to load .*os\.system.*safetensors/);
  assert.equal(fs.existsSync(marker), false);
});

test("legacy (non-zip) pytorch_model.bin", () => {
  const dir = copyFixture("stanford-colbert-tiny");
  fs.writeFileSync(path.join(dir, "pytorch_model.bin"), Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]));
  assertError(dir, /not a zip archive/);
});

test("unreadable and missing tokenizer.json", () => {
  const dir = copyFixture("bert-tiny-colbert");
  fs.writeFileSync(path.join(dir, "tokenizer.json"), "{ this is not json");
  assertError(dir, /Unreadable tokenizer\.json/);
  fs.rmSync(path.join(dir, "tokenizer.json"));
  assertError(dir, /No tokenizer\.json in .*save/);
});

test("weights that do not match config.json", () => {
  const dir = copyFixture("bert-tiny-colbert");
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
  assertError(dir, /no tensor "encoder\.layer\.2\..*does not match its config\.json/);
});

test("a Hub id that is not cached, with HF_HUB_OFFLINE=1, is a clear error", () => {
  assertError("some-org/some-colbert-model", /HF_HUB_OFFLINE is set and some-org\/some-colbert-model@main is not in the cache/);
});

test("modules.json pointing outside the model folder is refused", () => {
  const dir = copyFixture("bert-tiny-colbert");
  fs.writeFileSync(
    path.join(dir, "modules.json"),
    JSON.stringify([
      { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
      { idx: 1, name: "1", path: "../../etc", type: "pylate.models.Dense.Dense" },
    ]),
  );
  assertError(dir, /invalid module path "\.\.\/\.\.\/etc"/);
});

test("every command's --help has examples and the environment variables it reads; piping it into head is quiet", () => {
  for (const name of ["export", "quantize", "check", "encode", "serve"]) {
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src", "cli", `${name}.ts`), "--help"], { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, name);
    assert.match(r.stdout, /\nExamples:\n {2}\S/, name);
    const environment = r.stdout.slice(r.stdout.indexOf("\nEnvironment:"));
    // colbert-quantize reads local files only; the others may download from the Hub; only the export publishes.
    if (name === "quantize") assert.ok(!/HF_TOKEN/.test(environment) && /DEBUG=1/.test(environment), name);
    else assert.match(environment, /HF_TOKEN[\s\S]*HF_HUB_OFFLINE[\s\S]*DEBUG=1/, name);
    assert.equal(/--push-to-hub/.test(environment), name === "export", name);
  }
  const piped = spawnSync("sh", ["-c", `"${process.execPath}" --import tsx src/cli/serve.ts --help | head -1`], { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
  assert.equal(piped.stderr, "", "no EPIPE trace");
  assert.match(piped.stdout, /^Usage: colbert-serve/);
});

test("another model's export in the target folder is refused without --force (one line naming both sources); --force replaces it", () => {
  const root = tempDir();
  for (const [org, fixture] of [["org1", "bert-tiny-colbert"], ["org2", "modernbert-tiny-colbert"]] as const) {
    fs.cpSync(fixtureModelDir(fixture), path.join(root, org, "x"), { recursive: true });
  }
  const out = tempDir();
  let r = cli([path.join(root, "org1", "x"), "-o", out, "--quiet", "--no-quantize"]);
  assert.equal(r.code, 0, r.stderr);
  const config = fs.readFileSync(path.join(out, "x-onnx", "onnx_config.json"), "utf8");
  r = cli([path.join(root, "org2", "x"), "-o", out, "--quiet", "--no-quantize"]);
  assert.equal(r.code, 1);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(lines[0]!.includes(path.join(root, "org1", "x")) && lines[0]!.includes(path.join(root, "org2", "x")) && /pass --force to replace it/.test(lines[0]!), lines[0]);
  assert.equal(fs.readFileSync(path.join(out, "x-onnx", "onnx_config.json"), "utf8"), config, "the first export is untouched");
  r = cli([path.join(root, "org2", "x"), "-o", out, "--quiet", "--no-quantize", "--force"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(fs.readFileSync(path.join(out, "x-onnx", "onnx_config.json"), "utf8"), /ModernBert/);
});

test("a checkpoint folder named model is exported under its parent's name; --output-dir is the export folder itself, as in the Python tool", () => {
  const out = tempDir();
  let r = cli([fixtureModelDir("xlmr-tiny-colbert"), "-o", out, "--quiet", "--no-quantize"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(out), ["xlmr-tiny-colbert-onnx"]);
  const dir = path.join(tempDir(), "models", "mine");
  r = cli([fixtureModelDir("xlmr-tiny-colbert"), "--output-dir", dir, "--quiet", "--no-quantize", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).dir, dir);
  assert.ok(fs.existsSync(path.join(dir, "model.onnx")) && fs.existsSync(path.join(dir, "onnx_config.json")));
  r = cli([fixtureModelDir("xlmr-tiny-colbert"), "--output-dir", dir, "-o", out, "--quiet"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: Pass either -o\/--output \(the parent folder\) or --output-dir \(the export folder itself\), not both\n$/);
});
