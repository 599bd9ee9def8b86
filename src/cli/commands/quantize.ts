/** colbert-quantize: model.onnx → model_int8.onnx (dynamic INT8). */
import fs from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { quantizeModel } from "../../quantize/index.js";
import { stderrLogger } from "../../util/log.js";
import { VERSION } from "../../version.js";
import { jsonLine, parseChunkTokens, parseCommand, withHelp } from "../run.js";
import { UserError } from "../../errors.js";
import { DEFAULT_CHUNK_TOKENS } from "../../export/chunks.js";


interface Flags {
  output?: string;
  perChannel?: boolean;
  perTensor?: boolean;
  force?: boolean;
  quiet?: boolean;
  json?: boolean;
  chunkTokens: number;
}

export async function main(): Promise<void> {
  const cmd = new Command()
    .name("colbert-quantize")
    .description("Quantize an ONNX ColBERT model to INT8 (dynamic quantization, onnxruntime-compatible).")
    .version(VERSION, "--version")
    .argument("<model>", "MODEL.onnx, or an export folder (DIR/model.onnx → DIR/model_int8.onnx)")
    .option("-o, --output <file>", "output file (default: model_int8.onnx beside the input)")
    .option("--per-channel", "one weight scale per output column (the default)")
    .option("--per-tensor", "one weight scale per weight tensor instead (less faithful on weights with outlier columns)")
    .option("--chunk-tokens <n>", `run a plain ColBERT graph's batches in chunks of about n tokens in the INT8 model (default ${DEFAULT_CHUNK_TOKENS}: faster on CPUs, where INT8 runs); 0: keep the graph plain`, parseChunkTokens, DEFAULT_CHUNK_TOKENS)
    .option("-f, --force", "overwrite an existing output")
    .option("--quiet", "no progress output")
    .option("--json", "print one JSON summary line on stdout");
  withHelp(cmd, ["colbert-quantize ./model-onnx                 # model.onnx → model_int8.onnx beside it", "colbert-quantize model.onnx -o small.onnx --force"], "local");
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags>();
  let input = cmd.args[0]!;
  if (fs.existsSync(input) && fs.statSync(input).isDirectory()) input = path.join(input, "model.onnx");
  if (!fs.existsSync(input)) throw new UserError(`ONNX model not found: ${input}; pass MODEL.onnx or an export folder`);
  const output = flags.output ?? path.join(path.dirname(input), "model_int8.onnx");
  const log = stderrLogger(flags.quiet);
  if (fs.existsSync(output) && !flags.force && path.resolve(output) !== path.resolve(input)) {
    // An explicit -o file is the user's: never replaced silently.
    if (flags.output !== undefined) throw new UserError(`${output} already exists; pass --force to overwrite it`);
    // The default model_int8.onnx beside the model (as an export writes it): up to date, or stale and redone.
    if (fs.statSync(output).mtimeMs >= fs.statSync(input).mtimeMs) {
      log.info(`${output} is up to date (newer than ${path.basename(input)}); pass --force to quantize again`);
      if (flags.json) process.stdout.write(jsonLine({ input, output, up_to_date: true }));
      return;
    }
    log.info(`${output} is older than ${path.basename(input)}: quantizing again`);
  }
  const report = await quantizeModel(input, output, log, { perChannel: !flags.perTensor, chunkTokens: flags.chunkTokens });
  if (flags.json) process.stdout.write(jsonLine(report));
}


