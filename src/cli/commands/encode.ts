/**
 * colbert-encode: encode texts (a file or stdin, one per line or JSONL) with a ColBERT model.
 * jsonl and f32 stream in constant memory, resume after an interruption and split into shards
 * (encode/corpus.ts); json writes one object at the end (small inputs).
 */
import path from "node:path";
import { Command } from "commander";
import type { ColbertEncoder, Embedding } from "../../runtime/encoder.js";
import { VERSION } from "../../version.js";
import { addEncoderOptions, loadEncoder, type EncoderFlags } from "../encoder-options.js";
import { jsonLine, parseCommand, parseIntOption, withHelp } from "../run.js";
import { stderrLogger } from "../../util/log.js";
import { writeFileAtomic } from "../../util/fs.js";
import { UserError } from "../../errors.js";
import { encodeCorpus, type Progress } from "../../encode/corpus.js";
import { readRecords } from "../../encode/input.js";
import { mergeShards } from "../../encode/merge.js";

interface Flags extends EncoderFlags {
  type: string;
  input: string;
  output?: string;
  format: string;
  poolFactor?: number;
  jsonlInput?: boolean;
  chunkSize: number;
  shard?: [number, number];
  skipBad?: boolean;
  force?: boolean;
  json?: boolean;
  merge?: string[];
}

function parseShard(value: string): [number, number] {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const [i, n] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!m || n < 1 || i >= n) throw new UserError(`--shard must be I/N with 0 ≤ I < N (e.g. 0/4), got "${value}"`);
  return [i, n];
}

function toRows(e: Embedding): number[][] {
  return Array.from({ length: e.rows }, (_, r) => Array.from(e.data.subarray(r * e.dim, (r + 1) * e.dim)));
}

function progressLine(p: Progress): string {
  const rate = p.texts / Math.max(p.seconds, 1e-9);
  const eta = p.totalBytes && p.bytesRead ? ((p.totalBytes - p.bytesRead) / p.bytesRead) * p.seconds : undefined;
  const pct = p.totalBytes && p.bytesRead ? ` (${((100 * p.bytesRead) / p.totalBytes).toFixed(1)} %)` : "";
  return `Encoded ${p.texts} texts${pct}, ${rate.toFixed(1)} texts/s${eta !== undefined ? `, ETA ${eta < 120 ? `${eta.toFixed(0)} s` : `${(eta / 60).toFixed(1)} min`}` : ""}`;
}

export async function main(): Promise<void> {
  const cmd = addEncoderOptions(new Command(), "fp32", "cpu")
    .name("colbert-encode")
    .description("Encode queries or documents with a ColBERT model. jsonl and f32 outputs stream in constant memory, resume where an interrupted run stopped, and split into shards.")
    .version(VERSION, "--version")
    .option("--type <type>", "query or document", "document")
    .option("-i, --input <file>", "input file (- for stdin): one text per line, or JSONL with --jsonl-input", "-")
    .option("--jsonl-input", 'input lines are JSON strings or {"text": …, "id": …} objects')
    .option("-o, --output <file>", "output file (default stdout; required for f32, resuming, shards)")
    .option(
      "--format <format>",
      "json (one object, built in memory: small inputs), jsonl (one line per text: index, id, shape, embedding), f32 (raw little-endian float32 rows + <output>.index.jsonl + <output>.shapes.json), or npy (the same rows as one NumPy [rows, dim] array)",
      "json",
    )
    .option("--pool-factor <n>", "documents: hierarchical token pooling factor", parseIntOption("--pool-factor"))
    .option("--chunk-size <n>", "texts per chunk: the unit of writing, resuming and sharding", parseIntOption("--chunk-size"), 256)
    .option("--shard <i/n>", "encode only every n-th chunk, starting at chunk i (merge the n outputs with --merge)", parseShard)
    .option("--merge <outputs...>", "merge the outputs of --shard 0/n … n-1/n runs into --output")
    .option("--skip-bad", "skip input lines that are not valid records (listed in <output>.skipped.jsonl) instead of stopping")
    .option("-f, --force", "overwrite an existing output (else a finished run is kept and an unfinished one continues)")
    .option("--json", "print a one-line JSON summary on stdout (needs --output)")
    .option("--quiet", "no progress output");
  withHelp(cmd, [
    "colbert-encode --model ./model-onnx --type query < queries.txt > queries.json",
    "colbert-encode --model ./model-onnx -i corpus.jsonl --jsonl-input --format f32 -o corpus.f32     # rerun to resume",
    "colbert-encode --model ./model-onnx -i corpus.jsonl --jsonl-input --format jsonl -o part0.jsonl --shard 0/2",
    "colbert-encode --merge part0.jsonl part1.jsonl -o corpus.jsonl",
  ]);
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags>();
  const log = stderrLogger(flags.quiet || false);
  if (flags.merge) {
    if (!flags.output) throw new UserError("--merge needs --output FILE");
    const r = await mergeShards(flags.merge, flags.output, !!flags.force);
    log.info(`Merged ${r.shards} shards: ${r.texts} texts into ${flags.output}`);
    if (flags.json) process.stdout.write(jsonLine({ output: flags.output, ...r }));
    return;
  }
  if (flags.type !== "query" && flags.type !== "document") throw new UserError(`--type must be query or document, got "${flags.type}"`);
  if (!["json", "jsonl", "f32", "npy"].includes(flags.format)) throw new UserError(`--format must be json, jsonl, f32 or npy, got "${flags.format}"`);
  if ((flags.format === "f32" || flags.format === "npy") && !flags.output) throw new UserError(`--format ${flags.format} needs --output FILE`);
  if (flags.shard && (flags.format === "json" || !flags.output)) throw new UserError("--shard needs --format jsonl, f32 or npy and --output FILE");
  if (flags.json && !flags.output) throw new UserError("--json needs --output FILE (stdout carries the embeddings otherwise)");
  if (flags.input !== "-" && !(await import("node:fs")).existsSync(flags.input)) throw new UserError(`Input file not found: ${flags.input}`);

  const started = performance.now();
  if (flags.format === "json") {
    // One JSON object: read everything, then encode (for small inputs; corpora: jsonl / f32).
    const texts: string[] = [];
    for await (const r of readRecords(flags.input, !!flags.jsonlInput)) {
      if (r.error) throw new UserError(`Input line ${r.line} ${r.error}`);
      texts.push(r.text!);
    }
    if (texts.length === 0) throw new UserError(`No texts in the input`);
    const encoder = await loadEncoder(flags, "fp32");
    log.info(ranWith(encoder));
    let out: Embedding[];
    try {
      out = await encoder.encode(texts, flags.type, { poolFactor: flags.poolFactor });
    } finally {
      await encoder.close();
    }
    const text = JSON.stringify({ num_texts: out.length, shapes: out.map((e) => [e.rows, e.dim]), embeddings: out.map(toRows) }) + "\n";
    if (flags.output) writeFileAtomic(flags.output, text);
    else process.stdout.write(text);
    if (flags.json) process.stdout.write(jsonLine({ output: flags.output, format: "json", texts: out.length, rows: out.reduce((n, e) => n + e.rows, 0), seconds: (performance.now() - started) / 1000 }));
    return;
  }

  const encoder = await loadEncoder(flags, "fp32");
  log.info(ranWith(encoder));
  let lastLog = 0;
  // Ctrl-C / SIGTERM: the chunks written so far are committed; say how to continue. The encoder is
  // closed first (its threads finish the graph they run): exiting while onnxruntime runs a graph on
  // another thread aborts the process instead of exiting with the signal's code.
  let stopping: Promise<never> | undefined;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    process.stderr.write(`Stopped (${signal}): the texts encoded so far are saved in ${flags.output}; rerun the same command to continue\n`);
    stopping = encoder.close().finally(() => process.exit(signal === "SIGINT" ? 130 : 143)) as Promise<never>;
  };
  if (flags.output) {
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  }
  try {
    const summary = await encodeCorpus(encoder, {
      input: flags.input,
      jsonl: !!flags.jsonlInput,
      output: flags.output ?? "-",
      format: flags.format as "jsonl" | "f32" | "npy",
      type: flags.type,
      poolFactor: flags.poolFactor,
      chunkSize: flags.chunkSize,
      shard: flags.shard,
      skipBad: !!flags.skipBad,
      force: !!flags.force,
      onProgress: (p) => {
        if (p.seconds - lastLog < 2) return;
        lastLog = p.seconds;
        log.info(progressLine(p));
      },
    });
    if (summary.texts === 0 && summary.skipped === 0) throw new UserError(`No texts in the input`);
    log.info(
      `Done: ${summary.texts} texts, ${summary.rows} token rows in ${summary.seconds.toFixed(1)} s (${summary.textsPerSecond.toFixed(1)} texts/s)` +
        `${summary.resumedFrom ? `, resumed after ${summary.resumedFrom} input records` : ""}${summary.skipped ? `, ${summary.skipped} bad lines skipped` : ""}`,
    );
    if (flags.json) process.stdout.write(jsonLine(summary));
  } catch (e) {
    if (stopping) await stopping; // the encoder was closed under the run: the signal decides the exit
    throw e;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await encoder.close();
  }
}

/** Which model file (and precision) the run uses — colbert-serve prints the same on start. */
function ranWith(encoder: ColbertEncoder): string {
  const file = path.basename(encoder.modelFile);
  return `Encoding with ${encoder.dir}: ${file} (${file === "model_int8.onnx" ? "INT8" : "FP32"}; --int8 for model_int8.onnx, --fp32 for model.onnx)`;
}
