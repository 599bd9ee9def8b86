/**
 * colbert-encode at corpus scale: streamed outputs equal the library's embeddings with ids kept;
 * an interrupted run (killed for real, or left in any half-written state) resumes to exactly the
 * bytes of an uninterrupted one; shards merged equal a single run; bad lines are named or skipped.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ColbertEncoder } from "../src/runtime/encoder.js";
import { exportModel } from "../src/export/exporter.js";
import { jobFile, npyHeader, readJob, type JobRecord } from "../src/encode/corpus.js";
import { silentLogger } from "../src/util/log.js";
import { tempDir } from "./helpers/fixtures.js";
import { exportedFixture } from "./helpers/exported.js";
import { bertShaped } from "../bench/checkpoints.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const ENCODE = path.join(ROOT, "src", "cli", "encode.ts");

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, ["--import", "tsx", ENCODE, ...args], { cwd: ROOT, input, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const words = "late interaction retrieval scores every query token against every document token and sums the best matches of each".split(" ");
const text = (i: number, n = 12 + (i % 9) * 5) => Array.from({ length: n }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(" ");

/** A JSONL corpus with ids (strings and numbers). */
function corpus(n: number, make = (i: number) => text(i)): string {
  const file = path.join(tempDir(), "corpus.jsonl");
  fs.writeFileSync(file, Array.from({ length: n }, (_, i) => JSON.stringify({ id: i % 3 ? `doc-${i}` : i, text: make(i) })).join("\n") + "\n");
  return file;
}

/** Every file an output consists of, as bytes (the job record excluded). */
function outputBytes(out: string): Record<string, Buffer> {
  const dir = path.dirname(out);
  const base = path.basename(out);
  return Object.fromEntries(
    fs
      .readdirSync(dir)
      .filter((f) => f.startsWith(base) && !f.endsWith(".encode.json"))
      .map((f) => [f.slice(base.length) || "(data)", fs.readFileSync(path.join(dir, f))]),
  );
}

test("jsonl and f32 streams hold the library's embeddings, in input order, ids kept", async () => {
  const dir = await exportedFixture("bert-tiny-colbert");
  const input = corpus(23);
  const texts = fs.readFileSync(input, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string | number; text: string });
  const enc = await ColbertEncoder.load(dir);
  const lib = await enc.encodeDocuments(texts.map((t) => t.text));
  await enc.close();

  const jsonl = path.join(tempDir(), "out.jsonl");
  let r = cli(["--model", dir, "-i", input, "--jsonl-input", "--format", "jsonl", "-o", jsonl, "--chunk-size", "5", "--quiet", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).texts, 23);
  const lines = fs.readFileSync(jsonl, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { index: number; id: string | number; shape: number[]; embedding: number[][] });
  assert.equal(lines.length, 23);
  lines.forEach((l, i) => {
    assert.deepEqual([l.index, l.id], [i, texts[i]!.id]);
    assert.deepEqual(l.shape, [lib[i]!.rows, lib[i]!.dim]);
    assert.deepEqual(l.embedding.flat(), Array.from(lib[i]!.data));
  });

  const f32 = path.join(tempDir(), "out.f32");
  r = cli(["--model", dir, "-i", input, "--jsonl-input", "--format", "f32", "-o", f32, "--chunk-size", "5", "--quiet"]);
  assert.equal(r.code, 0, r.stderr);
  const buf = fs.readFileSync(f32);
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const index = fs.readFileSync(f32 + ".index.jsonl", "utf8").trim().split("\n").map((l) => JSON.parse(l) as { index: number; id: unknown; rows: number });
  const shapes = (JSON.parse(fs.readFileSync(f32 + ".shapes.json", "utf8")) as { num_texts: number; shapes: number[][] });
  assert.equal(shapes.num_texts, 23);
  let offset = 0;
  index.forEach((e, i) => {
    assert.deepEqual([e.index, e.id, e.rows], [i, texts[i]!.id, lib[i]!.rows]);
    assert.deepEqual(shapes.shapes[i], [lib[i]!.rows, lib[i]!.dim]);
    assert.deepEqual(Array.from(all.subarray(offset, offset + lib[i]!.data.length)), Array.from(lib[i]!.data));
    offset += lib[i]!.data.length;
  });
  assert.equal(offset, all.length);
  // .npy: the same rows behind a NumPy header that states their shape.
  const npy = path.join(tempDir(), "out.npy");
  r = cli(["--model", dir, "-i", input, "--jsonl-input", "--format", "npy", "-o", npy, "--chunk-size", "5", "--quiet"]);
  assert.equal(r.code, 0, r.stderr);
  const npyBytes = fs.readFileSync(npy);
  assert.equal(npyBytes.subarray(0, 6).toString("latin1"), "\x93NUMPY");
  const header = npyBytes.subarray(10, 128).toString("latin1");
  assert.match(header, new RegExp(`^\\{'descr': '<f4', 'fortran_order': False, 'shape': \\( *${all.length / lib[0]!.dim}, ${lib[0]!.dim}\\), \\} *\\n$`));
  assert.deepEqual(npyBytes.subarray(128), buf);
  // A finished output is not redone silently.
  r = cli(["--model", dir, "-i", input, "--jsonl-input", "--format", "f32", "-o", f32, "--chunk-size", "5", "--quiet"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /out\.f32 already exists \(a finished run\); pass --force/);
});

test("a run left in any half-written state resumes to the bytes of an uninterrupted run", async () => {
  const dir = await exportedFixture("xlmr-tiny-colbert");
  const input = corpus(30);
  for (const format of ["jsonl", "f32", "npy"]) {
    const reference = path.join(tempDir(), `ref.${format}`);
    assert.equal(cli(["--model", dir, "-i", input, "--jsonl-input", "--format", format, "-o", reference, "--chunk-size", "4", "--quiet"]).code, 0);
    const want = outputBytes(reference);
    // Rebuild the state a kill after chunk k leaves: outputs as committed, plus a half-written next chunk.
    const job = readJob(reference)!;
    for (const k of [0, 1, 4, 7]) {
      const out = path.join(tempDir(), `part.${format}`);
      const rowsBefore = (format === "jsonl" ? linesOf(want["(data)"]!, k * 4).map((l) => (JSON.parse(l) as { shape: number[] }).shape[0]!) : linesOf(want[".index.jsonl"]!, k * 4).map((l) => (JSON.parse(l) as { rows: number }).rows)).reduce((a, b) => a + b, 0);
      const partialJob: JobRecord = { ...job, complete: false, chunks: k, records: k * 4, texts: k * 4, rows: rowsBefore, bytes: {} };
      for (const [suffix, bytes] of Object.entries(want)) {
        if (suffix === ".shapes.json") continue; // written at the end
        const file = suffix === "(data)" ? out : out + suffix;
        const name = suffix === "(data)" ? "data" : suffix === ".index.jsonl" ? "index" : "skipped";
        const committed =
          suffix === "(data)" && format !== "jsonl"
            ? (format === "npy" ? 128 : 0) + linesOf(want[".index.jsonl"]!, k * 4).reduce((n, l) => n + (JSON.parse(l) as { rows: number }).rows, 0) * job.dim! * 4
            : Buffer.byteLength(linesOf(bytes, k * 4).map((l) => l + "\n").join(""));
        partialJob.bytes[name] = committed;
        // An interrupted .npy still has the header it started with (row count 0).
        const head = format === "npy" && suffix === "(data)" ? Buffer.concat([npyHeader(0, job.dim!), bytes.subarray(128, committed)]) : bytes.subarray(0, committed);
        fs.writeFileSync(file, Buffer.concat([head, Buffer.from("half-written garbage")]));
      }
      fs.writeFileSync(jobFile(out), JSON.stringify({ ...partialJob, key: job.key }));
      const r = cli(["--model", dir, "-i", input, "--jsonl-input", "--format", format, "-o", out, "--chunk-size", "4", "--quiet", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).resumed_from, k * 4);
      assert.deepEqual(outputBytes(out), want, `${format}, interrupted after chunk ${k}`);
    }
  }
});

/** The first `n` lines of a file's bytes. */
function linesOf(bytes: Buffer, n: number): string[] {
  return bytes.toString("utf8").split("\n").slice(0, n);
}

test("killed for real in the middle (SIGKILL), the same command finishes with identical bytes", async () => {
  const model = bertShaped(path.join(tempDir(), "mid-bert"), { hidden: 256, intermediate: 1024, layers: 4, vocab: 30522 });
  const dir = (await exportModel({ model, outputDir: tempDir(), quantize: false, logger: silentLogger })).dir;
  const input = corpus(48, (i) => text(i, 150));
  const args = ["--model", dir, "-i", input, "--jsonl-input", "--format", "f32", "--chunk-size", "4", "--quiet"];
  const reference = path.join(tempDir(), "ref.f32");
  assert.equal(cli([...args, "-o", reference]).code, 0);
  const out = path.join(tempDir(), "killed.f32");
  const child = spawn(process.execPath, ["--import", "tsx", ENCODE, ...args, "-o", out], { cwd: ROOT, stdio: "ignore" });
  const killedAt = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no chunk was committed within 60 s")), 60_000);
    const poll = setInterval(() => {
      const chunks = readJob(out)?.chunks ?? 0;
      if (chunks >= 3) {
        clearInterval(poll);
        clearTimeout(timer);
        child.kill("SIGKILL");
        resolve(chunks);
      }
    }, 2);
  });
  await new Promise((r) => child.once("exit", r));
  const job = readJob(out)!;
  assert.equal(job.complete, false, `killed after ${killedAt} chunks, before the end`);
  const r = cli([...args, "-o", out, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).resumed_from >= 12);
  assert.deepEqual(outputBytes(out), outputBytes(reference));
});

test("shards merged equal a single run (jsonl and f32), whatever the shard count", async () => {
  const dir = await exportedFixture("modernbert-tiny-colbert");
  const input = corpus(37);
  for (const format of ["jsonl", "f32", "npy"]) {
    const single = path.join(tempDir(), `single.${format}`);
    assert.equal(cli(["--model", dir, "-i", input, "--jsonl-input", "--format", format, "-o", single, "--chunk-size", "3", "--quiet"]).code, 0);
    for (const n of [2, 3]) {
      const work = tempDir();
      const parts = Array.from({ length: n }, (_, i) => path.join(work, `part${i}.${format}`));
      parts.forEach((p, i) => {
        const r = cli(["--model", dir, "-i", input, "--jsonl-input", "--format", format, "-o", p, "--chunk-size", "3", "--shard", `${i}/${n}`, "--quiet"]);
        assert.equal(r.code, 0, r.stderr);
      });
      const merged = path.join(work, `merged.${format}`);
      if (format === "jsonl" && n === 2) {
        // An output named for another format is refused, not written as JSONL under that name.
        const misnamed = cli(["--merge", ...parts, "-o", path.join(work, "merged.npy"), "--quiet"]);
        assert.equal(misnamed.code, 1);
        assert.match(misnamed.stderr, /^Error: The shards hold --format jsonl but .*merged\.npy is named as npy: name the merged output \.jsonl/);
        assert.equal(fs.existsSync(path.join(work, "merged.npy")), false);
      }
      const r = cli(["--merge", ...parts.reverse(), "-o", merged, "--quiet"]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(outputBytes(merged), outputBytes(single), `${format}, ${n} shards`);
    }
  }
  const bad = cli(["--merge", path.join(tempDir(), "nope.jsonl"), "-o", path.join(tempDir(), "m.jsonl")]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^Error: .*nope\.jsonl has no nope\.jsonl\.encode\.json: pass outputs written by colbert-encode --shard/);
});

test("a bad input line is named (the work before it kept), or skipped and listed with --skip-bad", async () => {
  const dir = await exportedFixture("bert-tiny-colbert");
  const lines = Array.from({ length: 12 }, (_, i) => JSON.stringify({ id: i, text: text(i) }));
  lines.splice(9, 0, "", '{"text": 42}'); // line 11 of the file (after a blank line 10)
  const input = path.join(tempDir(), "in.jsonl");
  fs.writeFileSync(input, lines.join("\n") + "\n");
  const out = path.join(tempDir(), "out.jsonl");
  const args = ["--model", dir, "-i", input, "--jsonl-input", "--format", "jsonl", "-o", out, "--chunk-size", "4", "--quiet"];
  let r = cli(args);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error: Input line 11 is neither a JSON string nor an object with a "text" field; fix it \(the 8 texts before it are saved: rerun to continue\) or pass --skip-bad\n$/);
  assert.equal(fs.readFileSync(out, "utf8").trim().split("\n").length, 8);
  r = cli([...args, "--skip-bad", "--force", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([JSON.parse(r.stdout).texts, JSON.parse(r.stdout).skipped], [12, 1]);
  assert.deepEqual(JSON.parse(fs.readFileSync(out + ".skipped.jsonl", "utf8")), { index: 9, line: 11, reason: 'is neither a JSON string nor an object with a "text" field' });
  const ids = fs.readFileSync(out, "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { id: number }).id);
  assert.deepEqual(ids, Array.from({ length: 12 }, (_, i) => i));
  // Fixed input, fresh run: no stale list of skipped lines is left behind.
  fs.writeFileSync(input, lines.filter((l) => !l.includes('"text": 42')).join("\n") + "\n");
  r = cli([...args, "--force"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.existsSync(out + ".skipped.jsonl"), false);
});

test("a run stopped before its first chunk resumes: a bad line in the first chunk, then --skip-bad; Ctrl-C says how to continue", async () => {
  const model = await exportedFixture("bert-tiny-colbert");
  const input = path.join(tempDir(), "bad.jsonl");
  fs.writeFileSync(input, Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: i, text: text(i) })).join("\n") + "\noops {\n");
  const out = path.join(tempDir(), "o.jsonl");
  const args = ["--model", model, "--type", "document", "-i", input, "--jsonl-input", "--format", "jsonl", "-o", out, "--quiet"];
  let r = cli(args);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Input line 11 .*rerun to continue\) or pass --skip-bad/);
  r = cli([...args, "--skip-bad", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.deepEqual([summary.texts, summary.skipped, summary.resumed_from], [10, 1, 0]);
  assert.equal(fs.readFileSync(out, "utf8").trim().split("\n").length, 10);

  // SIGINT while encoding a corpus: one line saying the work is saved and how to continue, exit 130.
  // The input is a pipe kept open, so the run is still going (waiting for more) when the signal comes.
  const out2 = path.join(tempDir(), "big.jsonl");
  const child = spawn(process.execPath, ["--import", "tsx", ENCODE, "--model", model, "--type", "document", "-i", "-", "--jsonl-input", "--format", "jsonl", "-o", out2, "--quiet", "--chunk-size", "16"], { cwd: ROOT });
  child.stdin.write(Array.from({ length: 40 }, (_, i) => JSON.stringify({ id: i, text: text(i) })).join("\n") + "\n");
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no chunk within 60 s")), 60_000);
    const poll = setInterval(() => {
      if ((readJob(out2)?.chunks ?? 0) >= 1) {
        clearInterval(poll);
        clearTimeout(timer);
        child.kill("SIGINT");
        resolve();
      }
    }, 5);
  });
  const code = await new Promise((res) => child.once("exit", (c) => res(c)));
  assert.equal(code, 130);
  assert.match(stderr, /^Stopped \(SIGINT\): the texts encoded so far are saved in .*; rerun the same command to continue\n$/);
});

test("colbert-encode --json with the default --format json prints a summary; it names the model file it runs", async () => {
  const model = await exportedFixture("bert-tiny-colbert");
  const out = path.join(tempDir(), "q.json");
  const r = cli(["--model", model, "--type", "query", "-o", out, "--json"], "hello\nworld\n");
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.deepEqual([s.format, s.texts, typeof s.seconds], ["json", 2, "number"]);
  assert.match(r.stderr, /Encoding with .*: model\.onnx \(FP32; --int8 for model_int8\.onnx, --fp32 for model\.onnx\)/);
  assert.equal(JSON.parse(fs.readFileSync(out, "utf8")).num_texts, 2);
});
