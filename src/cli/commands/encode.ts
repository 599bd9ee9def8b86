/** colbert-encode: encode texts (a file or stdin, one per line or JSONL) with an exported model. */
import fs from "node:fs";
import { Command } from "commander";
import type { Embedding } from "../../runtime/encoder.js";
import { VERSION } from "../../version.js";
import { addEncoderOptions, loadEncoder, type EncoderFlags } from "../encoder-options.js";
import { parseCommand, parseIntOption, withHelp } from "../run.js";
import { stderrLogger } from "../../util/log.js";
import { writeFileAtomic } from "../../util/fs.js";
import { UserError } from "../../errors.js";

interface Flags extends EncoderFlags {
  type: string;
  input: string;
  output?: string;
  format: string;
  poolFactor?: number;
  quiet?: boolean;
}

/** Lines of plain text, or JSONL whose lines are strings or objects with a "text" field. */
function parseTexts(raw: string, jsonl: boolean): string[] {
  const lines = raw.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (!jsonl) return lines;
  return lines.map((l, i) => {
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      throw new UserError(`Input line ${i + 1} is not JSON; use --format text for plain lines`);
    }
    if (typeof v === "string") return v;
    if (v && typeof v === "object" && typeof (v as { text?: unknown }).text === "string") return (v as { text: string }).text;
    throw new UserError(`Input line ${i + 1} is neither a JSON string nor an object with a "text" field`);
  });
}

function toRows(e: Embedding): number[][] {
  return Array.from({ length: e.rows }, (_, r) => Array.from(e.data.subarray(r * e.dim, (r + 1) * e.dim)));
}

export async function main(): Promise<void> {
  const cmd = addEncoderOptions(new Command(), "fp32", "cpu")
    .name("colbert-encode")
    .description("Encode queries or documents with an exported ColBERT model.")
    .version(VERSION, "--version")
    .option("--type <type>", "query or document", "document")
    .option("-i, --input <file>", "input file (- for stdin): one text per line, or JSONL with --jsonl-input", "-")
    .option("--jsonl-input", "input lines are JSON strings or {\"text\": …} objects")
    .option("-o, --output <file>", "output file (default stdout; required for --format f32)")
    .option("--format <format>", "json (one object), jsonl (one line per text), or f32 (raw little-endian float32 + <output>.shapes.json)", "json")
    .option("--pool-factor <n>", "documents: hierarchical token pooling factor", parseIntOption("--pool-factor"))
    .option("--quiet", "no progress output");
  withHelp(cmd, [
    "colbert-encode --model ./model-onnx --type query < queries.txt > queries.json",
    "colbert-encode --model ./model-onnx -i docs.jsonl --jsonl-input --pool-factor 2 --format f32 -o docs.f32",
  ]);
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags & { jsonlInput?: boolean }>();
  if (flags.type !== "query" && flags.type !== "document") throw new UserError(`--type must be query or document, got "${flags.type}"`);
  if (!["json", "jsonl", "f32"].includes(flags.format)) throw new UserError(`--format must be json, jsonl or f32, got "${flags.format}"`);
  if (flags.format === "f32" && !flags.output) throw new UserError(`--format f32 needs --output FILE`);
  if (flags.input !== "-" && !fs.existsSync(flags.input)) throw new UserError(`Input file not found: ${flags.input}`);
  const texts = parseTexts(fs.readFileSync(flags.input === "-" ? 0 : flags.input, "utf8"), !!flags.jsonlInput);
  if (texts.length === 0) throw new UserError(`No texts in the input`);

  const encoder = await loadEncoder(flags, "fp32");
  const log = stderrLogger(flags.quiet);
  const bar = texts.length > flags.batchSize ? log.bar(`Encoding ${flags.type === "query" ? "queries" : "documents"}`, texts.length) : undefined;
  let out: Embedding[];
  try {
    out = await encoder.encode(texts, flags.type, { poolFactor: flags.poolFactor, onProgress: (done) => bar?.update(done) });
  } finally {
    bar?.stop();
    await encoder.close();
  }

  const shapes = out.map((e) => [e.rows, e.dim]);
  if (flags.format === "f32") {
    const total = out.reduce((n, e) => n + e.data.length, 0);
    const all = new Float32Array(total);
    let offset = 0;
    for (const e of out) {
      all.set(e.data, offset);
      offset += e.data.length;
    }
    writeFileAtomic(flags.output!, new Uint8Array(all.buffer));
    writeFileAtomic(`${flags.output}.shapes.json`, JSON.stringify({ num_texts: out.length, shapes }) + "\n");
    return;
  }
  const text =
    flags.format === "json"
      ? JSON.stringify({ num_texts: out.length, shapes, embeddings: out.map(toRows) }) + "\n"
      : out.map((e, i) => JSON.stringify({ index: i, shape: [e.rows, e.dim], embedding: toRows(e) })).join("\n") + "\n";
  if (flags.output) writeFileAtomic(flags.output, text);
  else process.stdout.write(text);
}


