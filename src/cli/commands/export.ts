/** pylate-onnx-export: PyLate ColBERT checkpoint → ONNX folder (SPEC §1). */
import { Command } from "commander";
import fs from "node:fs";
import path from "node:path";
import { exportModel, readCompleteExport } from "../../export/exporter.js";
import { DEFAULT_CHUNK_TOKENS } from "../../export/chunks.js";
import { quantizeModel } from "../../quantize/index.js";
import { checkPushTarget, pushFolder } from "../../hub/upload.js";
import { stderrLogger } from "../../util/log.js";
import { VERSION } from "../../version.js";
import { jsonLine, parseChunkTokens, parseCommand, parseIntOption, withHelp } from "../run.js";
import { UserError } from "../../errors.js";

interface Flags {
  output: string;
  outputDir?: string;
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
  chunkTokens?: number;
}

function program(): Command {
  const cmd = new Command()
    .name("pylate-onnx-export")
    .description("Export a PyLate ColBERT checkpoint (Hugging Face id or local folder) to an ONNX model folder.")
    .version(VERSION, "--version")
    .argument("<model>", "Hugging Face model id (org/name) or local checkpoint folder")
    .option("-o, --output <dir>", "parent directory; the export goes to <dir>/<name>-onnx/", "./")
    .option("--output-dir <dir>", "the export folder itself, files directly inside (as the Python tool's -o/--output-dir)")
    .option("--quantize", "write model_int8.onnx too (the default; accepted for compatibility)")
    .option("--no-quantize", "skip model_int8.onnx (INT8 dynamic quantization)")
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
    .option("--chunk-tokens <n>", `run both graphs' batches in chunks of about n tokens inside the graph (an ONNX Loop); 0: both plain. Default: model.onnx plain (every tool and GPU runtime takes it), model_int8.onnx (CPU-only) in chunks of ${DEFAULT_CHUNK_TOKENS}`, parseChunkTokens)
    .option("--quiet", "no progress output; errors still go to stderr")
    .option("--json", "print one JSON summary line on stdout at the end");
  return withHelp(
    cmd,
    [
    "pylate-onnx-export lightonai/GTE-ModernColBERT-v1            # → ./GTE-ModernColBERT-v1-onnx/ (FP32 + INT8)",
    "pylate-onnx-export ./my-colbert -o exports --no-quantize     # a local checkpoint folder, FP32 only",
    "pylate-onnx-export org/model --push-to-hub me/model-onnx     # export, then publish (needs HF_TOKEN)",
    "pylate-onnx-export ./model-onnx --push-to-hub me/model-onnx  # publish an existing export folder",
    ],
    "push",
  );
}

export async function main(): Promise<void> {
  const cmd = program();
  if (!parseCommand(cmd)) return;
  const flags = cmd.opts<Flags>();
  if (flags.outputDir !== undefined && cmd.getOptionValueSource("output") !== "default") {
    throw new UserError("Pass either -o/--output (the parent folder) or --output-dir (the export folder itself), not both");
  }
  const model = cmd.args[0]!;
  const logger = stderrLogger(flags.quiet);
  // The push target is checked before any download or export work.
  if (flags.pushToHub) await checkPushTarget(flags.pushToHub);
  // An existing export folder is published as it is (with --push-to-hub), not re-exported.
  const existing = fs.existsSync(model) ? readCompleteExport(model) : undefined;
  if (existing) {
    if (!flags.pushToHub) throw new UserError(`${model} is already an export folder; pass --push-to-hub REPO to publish it, or a checkpoint folder to export`);
    if (flags.quantize !== false && !fs.existsSync(path.join(model, "model_int8.onnx"))) {
      await quantizeModel(path.join(model, "model.onnx"), path.join(model, "model_int8.onnx"), logger);
    }
    const pushed = await pushFolder(model, flags.pushToHub, { private: flags.private, sourceModel: existing.model_name, logger });
    if (flags.json) process.stdout.write(jsonLine({ dir: path.resolve(model), pushed: pushed.url, commit: pushed.commit }));
    return;
  }
  const result = await exportModel({
    logger,
    model,
    outputDir: flags.output,
    targetDir: flags.outputDir,
    force: flags.force,
    quiet: flags.quiet,
    quantize: flags.quantize !== false,
    revision: flags.revision,
    embeddingSize: flags.embeddingSize,
    chunkTokens: flags.chunkTokens,
    overrides: {
      queryPrefix: flags.queryPrefix,
      documentPrefix: flags.documentPrefix,
      queryLength: flags.queryLength,
      documentLength: flags.documentLength,
      doQueryExpansion: flags.queryExpansion === false ? false : undefined,
      attendToExpansionTokens: flags.attendToExpansionTokens,
    },
  });
  const pushed = flags.pushToHub ? await pushFolder(result.dir, flags.pushToHub, { private: flags.private, sourceModel: model, logger }) : undefined;
  if (flags.json) {
    process.stdout.write(
      jsonLine({
        pushed: pushed?.url,
        dir: result.dir,
        files: result.files,
        reused: result.reused,
        seconds: Number(result.seconds.toFixed(3)),
        model_class: result.onnxConfig.model_class,
        embedding_dim: result.onnxConfig.embedding_dim,
      }),
    );
  }
}


