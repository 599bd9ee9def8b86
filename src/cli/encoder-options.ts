/** The model-loading options colbert-encode and colbert-serve share. */
import type { Command } from "commander";
import { ColbertEncoder } from "../runtime/encoder.js";
import { stderrLogger } from "../util/log.js";
import { parseIntOption } from "./run.js";
import { UserError } from "../errors.js";

export interface EncoderFlags {
  model?: string;
  int8?: boolean;
  fp32?: boolean;
  sessions?: number;
  threads?: number;
  batchSize: number;
  queryLength?: number;
  documentLength?: number;
  provider: string;
  revision?: string;
  quiet?: boolean;
}

/** `precision`: what the command uses when neither --int8 nor --fp32 is given. */
export function addEncoderOptions(cmd: Command, precision: "auto" | "fp32", provider: "auto" | "cpu", modelNeed = "(required)"): Command {
  return cmd
    .option("--model <model>", `${modelNeed} export folder, Hugging Face id of a published export, or a PyLate checkpoint (folder or id: exported on the fly, cached)`)
    .option("--int8", `use model_int8.onnx${precision === "auto" ? "" : " (default: model.onnx)"}`)
    .option("--fp32", `use model.onnx${precision === "auto" ? " (default: model_int8.onnx when the folder has it)" : ""}`)
    .option("--revision <rev>", "Hub revision when --model is a Hub id")
    .option("--sessions <n>", "parallel onnxruntime sessions, each on its own thread (default: cores / 2)", parseIntOption("--sessions"))
    .option("--threads <n>", "onnxruntime threads per session (default: cores / sessions)", parseIntOption("--threads"))
    .option("--batch-size <n>", "texts per model call", parseIntOption("--batch-size"), 32)
    .option("--query-length <n>", "override the model's query_length", parseIntOption("--query-length"))
    .option("--document-length <n>", "override the model's document_length", parseIntOption("--document-length"))
    .option("--provider <name>", `onnxruntime execution provider: cpu, cuda, coreml, dml${provider === "auto" ? ", or auto (CUDA when its libraries load, else CPU)" : ""}`, provider);
}

export function precisionOf(flags: EncoderFlags, fallback: "auto" | "fp32"): boolean | "auto" {
  if (flags.int8 && flags.fp32) throw new UserError("--int8 and --fp32 exclude each other; pass one");
  return flags.int8 ? true : flags.fp32 ? false : fallback === "auto" ? "auto" : false;
}

export function loadEncoder(flags: EncoderFlags, precision: "auto" | "fp32"): Promise<ColbertEncoder> {
  if (!flags.model) throw new UserError("--model is required: an export folder, a published export's Hub id, or a PyLate checkpoint (see --help)");
  return ColbertEncoder.load(flags.model, {
    int8: precisionOf(flags, precision),
    sessions: flags.sessions,
    threads: flags.threads,
    batchSize: flags.batchSize,
    queryLength: flags.queryLength,
    documentLength: flags.documentLength,
    executionProvider: flags.provider,
    revision: flags.revision,
    logger: stderrLogger(flags.quiet),
    onWarning: (m) => process.stderr.write(`Warning: ${m}\n`),
  });
}
