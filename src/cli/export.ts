#!/usr/bin/env node
/** pylate-onnx-export: PyLate ColBERT checkpoint → ONNX folder (SPEC §1). */
import { Command } from "commander";
import { exportModel } from "../export/exporter.js";
import { VERSION } from "../version.js";
import { parseCommand, parseIntOption, runCli } from "./run.js";
import { UserError } from "../errors.js";

interface Flags {
  output: string;
  quantize?: boolean;
  force?: boolean;
  pushToHub?: string;
  private?: boolean;
  revision?: string;
  quiet?: boolean;
  json?: boolean;
  queryPrefix?: string;
  documentPrefix?: string;
  queryLength?: number;
  documentLength?: number;
  queryExpansion?: boolean;
  attendToExpansionTokens?: boolean;
  embeddingSize?: number;
}

function program(): Command {
  return new Command()
    .name("pylate-onnx-export")
    .description("Export a PyLate ColBERT checkpoint (Hugging Face id or local folder) to an ONNX model folder.")
    .version(VERSION, "--version")
    .argument("<model>", "Hugging Face model id (org/name) or local checkpoint folder")
    .option("-o, --output <dir>", "parent directory; the export goes to <dir>/<name>-onnx/", "./")
    .option("--quantize", "also write model_int8.onnx (INT8 dynamic quantization)")
    .option("--no-quantize", "do not quantize (default)")
    .option("-f, --force", "re-export even if the target already holds a complete export")
    .option("--push-to-hub <repo>", "upload the export to the Hugging Face Hub as <repo>")
    .option("--private", "create the Hub repo private")
    .option("--revision <rev>", "branch, tag or commit to download (default main)")
    .option("--query-prefix <text>", "override the query prefix (\"\" for none)")
    .option("--document-prefix <text>", "override the document prefix (\"\" for none)")
    .option("--query-length <n>", "override query_length", parseIntOption("--query-length"))
    .option("--document-length <n>", "override document_length", parseIntOption("--document-length"))
    .option("--no-query-expansion", "turn query expansion off")
    .option("--attend-to-expansion-tokens", "let queries attend to their expansion tokens")
    .option("--embedding-size <n>", "accept a plain encoder by adding an UNTRAINED projection of this size", parseIntOption("--embedding-size"))
    .option("--quiet", "no progress output; errors still go to stderr")
    .option("--json", "print one JSON summary line on stdout at the end");
}

async function main(): Promise<void> {
  const cmd = program();
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags>();
  const model = cmd.args[0]!;
  if (flags.pushToHub) throw new UserError(`--push-to-hub is not available in this build yet; upload the export folder with huggingface-cli upload`);
  const result = await exportModel({
    model,
    outputDir: flags.output,
    force: flags.force,
    quiet: flags.quiet,
    quantize: flags.quantize,
    revision: flags.revision,
    embeddingSize: flags.embeddingSize,
    overrides: {
      queryPrefix: flags.queryPrefix,
      documentPrefix: flags.documentPrefix,
      queryLength: flags.queryLength,
      documentLength: flags.documentLength,
      doQueryExpansion: flags.queryExpansion === false ? false : undefined,
      attendToExpansionTokens: flags.attendToExpansionTokens,
    },
  });
  if (flags.json) {
    process.stdout.write(
      JSON.stringify({
        dir: result.dir,
        files: result.files,
        reused: result.reused,
        seconds: Number(result.seconds.toFixed(3)),
        model_class: result.onnxConfig.model_class,
        embedding_dim: result.onnxConfig.embedding_dim,
      }) + "\n",
    );
  }
}

runCli(main);
