/**
 * What `--model` (and ColbertEncoder.load) may name, resolved to an export folder:
 * - an export folder (onnx_config.json + a model file): used as it is;
 * - a Hub id of a published ONNX export: its runtime files are downloaded into the shared
 *   Hugging Face cache (verified, resumable, offline-aware, as every download here);
 * - a PyLate checkpoint, as a folder or a Hub id: exported on the fly into a cache folder, and
 *   that export is reused next time (an export takes seconds).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { downloadOnnxExport, isHubId, type Precision } from "../hub/download.js";
import { exportModel } from "../export/exporter.js";
import { expandHome, looksLocal, sourceIdOf, describeSource } from "../export/manifest.js";
import { silentLogger, type Logger } from "../util/log.js";
import { UserError } from "../errors.js";

export type ModelOrigin = "folder" | "hub-export" | "exported" | "cached-export";

export interface ResolvedModel {
  dir: string;
  origin: ModelOrigin;
  /** One line for the start-up log. */
  description: string;
}

export interface ResolveOptions {
  revision?: string;
  precision?: Precision;
  logger?: Logger;
}

/** Where on-the-fly exports live: $PYLATE_ONNX_EXPORT_CACHE, else $XDG_CACHE_HOME or ~/.cache, /pylate-onnx-export. */
export function exportCacheDir(): string {
  return process.env["PYLATE_ONNX_EXPORT_CACHE"] || path.join(process.env["XDG_CACHE_HOME"] || path.join(os.homedir(), ".cache"), "pylate-onnx-export");
}

export function isExportFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, "onnx_config.json")) && (fs.existsSync(path.join(dir, "model.onnx")) || fs.existsSync(path.join(dir, "model_int8.onnx")));
}

export async function resolveModel(model: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const log = opts.logger ?? silentLogger;
  const local = expandHome(model);
  if (fs.existsSync(local)) {
    if (isExportFolder(local)) return { dir: local, origin: "folder", description: `export folder ${path.resolve(local)}` };
    if (!fs.existsSync(path.join(local, "config.json")) && !fs.existsSync(path.join(local, "modules.json"))) {
      throw new UserError(`${model} is neither an export folder (onnx_config.json + model.onnx) nor a checkpoint folder (config.json); pass one of those or a Hugging Face id`);
    }
    return exportOnTheFly(model, opts, log);
  }
  if (looksLocal(model) || !isHubId(model) || !model.includes("/")) {
    throw new UserError(`Model not found: ${model}; pass an export folder, a checkpoint folder, or a Hugging Face id (org/name)`);
  }
  const hub = await downloadOnnxExport(model, { revision: opts.revision, precision: opts.precision ?? "auto", logger: log });
  if (hub) return { dir: hub.dir, origin: "hub-export", description: `published export ${model}@${hub.commit.slice(0, 10)} from the Hub cache` };
  return exportOnTheFly(model, opts, log);
}

/** A checkpoint exported into the cache, one folder per source, reused while the source is the same. */
async function exportOnTheFly(model: string, opts: ResolveOptions, log: Logger): Promise<ResolvedModel> {
  const source = sourceIdOf(model, opts.revision, looksLocal(model) || fs.existsSync(expandHome(model)));
  const key = crypto.createHash("sha256").update(JSON.stringify(source)).digest("hex").slice(0, 16);
  const outputDir = path.join(exportCacheDir(), key);
  log.info(`Exporting ${describeSource(source)} (a PyLate checkpoint) into ${outputDir}, or reusing that export…`);
  const r = await exportModel({ model, outputDir, revision: opts.revision, logger: log, reexportHint: "delete that folder to export again" });
  return {
    dir: r.dir,
    origin: r.reused ? "cached-export" : "exported",
    description: `${r.reused ? "cached export" : "fresh export"} of the checkpoint ${describeSource(source)} (${r.dir})`,
  };
}
