/**
 * Trust: an export is reused only for the same source and settings; files the tool did not write
 * survive a re-export; an interrupt leaves no debris and a later run sweeps a killed run's;
 * OS failures (read-only folder, busy port, bad --port) are one-line errors before any heavy work;
 * local paths are never Hub ids; --push-to-hub is checked before the export.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { exportModel } from "../src/export/exporter.js";
import { MANIFEST_FILE, mismatch, sourceIdOf } from "../src/export/manifest.js";
import { DEFAULT_CHUNK_TOKENS } from "../src/export/chunks.js";
import { environmentError } from "../src/errors.js";
import type { Logger } from "../src/util/log.js";
import { copyFixture, fixtureModelDir, tempDir } from "./helpers/fixtures.js";
import { bertShaped } from "../bench/checkpoints.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const cliPath = (name: string) => path.join(ROOT, "src", "cli", `${name}.ts`);
/** tsx by URL, so the CLI can run from any working folder. */
const TSX = pathToFileURL(path.join(ROOT, "node_modules", "tsx", "dist", "loader.mjs")).href;

function cli(name: string, args: string[], env: Record<string, string> = {}, cwd = ROOT) {
  const r = spawnSync(process.execPath, ["--import", TSX, cliPath(name), ...args], {
    cwd,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, HF_HUB_OFFLINE: "1", HF_HOME: tempDir("hf-home-"), ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function recording(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(m), warn: (m) => lines.push(m), bar: () => ({ update: () => {}, stop: () => {} }) };
}

/** Two different checkpoints in folders that share their last segment (`model`). */
function twoModels(): [string, string] {
  const a = path.join(tempDir(), "a", "model");
  const b = path.join(tempDir(), "b", "model");
  fs.mkdirSync(path.dirname(a), { recursive: true });
  fs.mkdirSync(path.dirname(b), { recursive: true });
  fs.cpSync(fixtureModelDir("bert-tiny-colbert"), a, { recursive: true });
  fs.cpSync(fixtureModelDir("xlmr-tiny-colbert"), b, { recursive: true });
  return [a, b];
}

test("another model with the same folder name is never answered with, nor silently replaced by, the first one's export", async () => {
  const out = tempDir();
  const [a, b] = twoModels();
  // Folders named "model" are named after their parent: a-onnx and b-onnx.
  const first = await exportModel({ model: a, outputDir: out, logger: recording() });
  const other = await exportModel({ model: b, outputDir: out, logger: recording() });
  assert.deepEqual([path.basename(first.dir), path.basename(other.dir)], ["a-onnx", "b-onnx"]);
  // Two sources whose folders share a name: the second is refused, the first export kept.
  const x1 = path.join(tempDir(), "x");
  const x2 = path.join(tempDir(), "x");
  fs.cpSync(a, x1, { recursive: true });
  fs.cpSync(b, x2, { recursive: true });
  const kept = await exportModel({ model: x1, outputDir: out, logger: recording() });
  assert.equal(kept.onnxConfig.model_class, "BertModel");
  await assert.rejects(exportModel({ model: x2, outputDir: out, logger: recording() }), (e: Error) => e.message.includes(x1) && e.message.includes(x2) && /pass --force to replace it/.test(e.message));
  assert.equal(JSON.parse(fs.readFileSync(path.join(kept.dir, "onnx_config.json"), "utf8")).model_class, "BertModel");
  const second = await exportModel({ model: x2, outputDir: out, logger: recording(), force: true });
  assert.equal(second.reused, false);
  assert.equal(second.onnxConfig.model_class, "XLMRobertaModel");
  const again = await exportModel({ model: x2, outputDir: out, logger: recording() });
  assert.equal(again.reused, true, "the same source is reused");
});

test("reuse needs the same Hub id, revision, explicit settings, embedding size and chunking", () => {
  const hub = sourceIdOf("org1/x", undefined, false);
  const m = { tool: "pylate-onnx-export" as const, version: "0", source: hub, overrides: { queryLength: 16 }, embedding_size: null, chunk_tokens: 0, files: [] };
  assert.equal(mismatch(m, sourceIdOf("org1/x", "main", false), { queryLength: 16 }, undefined), undefined);
  assert.match(mismatch(m, sourceIdOf("org2/x", undefined, false), { queryLength: 16 }, undefined)!, /exported from org1\/x@main/);
  assert.match(mismatch(m, sourceIdOf("org1/x", "v2", false), { queryLength: 16 }, undefined)!, /exported from org1\/x@main/);
  assert.match(mismatch(m, hub, {}, undefined)!, /other settings/, "dropping an override is a change too");
  assert.match(mismatch(m, hub, { queryLength: 16 }, 64)!, /embedding-size/);
  assert.match(mismatch(undefined, hub, {}, undefined)!, /no record of its source/);
  assert.match(mismatch({ ...m, chunk_tokens: DEFAULT_CHUNK_TOKENS }, hub, { queryLength: 16 }, undefined)!, new RegExp(`made with batches in chunks of ${DEFAULT_CHUNK_TOKENS} tokens`));
  const { chunk_tokens: _, ...older } = m; // exports made before the batch loop: plain graphs, as the default now
  assert.match(mismatch(older, hub, { queryLength: 16 }, undefined, DEFAULT_CHUNK_TOKENS)!, /as a plain graph/);
  assert.equal(mismatch(older, hub, { queryLength: 16 }, undefined, 0), undefined);
});

test("files the tool did not write survive --force and a settings change", async () => {
  const out = tempDir();
  const model = copyFixture("bert-tiny-colbert");
  const r = await exportModel({ model, outputDir: out, logger: recording() });
  fs.writeFileSync(path.join(r.dir, "README.md"), "my notes");
  fs.mkdirSync(path.join(r.dir, "eval", "runs"), { recursive: true });
  fs.writeFileSync(path.join(r.dir, "eval", "runs", "1.json"), "{}");
  fs.writeFileSync(path.join(r.dir, ".gitignore"), "*.onnx\n");
  const log = recording();
  await exportModel({ model, outputDir: out, force: true, logger: log });
  assert.ok(log.lines.some((l) => /Kept 3 file\(s\) of yours .*\.gitignore, README\.md, eval/.test(l)), log.lines.join("\n"));
  await exportModel({ model, outputDir: out, overrides: { queryLength: 24 }, logger: recording() });
  assert.equal(fs.readFileSync(path.join(r.dir, "README.md"), "utf8"), "my notes");
  assert.equal(fs.readFileSync(path.join(r.dir, "eval", "runs", "1.json"), "utf8"), "{}");
  assert.equal(fs.readFileSync(path.join(r.dir, ".gitignore"), "utf8"), "*.onnx\n");
  assert.ok(fs.existsSync(path.join(r.dir, MANIFEST_FILE)));
  assert.deepEqual(fs.readdirSync(out), ["bert-tiny-colbert-onnx"], "no staging or old folder left");
});

test("a run sweeps the work files of killed runs (staging folders, temp files), not a live process's", async () => {
  const out = tempDir();
  const model = copyFixture("bert-tiny-colbert");
  const r = await exportModel({ model, outputDir: out, logger: recording() });
  const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
  const stale = [path.join(out, `.model-onnx.${dead}.partial`), path.join(r.dir, `.model_int8.onnx.${dead}.lz3k.tmp`), path.join(out, `.model-onnx.${dead}.old`)];
  fs.mkdirSync(stale[0]!);
  fs.writeFileSync(path.join(stale[0]!, "model.onnx"), "x".repeat(1000));
  fs.writeFileSync(stale[1]!, "partial int8");
  fs.mkdirSync(stale[2]!);
  const live = path.join(out, `.model-onnx.${process.pid}.partial`);
  fs.mkdirSync(live);
  await exportModel({ model, outputDir: out, logger: recording() });
  for (const f of stale) assert.equal(fs.existsSync(f), false, f);
  assert.equal(fs.existsSync(live), true);
});

test("Ctrl-C during an export removes its staging folder and temp files (exit 130)", async () => {
  // A checkpoint big enough that the export is still writing when the signal comes.
  const model = bertShaped(path.join(tempDir(), "mid-bert"), { hidden: 384, intermediate: 1536, layers: 6, vocab: 30522 });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const out = tempDir();
    const child = spawn(process.execPath, ["--import", TSX, cliPath("export"), model, "-o", out, "--quiet"], { cwd: ROOT, stdio: "ignore" });
    const code = await new Promise<number | null>((resolve, reject) => {
      const deadline = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error("the export never started writing"));
      }, 60_000);
      const poll = setInterval(() => {
        if (fs.readdirSync(out).some((f) => f.endsWith(".partial"))) {
          clearInterval(poll);
          child.kill(signal);
        }
      }, 5);
      child.on("exit", (c) => {
        clearInterval(poll);
        clearTimeout(deadline);
        resolve(c);
      });
    });
    assert.equal(code, signal === "SIGINT" ? 130 : 143);
    assert.deepEqual(fs.readdirSync(out), [], `${signal}: nothing left behind`);
  }
});

test("an output folder that cannot be written fails at once with a one-line error", { skip: isWritable("/sys/fs") && "/sys/fs is writable here" }, () => {
  const r = cli("export", [fixtureModelDir("bert-tiny-colbert"), "-o", "/sys/fs", "--quiet"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: (Permission denied writing to \/sys\/fs|\/sys\/fs is on a read-only file system): choose another --output folder/);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1);
});

function isWritable(dir: string): boolean {
  try {
    fs.writeFileSync(path.join(dir, ".probe"), "");
    fs.rmSync(path.join(dir, ".probe"));
    return true;
  } catch {
    return false;
  }
}

test("OS errors and memory failures become one-line errors that say what to do", () => {
  const err = (code: string, p?: string) => Object.assign(new Error(`${code}: x`), { code, path: p });
  assert.match(environmentError(err("ENOSPC", "/data/out"))!.message, /No space left on the device of \/data\/out; free some space/);
  assert.match(environmentError(err("EACCES", "/data/out"))!.message, /Permission denied: \/data\/out; choose another location or fix its permissions/);
  assert.match(environmentError(new Error("std::bad_alloc"))!.message, /^Out of memory .*free memory/);
  assert.equal(environmentError(new TypeError("x is undefined")), undefined, "bugs stay bugs");
});

test("serve: a busy port and a bad --port fail before the model loads", async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    // A model folder that does not exist: the port check must come first to be seen at all.
    let r = cli("serve", ["--model", path.join(tempDir(), "missing"), "--port", String(port)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^Error: Port ${port} on 127\\.0\\.0\\.1 is already in use: stop the other server or pass another --port\\n$`));
    r = cli("serve", ["--model", path.join(tempDir(), "missing"), "--port", "abc"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Error: --port must be an integer from 0 to 65535, got "abc"\n$/);
  } finally {
    blocker.close();
  }
});

test("./x, ../x, /x and ~/x are local paths, never Hub ids; `.` is named after its folder", () => {
  for (const p of ["./my-colbrt", "../my-colbrt", "/nonexistent/my-colbrt", "~/nonexistent-colbert-xyz"]) {
    const r = cli("export", [p, "-o", tempDir(), "--quiet"], { HF_HUB_OFFLINE: "0", HF_ENDPOINT: "http://127.0.0.1:9" });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Error: Model folder not found: /, `${p}: ${r.stderr}`);
  }
  const model = copyFixture("bert-tiny-colbert"); // …/bert-tiny-colbert
  const out = tempDir();
  const r = cli("export", [".", "-o", out, "--quiet", "--no-quantize"], {}, model);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(out), ["bert-tiny-colbert-onnx"]);
});

test("--push-to-hub is checked (name, token) before any export work", () => {
  const out = tempDir();
  let r = cli("export", [fixtureModelDir("bert-tiny-colbert"), "-o", out, "--push-to-hub", "not a repo"], { HF_HUB_OFFLINE: "0", HF_TOKEN: "hf_x" });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: Invalid Hub repo "not a repo": use org\/name/);
  r = cli("export", [fixtureModelDir("bert-tiny-colbert"), "-o", out, "--push-to-hub", "me/model"], { HF_HUB_OFFLINE: "0", HF_TOKEN: "" });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: Pushing to the Hub needs a token: set HF_TOKEN/);
  assert.doesNotMatch(r.stderr, /Self-check|Wrote/);
  assert.deepEqual(fs.readdirSync(out), [], "nothing exported");
});
