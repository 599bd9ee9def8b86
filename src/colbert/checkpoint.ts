/**
 * Reads a checkpoint folder the way PyLate does: which layout it is (PyLate /
 * sentence-transformers, Stanford-NLP ColBERT, plain encoder), the backbone, the projection head,
 * the resolved settings and the tokenizer with its prefix tokens.
 */
import fs from "node:fs";
import path from "node:path";
import { openCheckpointWeights } from "../checkpoint/index.js";
import type { WeightStore } from "../checkpoint/types.js";
import { backboneFor } from "../backbones/registry.js";
import type { Backbone, HFConfig } from "../backbones/types.js";
import { Weights } from "../backbones/weights.js";
import { readDenseModule, type DenseLayer } from "./dense.js";
import {
  resolveSettings,
  settingsFromSentenceTransformers,
  settingsFromStanfordMetadata,
  STANFORD_DEFAULTS,
  type ColbertSettings,
  type SettingsOverrides,
} from "./settings.js";
import { prepareTokenizer, type PreparedTokenizer } from "./tokenizer.js";
import { UserError } from "../errors.js";

export type Layout = "pylate" | "stanford" | "plain";

export interface ColbertCheckpoint {
  /** Folder of the transformer (config.json, tokenizer, weights). */
  transformerDir: string;
  layout: Layout;
  config: HFConfig;
  backbone: Backbone;
  /** Backbone tensors under their base-model names. */
  weights: Weights;
  head: DenseLayer[];
  settings: ColbertSettings;
  tokenizer: PreparedTokenizer;
  /** Source config_sentence_transformers.json, if any (kept for the exported copy). */
  sentenceTransformersConfig?: Record<string, unknown>;
  embeddingDim: number;
  close(): void;
}

export interface LoadOptions {
  overrides?: SettingsOverrides;
  /** Allows a plain encoder: adds an untrained projection of this size (with a warning). */
  embeddingSize?: number;
  warn: (message: string) => void;
}

function readJson(file: string, what: string): Record<string, unknown> | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`Unreadable ${what} (${file}): ${(e as Error).message}; fix or re-download the checkpoint`);
  }
}

interface ModuleEntry {
  idx?: number;
  path: string;
  type: string;
}

/** The stored prefix of the base model's tensors ("" when saved as the base model). */
function basePrefix(store: WeightStore, backbone: Backbone): string {
  const names = store.names();
  const probe = backbone.wordEmbeddings.replace(/\.weight$/, "");
  if (names.some((n) => n.startsWith(probe))) return "";
  return backbone.basePrefixes.find((p) => names.some((n) => n.startsWith(p + probe))) ?? "";
}

/** A deterministic, untrained projection (PyLate would use a random one too). */
function randomProjection(inFeatures: number, outFeatures: number): WeightStore {
  let seed = 0x2545f491;
  const rand = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0xffffffff;
  };
  const bound = 1 / Math.sqrt(inFeatures);
  const data = Float32Array.from({ length: inFeatures * outFeatures }, () => (rand() * 2 - 1) * bound);
  const info = { name: "linear.weight", dtype: "F32" as const, shape: [outFeatures, inFeatures] };
  return {
    names: () => ["linear.weight"],
    has: (n) => n === "linear.weight",
    info: () => info,
    readF32: () => data.slice(),
    close: () => {},
  };
}

export async function loadColbertCheckpoint(dir: string, opts: LoadOptions): Promise<ColbertCheckpoint> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new UserError(`Model folder not found: ${dir}; pass a checkpoint folder or a Hugging Face model id (org/name)`);
  }
  const modules = readJson(path.join(dir, "modules.json"), "modules.json") as unknown as ModuleEntry[] | undefined;
  for (const m of modules ?? []) {
    if (typeof m.path !== "string" || typeof m.type !== "string" || m.path.split(/[\\/]/).includes("..") || path.isAbsolute(m.path)) {
      throw new UserError(`modules.json in ${dir} has an invalid module path ${JSON.stringify(m.path)}; module folders must lie inside the model folder`);
    }
  }
  const transformerEntry = modules?.find((m) => m.type.endsWith("models.Transformer"));
  const transformerDir = path.join(dir, transformerEntry?.path ?? "");
  const config = readJson(path.join(transformerDir, "config.json"), "config.json");
  if (!config) throw new UserError(`No config.json in ${transformerDir}: not a Hugging Face checkpoint folder`);
  const backbone = backboneFor(config);
  const arch = Array.isArray(config["architectures"]) ? String(config["architectures"][0]) : "";
  const layout: Layout = arch === "HF_ColBERT" ? "stanford" : modules?.some((m) => m.type.endsWith("Dense")) ? "pylate" : "plain";

  const store = await openCheckpointWeights(transformerDir);
  const stores: WeightStore[] = [store];
  try {
    const weights = new Weights(store, basePrefix(store, backbone));
    const hidden = backbone.hiddenSize(config);

    let head: DenseLayer[] = [];
    let fileSettings: SettingsOverrides | undefined;
    let sentenceTransformersConfig: Record<string, unknown> | undefined;
    if (layout === "stanford") {
      const meta = readJson(path.join(dir, "artifact.metadata"), "artifact.metadata") ?? {};
      fileSettings = { ...STANFORD_DEFAULTS, ...settingsFromStanfordMetadata(meta) };
      const linearWeights = new Weights(store, "", "Stanford ColBERT checkpoint", "colbert.");
      if (!linearWeights.has("linear.weight")) {
        throw new UserError(`This HF_ColBERT checkpoint has no linear.weight projection; the checkpoint is incomplete`);
      }
      const [out, inF] = linearWeights.shape("linear.weight") as [number, number];
      head = [{ source: "linear", inFeatures: inF, outFeatures: out, activation: "identity", useResidual: false, weights: linearWeights }];
    } else {
      for (const m of (modules ?? []).filter((e) => e.type.endsWith("Dense")).sort((a, b) => (a.idx ?? 0) - (b.idx ?? 0))) {
        const layer = await readDenseModule(path.join(dir, m.path), m.path);
        if (layer.store) stores.push(layer.store);
        head.push(layer);
      }
      sentenceTransformersConfig = readJson(path.join(dir, "config_sentence_transformers.json"), "config_sentence_transformers.json");
      fileSettings = sentenceTransformersConfig && settingsFromSentenceTransformers(sentenceTransformersConfig);
    }
    if (head.length === 0) {
      if (!opts.embeddingSize) {
        throw new UserError(
          `${dir} is a plain encoder with no ColBERT projection (no Dense module): PyLate would add an untrained random projection, which gives useless embeddings; export a trained ColBERT model, or pass --embedding-size N to accept an untrained projection`,
        );
      }
      opts.warn(`WARNING: ${dir} has no trained ColBERT projection; adding an UNTRAINED random ${hidden}→${opts.embeddingSize} projection because --embedding-size was given. Its embeddings are not meaningful until the model is fine-tuned.`);
      head = [
        {
          source: "random_projection",
          inFeatures: hidden,
          outFeatures: opts.embeddingSize,
          activation: "identity",
          useResidual: false,
          weights: new Weights(randomProjection(hidden, opts.embeddingSize), "", "random projection", "projection."),
        },
      ];
    } else if (opts.embeddingSize !== undefined) {
      const trained = head.at(-1)!.outFeatures;
      opts.warn(`--embedding-size ${opts.embeddingSize} is ignored: ${dir} has a trained ColBERT projection (${trained} dims), which is exported as it is`);
    }
    let width = hidden;
    for (const d of head) {
      if (d.inFeatures !== width) throw new UserError(`${d.source} expects ${d.inFeatures} input features but receives ${width}; the modules do not fit together`);
      width = d.outFeatures;
    }

    const sbert = readJson(path.join(transformerDir, "sentence_bert_config.json"), "sentence_bert_config.json");
    const lower = typeof sbert?.["do_lower_case"] === "boolean" ? { doLowerCase: sbert["do_lower_case"] as boolean } : undefined;
    const settings = resolveSettings(lower, fileSettings, opts.overrides);
    const tokenizer = prepareTokenizer(transformerDir, settings);

    return {
      transformerDir,
      layout,
      config,
      backbone,
      weights,
      head,
      settings,
      tokenizer,
      sentenceTransformersConfig,
      embeddingDim: width,
      close: () => stores.forEach((s) => s.close()),
    };
  } catch (e) {
    stores.forEach((s) => s.close());
    throw e;
  }
}
