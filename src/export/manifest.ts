/**
 * What an export folder was made from and which of its files the tool wrote, in a hidden
 * `.pylate-onnx-export.json` beside them (uploads skip dotfiles). It decides two things:
 * - reuse: an existing export answers a new request only when it was made from the same source
 *   (resolved local path, or Hub id + revision) with the same explicit settings;
 * - a re-export replaces only the tool's own files: anything else in the folder stays.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { SettingsOverrides } from "../colbert/settings.js";
import { writeJsonAtomic } from "../util/fs.js";
import { VERSION } from "../version.js";

export const MANIFEST_FILE = ".pylate-onnx-export.json";

/** Every file name an export (or colbert-quantize into it) can write: always the tool's to replace. */
export const TOOL_OUTPUTS = new Set([
  "model.onnx",
  "model.onnx.data",
  "model_int8.onnx",
  "model_int8.onnx.data",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "config.json",
  "onnx_config.json",
  "config_sentence_transformers.json",
  MANIFEST_FILE,
]);

export type SourceId = { kind: "local"; path: string } | { kind: "hub"; id: string; revision: string };

export interface Manifest {
  tool: "pylate-onnx-export";
  version: string;
  source: SourceId;
  /** The settings given explicitly (flags), undefined ones dropped. */
  overrides: SettingsOverrides;
  embedding_size: number | null;
  /** Tokens per chunk of model.onnx's batch loop (export/chunks.ts); 0: a plain graph. Absent (exports before chunks): plain. */
  chunk_tokens?: number;
  files: string[];
}

/** `./x`, `../x`, `/x`, `~/x`, `.`, `C:\x` name local folders, whether they exist or not. */
export function looksLocal(model: string): boolean {
  return /^(\.{1,2}([\\/]|$)|[\\/]|~([\\/]|$)|[A-Za-z]:[\\/])/.test(model);
}

/** `~` expanded; other paths as given. */
export function expandHome(model: string): string {
  return /^~([\\/]|$)/.test(model) ? path.join(os.homedir(), model.slice(1)) : model;
}

export function sourceIdOf(model: string, revision: string | undefined, isLocal: boolean): SourceId {
  return isLocal ? { kind: "local", path: path.resolve(expandHome(model)) } : { kind: "hub", id: model, revision: revision ?? "main" };
}

export function describeSource(s: SourceId): string {
  return s.kind === "local" ? s.path : `${s.id}@${s.revision}`;
}

function canonical(o: SettingsOverrides): string {
  return JSON.stringify(Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b))));
}

export function readManifest(dir: string): Manifest | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), "utf8")) as Manifest;
    return m && m.tool === "pylate-onnx-export" && m.source && Array.isArray(m.files) ? m : undefined;
  } catch {
    return undefined;
  }
}

/** Why the export described by `m` cannot answer this request, or undefined when it can. */
export function mismatch(m: Manifest | undefined, source: SourceId, overrides: SettingsOverrides, embeddingSize: number | undefined, chunkTokens = 0): string | undefined {
  if (!m) return "it has no record of its source";
  if (JSON.stringify(m.source) !== JSON.stringify(source)) return `it was exported from ${describeSource(m.source)}`;
  if (canonical(m.overrides ?? {}) !== canonical(overrides)) return "it was made with other settings";
  if ((m.embedding_size ?? null) !== (embeddingSize ?? null)) return "it was made with another --embedding-size";
  if ((m.chunk_tokens ?? 0) !== chunkTokens) return `its model.onnx was made ${m.chunk_tokens ? `with batches in chunks of ${m.chunk_tokens} tokens` : "as a plain graph"}`;
  return undefined;
}

export function writeManifest(dir: string, source: SourceId, overrides: SettingsOverrides, embeddingSize: number | undefined, chunkTokens = 0): void {
  const files = fs.readdirSync(dir).filter((f) => !f.startsWith(".")).sort();
  const m: Manifest = {
    tool: "pylate-onnx-export",
    version: VERSION,
    source,
    overrides: JSON.parse(canonical(overrides)) as SettingsOverrides,
    embedding_size: embeddingSize ?? null,
    chunk_tokens: chunkTokens,
    files,
  };
  writeJsonAtomic(path.join(dir, MANIFEST_FILE), m);
}

/** Entries of an existing export folder the tool did not write (kept across a re-export). */
export function userEntries(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const written = new Set([...(readManifest(dir)?.files ?? []), ...TOOL_OUTPUTS]);
  return names.filter((n) => !written.has(n));
}
