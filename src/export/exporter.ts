/**
 * pylate-onnx-export's job: checkpoint folder (or Hub id) → export folder with model.onnx, the
 * tokenizer and configs, proven by a self-check. Writes into a staging folder that replaces the
 * target only when complete, so a crash never leaves a half export behind.
 */
import fs from "node:fs";
import path from "node:path";
import { loadColbertCheckpoint } from "../colbert/checkpoint.js";
import type { SettingsOverrides } from "../colbert/settings.js";
import { writeModel } from "../onnx/writer.js";
import { buildColbertModel } from "./graph.js";
import { DEFAULT_CHUNK_TOKENS } from "./chunks.js";
import { exportedHfConfig, exportedSentenceTransformersConfig } from "./files.js";
import { onnxConfig, ONNX_CONFIG_KEYS, type OnnxConfig } from "../colbert/onnx-config.js";
import { selfCheck, type SelfCheckResult } from "./selfcheck.js";
import { writeFileAtomic, writeJsonAtomic } from "../util/fs.js";
import { stderrLogger, type Logger } from "../util/log.js";
import { UserError } from "../errors.js";
import { quantizeModel } from "../quantize/index.js";
import { downloadModel, isHubId } from "../hub/download.js";
import { readModel } from "../onnx/reader.js";
import { releaseGarbage } from "../util/memory.js";
import { removeOnInterrupt, sweepDeadWorkFiles } from "../util/cleanup.js";
import { fsError } from "../errors.js";
import { describeSource, expandHome, looksLocal, mismatch, readManifest, sourceIdOf, userEntries, writeManifest } from "./manifest.js";

export interface ExportOptions {
  /** Local folder or Hugging Face id. */
  model: string;
  /** Parent folder; the export goes to outputDir/<name>-onnx. */
  outputDir: string;
  /** How the caller re-exports, shown when an export is reused (default: the CLI's --force). */
  reexportHint?: string;
  /** The export folder itself (the Python tool's --output-dir); replaces outputDir/<name>-onnx. */
  targetDir?: string;
  force?: boolean;
  quiet?: boolean;
  /** Also write model_int8.onnx (default true, as the Python tool 1.6; NextPlaid's --int8 and colgrep load only that file). */
  quantize?: boolean;
  revision?: string;
  overrides?: SettingsOverrides;
  embeddingSize?: number;
  /**
   * Tokens per chunk of the graphs' batch loop (export/chunks.ts). Default: model.onnx is a plain
   * graph (every tool and GPU runtime takes it) and model_int8.onnx, a CPU-only artefact, runs in
   * chunks of DEFAULT_CHUNK_TOKENS; N > 0: both in chunks of N; 0: both plain.
   */
  chunkTokens?: number;
  logger?: Logger;
}

export interface ExportResult {
  dir: string;
  files: string[];
  reused: boolean;
  onnxConfig: OnnxConfig;
  selfCheck?: SelfCheckResult;
  seconds: number;
}

/** Files every complete export has. */
export const REQUIRED_FILES = ["model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json", "onnx_config.json", "config_sentence_transformers.json"];

/**
 * `<last path segment>-onnx`, trailing slashes ignored; a local folder is named after the folder it
 * resolves to (`.` included).
 */
export function exportDirName(model: string): string {
  const local = looksLocal(model) || fs.existsSync(model);
  // A local folder named "model" (as fixtures and many repos lay checkpoints out) is named after its parent.
  const resolved = local ? path.resolve(expandHome(model)) : "";
  const name = local ? (path.basename(resolved).toLowerCase() === "model" && path.dirname(resolved) !== resolved ? path.basename(path.dirname(resolved)) : path.basename(resolved)) : model.replace(/[\\/]+$/, "").split(/[\\/]/).pop();
  if (!name) throw new UserError(`Cannot derive an output name from "${model}"; pass a folder or an org/name id`);
  return `${name}-onnx`;
}

/** The export's onnx_config.json when every required file is present and valid, else undefined. */
export function readCompleteExport(dir: string): OnnxConfig | undefined {
  try {
    for (const f of REQUIRED_FILES) {
      const st = fs.statSync(path.join(dir, f));
      if (!st.isFile() || st.size === 0) return undefined;
      if (f.endsWith(".json")) JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
    }
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "onnx_config.json"), "utf8")) as OnnxConfig;
    if (!ONNX_CONFIG_KEYS.every((k) => k in cfg)) return undefined;
    // The model parses to the end, has our output, and its external data (if any) is all there.
    const onnx = readModel(path.join(dir, "model.onnx"));
    onnx.close();
    if (!onnx.model.outputs.some((o) => o.name === "output")) return undefined;
    for (const [file, bytes] of onnx.externalData) if (!fs.existsSync(file) || fs.statSync(file).size < bytes) return undefined;
    return cfg;
  } catch {
    return undefined;
  }
}

function listFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => !f.startsWith(".")).sort();
}

/**
 * The checkpoint folder of `model`: itself when it is a folder, else its Hub download. Anything
 * starting with `./`, `../`, `/` or `~` is a local path, never a Hub id.
 */
export async function sourceFolder(opts: { model: string; revision?: string }, log: Logger): Promise<string> {
  const local = expandHome(opts.model);
  if (fs.existsSync(local)) {
    if (!fs.statSync(local).isDirectory()) throw new UserError(`${opts.model} is a file; pass the checkpoint folder that holds it`);
    return local;
  }
  if (looksLocal(opts.model) || !isHubId(opts.model) || !opts.model.includes("/")) {
    throw new UserError(`Model folder not found: ${opts.model}; pass a checkpoint folder or a Hugging Face model id (org/name)`);
  }
  log.info(`Fetching ${opts.model}${opts.revision ? `@${opts.revision}` : ""} from the Hub…`);
  return (await downloadModel(opts.model, { revision: opts.revision, logger: log })).dir;
}

export async function exportModel(opts: ExportOptions): Promise<ExportResult> {
  const started = performance.now();
  const log = opts.logger ?? stderrLogger(opts.quiet);
  const seconds = () => (performance.now() - started) / 1000;
  const target = opts.targetDir !== undefined ? path.resolve(expandHome(opts.targetDir)) : path.resolve(opts.outputDir, exportDirName(opts.model));
  const quantize = opts.quantize ?? true;
  const sourceId = sourceIdOf(opts.model, opts.revision, looksLocal(opts.model) || fs.existsSync(opts.model));
  const overrides = opts.overrides ?? {};
  const chunkTokens = opts.chunkTokens ?? 0;
  const int8ChunkTokens = opts.chunkTokens ?? DEFAULT_CHUNK_TOKENS;
  if (!Number.isInteger(chunkTokens) || chunkTokens < 0) throw new UserError(`--chunk-tokens must be 0 (whole batches) or a positive integer, got ${chunkTokens}`);
  ensureWritable(path.dirname(target));
  // Work files of interrupted runs (killed before they could clean up) go first.
  sweepDeadWorkFiles(path.dirname(target));
  sweepDeadWorkFiles(target);

  const existing = readCompleteExport(target);
  const why = existing && mismatch(readManifest(target), sourceId, overrides, opts.embeddingSize, chunkTokens);
  if (existing && !opts.force && !why) {
    log.info(`Reusing the complete export in ${target} (${opts.reexportHint ?? "use --force to re-export"})`);
    if (!quantize && fs.existsSync(path.join(target, "model_int8.onnx"))) {
      log.info(`--no-quantize: the model_int8.onnx already in ${target} (from this source and settings) is kept; delete it if the folder should hold FP32 only`);
    }
    if (quantize && !fs.existsSync(path.join(target, "model_int8.onnx"))) {
      await quantizeInto(target, log, int8ChunkTokens);
      writeManifest(target, sourceId, overrides, opts.embeddingSize, chunkTokens);
    }
    return { dir: target, files: listFiles(target), reused: true, onnxConfig: existing, seconds: seconds() };
  }
  // Another model's export is never replaced silently (two sources can share a folder name).
  const previous = readManifest(target);
  if (previous && !opts.force && JSON.stringify(previous.source) !== JSON.stringify(sourceId)) {
    throw new UserError(`${target} holds the export of ${describeSource(previous.source)}, not of ${describeSource(sourceId)}: pass --force to replace it, or -o another folder`);
  }
  if (existing && why && !opts.force) log.info(`Re-exporting into ${target}: ${why}`);

  const source = await sourceFolder(opts, log);
  const warn = (m: string) => log.warn(`Warning: ${m}`);
  const ck = await loadColbertCheckpoint(source, { overrides: opts.overrides, embeddingSize: opts.embeddingSize, warn });
  const staging = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.partial`);
  const releaseStaging = removeOnInterrupt(staging);
  try {
    const cfg = onnxConfig(ck, opts.model);
    log.info(`${cfg.model_class} (${ck.layout} layout) → ${ck.head.length} Dense → ${cfg.embedding_dim}-dim ColBERT, vocabulary ${ck.tokenizer.length}`);
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });

    const model = buildColbertModel(ck, warn, chunkTokens);
    const totalBytes = model.initializers.reduce((s, t) => s + t.byteLength, 0);
    const bar = log.bar("Writing model.onnx", Math.round(totalBytes / 2 ** 20), " MB");
    let written = 0;
    const writeStart = performance.now();
    const onnxFiles = writeModel(path.join(staging, "model.onnx"), model, {
      onTensor: (_i, _n, bytes) => bar.update(Math.round((written += bytes) / 2 ** 20)),
    });
    bar.stop();
    log.info(`Wrote ${onnxFiles.files.map((f) => path.basename(f)).join(" + ")} (${(onnxFiles.bytes / 2 ** 20).toFixed(0)} MB) in ${((performance.now() - writeStart) / 1000).toFixed(1)} s`);

    // The self-check comes before the other files: their big strings would otherwise leave memory
    // behind that onnxruntime's load then stacks on (see util/memory.ts, checkpoint/scratch.ts).
    await releaseGarbage();
    const check = await selfCheck(path.join(staging, "model.onnx"), ck.tokenizer.json, ck.tokenizer.config, cfg);
    log.info(`Self-check passed: ${check.rows} token rows × ${check.dim} dims, finite, unit norms (max error ${check.maxNormError.toExponential(1)}), ${check.ms.toFixed(0)} ms`);

    writeJsonAtomic(path.join(staging, "tokenizer.json"), ck.tokenizer.json);
    writeJsonAtomic(path.join(staging, "tokenizer_config.json"), ck.tokenizer.config);
    const specialMap = path.join(ck.transformerDir, "special_tokens_map.json");
    if (fs.existsSync(specialMap)) writeFileAtomic(path.join(staging, "special_tokens_map.json"), fs.readFileSync(specialMap));
    writeJsonAtomic(path.join(staging, "config.json"), exportedHfConfig(ck));
    writeJsonAtomic(path.join(staging, "config_sentence_transformers.json"), exportedSentenceTransformersConfig(ck));
    writeJsonAtomic(path.join(staging, "onnx_config.json"), cfg);

    if (quantize) await quantizeInto(staging, log, int8ChunkTokens);
    writeManifest(staging, sourceId, overrides, opts.embeddingSize, chunkTokens);

    const kept = replaceDir(staging, target);
    if (kept.length > 0) log.info(`Kept ${kept.length} file(s) of yours in ${target}: ${kept.join(", ")}`);
    log.info(`Exported to ${target} in ${seconds().toFixed(1)} s`);
    return { dir: target, files: listFiles(target), reused: false, onnxConfig: cfg, selfCheck: check, seconds: seconds() };
  } catch (e) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw e;
  } finally {
    releaseStaging();
    ck.close();
  }
}

async function quantizeInto(dir: string, log: Logger, chunkTokens: number): Promise<void> {
  await quantizeModel(path.join(dir, "model.onnx"), path.join(dir, "model_int8.onnx"), log, { chunkTokens });
}

/**
 * Moves the complete staging folder into place. Entries of the older export that the tool did not
 * write (a README, notes, a subfolder, .git) move into the new one first; the rest of the older
 * export is removed only once the new one is in place. Returns the kept entries.
 */
function replaceDir(staging: string, target: string): string[] {
  const kept = userEntries(target).filter((name) => !fs.existsSync(path.join(staging, name)));
  for (const name of kept) fs.renameSync(path.join(target, name), path.join(staging, name));
  const old = `${path.join(path.dirname(target), "." + path.basename(target))}.${process.pid}.old`;
  const hadOld = fs.existsSync(target);
  const releaseOld = removeOnInterrupt(old);
  try {
    if (hadOld) fs.renameSync(target, old);
    fs.renameSync(staging, target);
    if (hadOld) fs.rmSync(old, { recursive: true, force: true });
  } finally {
    releaseOld();
  }
  return kept.sort();
}

/** Fails early, before any download or export work, when `dir` cannot be written. */
function ensureWritable(dir: string): void {
  const probe = path.join(dir, `.pylate-onnx-export.${process.pid}.probe.tmp`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(probe, "");
    fs.rmSync(probe, { force: true });
  } catch (e) {
    throw fsError(e as NodeJS.ErrnoException, dir, "choose another --output folder");
  }
}
