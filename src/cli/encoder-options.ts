/** The model-loading options colbert-encode and colbert-serve share. */
import type { Command } from "commander";
import { ColbertEncoder } from "../runtime/encoder.js";
import { parseIntOption } from "./run.js";

export interface EncoderFlags {
  model: string;
  int8?: boolean;
  sessions: number;
  batchSize: number;
  queryLength?: number;
  documentLength?: number;
  provider: string;
}

export function addEncoderOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--model <dir>", "(required) export folder written by pylate-onnx-export")
    .option("--int8", "use model_int8.onnx")
    .option("--sessions <n>", "parallel onnxruntime sessions", parseIntOption("--sessions"), 1)
    .option("--batch-size <n>", "texts per model call", parseIntOption("--batch-size"), 32)
    .option("--query-length <n>", "override the model's query_length", parseIntOption("--query-length"))
    .option("--document-length <n>", "override the model's document_length", parseIntOption("--document-length"))
    .option("--provider <name>", "onnxruntime execution provider (cpu, cuda, coreml, dml)", "cpu");
}

export function loadEncoder(flags: EncoderFlags): Promise<ColbertEncoder> {
  return ColbertEncoder.load(flags.model, {
    int8: flags.int8,
    sessions: flags.sessions,
    batchSize: flags.batchSize,
    queryLength: flags.queryLength,
    documentLength: flags.documentLength,
    executionProvider: flags.provider,
    onWarning: (m) => process.stderr.write(`Warning: ${m}\n`),
  });
}
