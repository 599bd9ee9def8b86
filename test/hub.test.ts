/** Hub downloads (cache layout, revisions, offline, errors) and pushes, against a loopback Hub. */
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { FakeHub, TOKEN } from "./helpers/hub-server.js";
import { downloadModel, downloadRepo } from "../src/hub/download.js";
import { DEFAULT_CHUNK_TOKENS } from "../src/export/chunks.js";
import { pushFolder } from "../src/hub/upload.js";
import { exportModel } from "../src/export/exporter.js";
import { silentLogger } from "../src/util/log.js";
import { expected, FIXTURE_NAMES, fixtureModelDir, maxDiffOnAttended, runModel, tempDir, FP32_TOLERANCE } from "./helpers/fixtures.js";
import { exportedFixture, exportedFixtureCopy } from "./helpers/exported.js";
import { startServe } from "./helpers/serve.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const hub = new FakeHub();
const saved = { ...process.env };

before(async () => {
  await hub.start();
  for (const name of FIXTURE_NAMES) hub.addFolder(`test-org/${name}`, fixtureModelDir(name));
  hub.addFolder("secret-org/bert-tiny-colbert", fixtureModelDir("bert-tiny-colbert"), { private: true });
});
after(async () => {
  await hub.stop();
  process.env = saved;
});
beforeEach(() => {
  const home = tempDir("hf-home-");
  process.env = { ...saved, HF_ENDPOINT: hub.url, HF_HOME: home, HF_HUB_CACHE: path.join(home, "hub") };
  delete process.env["HF_TOKEN"];
  delete process.env["HF_HUB_OFFLINE"];
});

const resolveGets = () => hub.requests.filter((r) => r.startsWith("GET ") && r.includes("/resolve/")).length;

for (const name of FIXTURE_NAMES) {
  test(`export by id (${name}) matches PyLate like the local path`, async () => {
    const exp = expected(name);
    const r = await exportModel({ model: `test-org/${name}`, outputDir: tempDir(), logger: silentLogger });
    assert.equal(path.basename(r.dir), `${name}-onnx`);
    assert.equal(r.onnxConfig.model_name, `test-org/${name}`);
    const out = await runModel(path.join(r.dir, "model.onnx"), exp.raw_batch, r.onnxConfig.uses_token_type_ids);
    assert.ok(maxDiffOnAttended(out, exp.raw_batch.output, exp.raw_batch.attention_mask) <= FP32_TOLERANCE);
  });
}

test("downloads land in the huggingface_hub cache layout and are reused", async () => {
  const { dir, commit } = await downloadModel("test-org/bert-tiny-colbert", { quiet: true });
  const repo = path.join(process.env["HF_HUB_CACHE"]!, "models--test-org--bert-tiny-colbert");
  assert.equal(fs.readFileSync(path.join(repo, "refs", "main"), "utf8"), commit);
  assert.equal(dir, path.join(repo, "snapshots", commit));
  const weights = path.join(dir, "model.safetensors");
  assert.ok(fs.lstatSync(weights).isSymbolicLink());
  const sha = crypto.createHash("sha256").update(fs.readFileSync(weights)).digest("hex");
  assert.equal(fs.readlinkSync(weights), path.join("..", "..", "blobs", sha), "LFS blobs are named by sha256");
  assert.ok(fs.lstatSync(path.join(dir, "1_Dense", "model.safetensors")).isSymbolicLink());
  assert.equal(fs.readlinkSync(path.join(dir, "1_Dense", "config.json")).split(path.sep).slice(0, 4).join("/"), "../../../blobs");
  assert.ok(!fs.existsSync(path.join(dir, "README.md")));
  const before = resolveGets();
  await downloadModel("test-org/bert-tiny-colbert", { quiet: true });
  assert.equal(resolveGets(), before, "nothing downloaded twice");
});

test("a cache written by Python's huggingface_hub is reused", async () => {
  const src = fixtureModelDir("xlmr-tiny-colbert");
  const info = (await (await fetch(`${hub.url}/api/models/test-org/xlmr-tiny-colbert/revision/main`)).json()) as { sha: string; siblings: { rfilename: string }[] };
  const repo = path.join(process.env["HF_HUB_CACHE"]!, "models--test-org--xlmr-tiny-colbert");
  for (const { rfilename } of info.siblings) {
    const data = fs.readFileSync(path.join(src, rfilename));
    const blob = path.join(repo, "blobs", crypto.createHash("sha256").update(data).digest("hex"));
    fs.mkdirSync(path.dirname(blob), { recursive: true });
    fs.writeFileSync(blob, data);
    const link = path.join(repo, "snapshots", info.sha, rfilename);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.relative(path.dirname(link), blob), link);
  }
  fs.mkdirSync(path.join(repo, "refs"), { recursive: true });
  fs.writeFileSync(path.join(repo, "refs", "main"), info.sha);
  const before = resolveGets();
  const r = await exportModel({ model: "test-org/xlmr-tiny-colbert", outputDir: tempDir(), logger: silentLogger });
  assert.equal(resolveGets(), before);
  assert.equal(r.onnxConfig.embedding_dim, 24);
});

test("--revision picks a branch and records its ref", async () => {
  const files = new Map(hub.repos.get("test-org/bert-tiny-colbert")!.commits.get(hub.repos.get("test-org/bert-tiny-colbert")!.refs.get("main")!)!);
  const cfg = JSON.parse(files.get("config_sentence_transformers.json")!.toString());
  files.set("config_sentence_transformers.json", Buffer.from(JSON.stringify({ ...cfg, query_length: 40 })));
  const sha = hub.addCommit("test-org/bert-tiny-colbert", files, "v2");
  const r = await exportModel({ model: "test-org/bert-tiny-colbert", revision: "v2", outputDir: tempDir(), logger: silentLogger });
  assert.equal(r.onnxConfig.query_length, 40);
  const repo = path.join(process.env["HF_HUB_CACHE"]!, "models--test-org--bert-tiny-colbert");
  assert.equal(fs.readFileSync(path.join(repo, "refs", "v2"), "utf8"), sha);
  await assert.rejects(downloadModel("test-org/bert-tiny-colbert", { revision: "nope", quiet: true }), /Revision "nope" not found/);
});

test("offline mode uses the cache only and says so when the model is not there", async () => {
  await downloadModel("test-org/stanford-colbert-tiny", { quiet: true });
  process.env["HF_HUB_OFFLINE"] = "1";
  const n = hub.requests.length;
  const r = await exportModel({ model: "test-org/stanford-colbert-tiny", outputDir: tempDir(), logger: silentLogger });
  assert.equal(r.onnxConfig.query_prefix, "[unused0]");
  assert.equal(hub.requests.length, n, "no request offline");
  await assert.rejects(downloadModel("test-org/modernbert-tiny-colbert", { quiet: true }), /HF_HUB_OFFLINE is set and test-org\/modernbert-tiny-colbert@main is not in the cache/);
});

test("unknown model and private model without token (401 RepoNotFound, as huggingface.co answers) give clear errors; a token opens it", async () => {
  await assert.rejects(downloadModel("test-org/does-not-exist", { quiet: true }), /^UserError: Model not found: test-org\/does-not-exist: check the id \(set HF_TOKEN if it is private\)$/);
  await assert.rejects(downloadModel("secret-org/bert-tiny-colbert", { quiet: true }), /Model not found: secret-org\/bert-tiny-colbert: check the id \(set HF_TOKEN if it is private\)/);
  fs.writeFileSync(path.join(process.env["HF_HOME"]!, "token"), TOKEN + "\n"); // as huggingface-cli login writes it
  const { dir } = await downloadModel("secret-org/bert-tiny-colbert", { quiet: true });
  assert.ok(fs.existsSync(path.join(dir, "model.safetensors")));
});

test("an unreachable Hub is a clear error", async () => {
  process.env["HF_ENDPOINT"] = "http://127.0.0.1:9"; // discard port: connection refused
  await assert.rejects(downloadModel("test-org/bert-tiny-colbert", { quiet: true }), /Cannot reach the Hub at http:\/\/127\.0\.0\.1:9 .*HF_HUB_OFFLINE=1/);
});

test("a Hub that accepts connections and never answers times out with a clear error", async () => {
  const silent = net.createServer(() => {}); // accepts, never writes
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  try {
    process.env["HF_ENDPOINT"] = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    process.env["HF_HUB_DOWNLOAD_TIMEOUT"] = "0.3";
    const t = performance.now();
    await assert.rejects(downloadModel("test-org/bert-tiny-colbert", { quiet: true }), /did not answer within 0\.3 s for test-org\/bert-tiny-colbert; check your network \(HF_HUB_DOWNLOAD_TIMEOUT raises the limit\)/);
    assert.ok(performance.now() - t < 5000);
  } finally {
    silent.close();
  }
});

test("with the Hub unreachable, a model already in the cache is used (with a warning)", async () => {
  const first = await downloadModel("test-org/xlmr-tiny-colbert", { quiet: true });
  process.env["HF_ENDPOINT"] = "http://127.0.0.1:9";
  const warnings: string[] = [];
  const logger = { info: () => {}, warn: (m: string) => warnings.push(m), bar: () => ({ update: () => {}, stop: () => {} }) };
  const again = await downloadModel("test-org/xlmr-tiny-colbert", { logger });
  assert.equal(again.dir, first.dir);
  assert.match(warnings.join("\n"), /Cannot reach the Hub .*; using the copy of test-org\/xlmr-tiny-colbert@main in the cache/);
  // Not in the cache: the network error stands.
  await assert.rejects(downloadModel("test-org/bert-tiny-colbert", { logger }), /Cannot reach the Hub/);
});

test("a corrupted download is detected and leaves no blob behind", async () => {
  hub.corrupt.add("model.safetensors");
  try {
    await assert.rejects(downloadModel("test-org/bert-tiny-colbert", { quiet: true }), /Download of model\.safetensors from test-org\/bert-tiny-colbert is corrupt \(sha256 mismatch\)/);
  } finally {
    hub.corrupt.delete("model.safetensors");
  }
  const blobs = path.join(process.env["HF_HUB_CACHE"]!, "models--test-org--bert-tiny-colbert", "blobs");
  const data = fs.readFileSync(path.join(fixtureModelDir("bert-tiny-colbert"), "model.safetensors"));
  const sha = crypto.createHash("sha256").update(data).digest("hex");
  assert.ok(!fs.readdirSync(blobs).some((f) => f.startsWith(sha)), "neither the blob nor its partial file remains");
  // The next attempt succeeds.
  const { dir } = await downloadModel("test-org/bert-tiny-colbert", { quiet: true });
  assert.deepEqual(fs.readFileSync(path.join(dir, "model.safetensors")), data);
});

test("file names with .. from the Hub are refused", async () => {
  hub.addCommit("evil-org/model", new Map([["config.json", Buffer.from("{}")], ["../../../escape.txt", Buffer.from("x")]]));
  await assert.rejects(downloadModel("evil-org/model", { quiet: true }), /Refusing file name "\.\.\/\.\.\/\.\.\/escape\.txt" from the Hub/);
});

test("push: every file (LFS for large ones, external data included) and a model card in one commit; re-push works; a fresh download matches byte for byte", async () => {
  process.env["HF_TOKEN"] = TOKEN;
  const dir = await exportedFixtureCopy("modernbert-tiny-colbert");
  fs.writeFileSync(path.join(dir, "model.onnx.data"), crypto.randomBytes(1024));
  fs.writeFileSync(path.join(dir, "big.bin"), crypto.randomBytes(11 * 2 ** 20));
  const commitsBefore = hub.requests.filter((r) => r.includes("/commit/")).length;
  const pushed = await pushFolder(dir, "me/pushed-colbert", { sourceModel: "lightonai/GTE-ModernColBERT-v1" });
  assert.equal(pushed.url, `${hub.url}/me/pushed-colbert`);
  assert.equal(hub.requests.filter((r) => r.includes("/commit/")).length, commitsBefore + 1, "one commit");
  assert.ok(hub.requests.some((r) => r === "PUT /lfs-upload/" + crypto.createHash("sha256").update(fs.readFileSync(path.join(dir, "big.bin"))).digest("hex")));
  const repo = hub.repos.get("me/pushed-colbert")!;
  const files = repo.commits.get(repo.refs.get("main")!)!;
  for (const f of fs.readdirSync(dir).filter((f) => !f.startsWith("."))) assert.deepEqual(files.get(f), fs.readFileSync(path.join(dir, f)), f);
  assert.ok(![...files.keys()].some((f) => f.startsWith(".")), "the export manifest (a dotfile) is not uploaded");
  const card = files.get("README.md")!.toString();
  assert.match(card, /base_model: lightonai\/GTE-ModernColBERT-v1/);
  assert.match(card, /ModernBertModel/);
  assert.match(card, /\| `model\.onnx` \|/);
  assert.match(card, /model\.onnx is a plain graph .*every ONNX tool, optimizer and GPU runtime takes it/, "the card says model.onnx is the plain graph");
  assert.match(card, new RegExp(`model_int8\\.onnx \\(dynamic INT8, which runs on CPUs\\) runs each batch in chunks of about ${DEFAULT_CHUNK_TOKENS} tokens`), "and that the INT8 model chunks its batches");
  // Pushing again to the existing repo is fine.
  await pushFolder(dir, "me/pushed-colbert", {});
  // A fresh download of the pushed repo gives the same bytes and a model that runs.
  process.env["HF_HUB_CACHE"] = tempDir("fresh-cache-");
  const got = await downloadRepo("me/pushed-colbert", { quiet: true });
  for (const f of fs.readdirSync(dir).filter((f) => !f.startsWith("."))) assert.deepEqual(fs.readFileSync(path.join(got.dir, f)), fs.readFileSync(path.join(dir, f)), f);
  const s = await ort.InferenceSession.create(path.join(got.dir, "model.onnx"));
  await s.release();
});

test("push without a token, and a token the Hub refuses, are clear errors", async () => {
  const dir = await exportedFixture("bert-tiny-colbert");
  await assert.rejects(pushFolder(dir, "me/x"), /needs a token: set HF_TOKEN or run `huggingface-cli login`/);
  process.env["HF_TOKEN"] = "hf_wrong_token_value";
  await assert.rejects(pushFolder(dir, "me/x"), /refused to create me\/x \(HTTP 401\)/);
});

/** Runs the CLI without blocking this process (the fake Hub answers from it). */
function cliAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/export.ts"), ...args], { cwd: ROOT, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

test("CLI: export by id with --push-to-hub, one JSON line; errors never print the token", async () => {
  const env = { ...process.env, HF_TOKEN: TOKEN };
  const out = tempDir();
  const cli = (args: string[]) => cliAsync(args, env);
  let r = await cli(["test-org/xlmr-tiny-colbert", "-o", out, "--push-to-hub", "me/xlmr-onnx", "--quantize", "--json", "--quiet"]);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.pushed, `${hub.url}/me/xlmr-onnx`);
  const repo = hub.repos.get("me/xlmr-onnx")!;
  const files = repo.commits.get(repo.refs.get("main")!)!;
  assert.ok(files.has("model_int8.onnx") && files.has("onnx_config.json") && files.has("README.md"));
  // Publishing an existing export folder.
  r = await cli([path.join(out, "xlmr-tiny-colbert-onnx"), "--push-to-hub", "me/xlmr-again", "--quiet"]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(hub.repos.has("me/xlmr-again"));
  for (const args of [["test-org/nope"], ["secret-org/bert-tiny-colbert", "--push-to-hub", "other/x"]]) {
    r = await cliAsync([...args, "-o", tempDir(), "--quiet"], { ...env, HF_TOKEN: args[0] === "test-org/nope" ? TOKEN : "hf_wrong_token_value" });
    assert.equal(r.status, 1);
    assert.ok(!r.stderr.includes(TOKEN) && !r.stderr.includes("hf_wrong_token_value"), r.stderr);
    assert.match(r.stderr, /^Error: /);
  }
});

test("an interrupted download resumes from its partial file", async () => {
  const data = fs.readFileSync(path.join(fixtureModelDir("modernbert-tiny-colbert"), "model.safetensors"));
  const sha = crypto.createHash("sha256").update(data).digest("hex");
  const blobs = path.join(process.env["HF_HUB_CACHE"]!, "models--test-org--modernbert-tiny-colbert", "blobs");
  fs.mkdirSync(blobs, { recursive: true });
  fs.writeFileSync(path.join(blobs, `${sha}.incomplete`), data.subarray(0, 100_000));
  const { dir } = await downloadModel("test-org/modernbert-tiny-colbert", { quiet: true });
  assert.deepEqual(fs.readFileSync(path.join(dir, "model.safetensors")), data);
  assert.ok(!fs.existsSync(path.join(blobs, `${sha}.incomplete`)));
  assert.ok(hub.ranges.includes("bytes=100000-"), "only the missing bytes were requested");
});

test("--push-to-hub with a token the Hub rejects fails before the download and the export", async () => {
  const out = tempDir();
  const before = hub.requests.length;
  const r = await cliAsync(["test-org/bert-tiny-colbert", "-o", out, "--push-to-hub", "me/x", "--quiet"], { ...process.env, HF_TOKEN: "hf_not_valid" });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^Error: The Hub rejects the token \(HTTP 401\): set a valid HF_TOKEN/);
  assert.deepEqual(hub.requests.slice(before), ["GET /api/whoami-v2"], "only the token check reached the Hub");
  assert.deepEqual(fs.readdirSync(out), []);
});

test("colbert-serve --model: a published export's id downloads what a runtime needs; a checkpoint's id is exported once, then reused", async () => {
  hub.addFolder("test-org/bert-onnx", await exportedFixture("bert-tiny-colbert"));
  const env = { ...process.env, PYLATE_ONNX_EXPORT_CACHE: tempDir("export-cache-") };
  const before = hub.requests.length;
  let serve = await startServe(["--model", "test-org/bert-onnx", "--int8"], env);
  try {
    assert.match(serve.stderr(), /Model: published export test-org\/bert-onnx@\w+ from the Hub cache/);
    assert.match(serve.stderr(), /model_int8\.onnx, INT8\)/);
    const res = await fetch(serve.url + "/encode", { method: "POST", body: JSON.stringify({ texts: ["hello"], input_type: "query" }) });
    assert.equal(res.status, 200);
  } finally {
    assert.equal(await serve.stop(), 0);
  }
  const fetched = hub.requests.slice(before).filter((r) => r.startsWith("GET ") && r.includes("/resolve/")).map((r) => r.split("/").pop());
  assert.ok(fetched.includes("model_int8.onnx") && fetched.includes("onnx_config.json") && fetched.includes("tokenizer.json"), fetched.join(" "));
  assert.ok(!fetched.includes("model.onnx"), "the FP32 model is not downloaded when INT8 is served");

  for (const expected of [/Model: fresh export of the checkpoint test-org\/bert-tiny-colbert@main/, /Model: cached export of the checkpoint test-org\/bert-tiny-colbert@main/]) {
    serve = await startServe(["--model", "test-org/bert-tiny-colbert", "--fp32"], env);
    try {
      assert.match(serve.stderr(), expected);
      const res = await fetch(serve.url + "/encode", { method: "POST", body: JSON.stringify({ texts: ["hello"], input_type: "document" }) });
      assert.equal(res.status, 200);
    } finally {
      assert.equal(await serve.stop(), 0);
    }
  }
});

test("--push-to-hub --private creates the repo private; --revision exports that branch", async () => {
  hub.addFolder("test-org/two-branches", fixtureModelDir("bert-tiny-colbert"));
  hub.addFolder("test-org/two-branches", fixtureModelDir("xlmr-tiny-colbert"), { branch: "xlmr" });
  const env = { ...process.env, HF_TOKEN: TOKEN };
  let r = await cliAsync(["test-org/two-branches", "--revision", "xlmr", "-o", tempDir(), "--no-quantize", "--json", "--quiet", "--push-to-hub", "me/private-export", "--private"], env);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(fs.readFileSync(path.join(JSON.parse(r.stdout).dir, "onnx_config.json"), "utf8")).model_class, "XLMRobertaModel", "the branch's model");
  assert.equal(hub.repos.get("me/private-export")?.private, true);
  r = await cliAsync(["test-org/two-branches", "-o", tempDir(), "--no-quantize", "--json", "--quiet"], env);
  assert.equal(JSON.parse(fs.readFileSync(path.join(JSON.parse(r.stdout).dir, "onnx_config.json"), "utf8")).model_class, "BertModel", "main by default");
});
