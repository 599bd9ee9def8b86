/**
 * colbert-check's job: audit an export folder — ours, the Python tool's, anyone's — against what
 * its consumers need (NextPlaid's loader rules, PyLate's settings), one finding per problem, each
 * saying what is wrong and how to fix it.
 */
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "tokenizers";
import { hasBatchLoop } from "../export/chunks.js";
import { readModel } from "../onnx/reader.js";
import { DataType } from "../onnx/model.js";
import { selfCheck } from "../export/selfcheck.js";
import { sourceFolder } from "../export/exporter.js";
import { loadColbertCheckpoint } from "../colbert/checkpoint.js";
import { NEXTPLAID_DEFAULTS, onnxConfig, ONNX_CONFIG_INTEGER_KEYS, ONNX_CONFIG_KEYS, type OnnxConfig } from "../colbert/onnx-config.js";
import { int8WeightPeak } from "../quantize/saturation.js";
import { MATMUL_WEIGHT_LEVELS } from "../quantize/dynamic.js";
import { drifts, int8Fidelity } from "../quantize/index.js";
import { silentLogger, type Logger } from "../util/log.js";
import { UserError } from "../errors.js";

export type Level = "error" | "warning";

export interface Finding {
  level: Level;
  /** The file or aspect checked, e.g. "onnx_config.json". */
  subject: string;
  message: string;
}

export interface AuditReport {
  dir: string;
  ok: boolean;
  findings: Finding[];
  /** What was checked, for the summary (e.g. "model.onnx probe"). */
  checked: string[];
}

export interface AuditOptions {
  /** The checkpoint the export came from (folder or Hub id): its PyLate settings are compared. */
  source?: string;
  revision?: string;
  logger?: Logger;
}

const BOOLEAN_KEYS = ["uses_token_type_ids", "do_query_expansion", "attend_to_expansion_tokens", "do_lower_case"];

export async function auditExport(dir: string, opts: AuditOptions = {}): Promise<AuditReport> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`Export folder not found: ${dir}; pass a folder holding model.onnx, tokenizer.json and onnx_config.json`);
  const findings: Finding[] = [];
  const checked: string[] = [];
  const error = (subject: string, message: string) => findings.push({ level: "error", subject, message });
  const warning = (subject: string, message: string) => findings.push({ level: "warning", subject, message });
  const file = (f: string) => path.join(dir, f);

  // --- files ------------------------------------------------------------------------------
  // A checkpoint folder (no ONNX model, PyLate / transformers files) is not an export: say what to run.
  const checkpointLike = ["modules.json", "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"].some((f) => fs.existsSync(file(f)));
  if (!fs.existsSync(file("model.onnx")) && checkpointLike) {
    throw new UserError(`${dir} is a checkpoint folder (PyLate / transformers weights), not an ONNX export: run pylate-onnx-export ${dir}, then check the folder it writes`);
  }
  for (const f of ["model.onnx", "tokenizer.json", "onnx_config.json"]) {
    if (!fs.existsSync(file(f))) error(f, `missing: NextPlaid cannot load the folder without it; re-export with pylate-onnx-export`);
  }
  if (fs.existsSync(file("model.onnx")) && !fs.existsSync(file("model_int8.onnx"))) warning("model_int8.onnx", `missing: NextPlaid's --int8 and colgrep load only this file; run colbert-quantize ${dir}`);
  for (const f of ["config.json", "tokenizer_config.json", "config_sentence_transformers.json"]) {
    if (!fs.existsSync(file(f))) warning(f, "missing: NextPlaid does not need it, but Hugging Face / PyLate tooling reads it; re-export with pylate-onnx-export");
  }

  // --- onnx_config.json, as NextPlaid's serde parse reads it --------------------------------
  let cfg: Record<string, unknown> | undefined;
  if (fs.existsSync(file("onnx_config.json"))) {
    try {
      const parsed = JSON.parse(fs.readFileSync(file("onnx_config.json"), "utf8")) as unknown;
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not a JSON object");
      cfg = parsed as Record<string, unknown>;
    } catch (e) {
      error("onnx_config.json", `not valid JSON (${(e as Error).message}); re-export with pylate-onnx-export`);
    }
  }
  if (cfg) {
    checked.push("onnx_config.json");
    for (const key of ONNX_CONFIG_INTEGER_KEYS) {
      const v = cfg[key];
      if (v === null) error("onnx_config.json", `${key} is null: NextPlaid cannot parse the file (integers only); set it or re-export with pylate-onnx-export`);
      else if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 0)) error("onnx_config.json", `${key} is ${JSON.stringify(v)}, not a non-negative integer: NextPlaid cannot parse the file`);
    }
    for (const key of BOOLEAN_KEYS) {
      if (cfg[key] !== undefined && typeof cfg[key] !== "boolean") error("onnx_config.json", `${key} is ${JSON.stringify(cfg[key])}, not true/false: NextPlaid cannot parse the file`);
    }
    for (const key of ["query_prefix", "document_prefix"]) {
      if (cfg[key] !== undefined && typeof cfg[key] !== "string") error("onnx_config.json", `${key} is ${JSON.stringify(cfg[key])}, not a string: NextPlaid cannot parse the file`);
    }
    for (const key of ["query_prefix_id", "document_prefix_id"]) {
      const v = cfg[key];
      if (v !== undefined && v !== null && !(Number.isInteger(v) && (v as number) >= 0)) error("onnx_config.json", `${key} is ${JSON.stringify(v)}, not an integer or null: NextPlaid cannot parse the file`);
    }
    const sk = cfg["skiplist_words"];
    if (sk !== undefined && !(Array.isArray(sk) && sk.every((w) => typeof w === "string"))) error("onnx_config.json", "skiplist_words is not a list of strings: NextPlaid cannot parse the file");
    for (const [key, def] of Object.entries(NEXTPLAID_DEFAULTS)) {
      if (!(key in cfg)) warning("onnx_config.json", `${key} missing: NextPlaid then uses ${JSON.stringify(def)}; write the model's own value (re-export with pylate-onnx-export)`);
    }
  }
  const parsedOk = cfg && !findings.some((f) => f.level === "error" && f.subject === "onnx_config.json");
  const config = parsedOk ? ({ ...NEXTPLAID_DEFAULTS, query_prefix_id: null, document_prefix_id: null, ...cfg } as unknown as OnnxConfig) : undefined;

  // --- tokenizer.json ----------------------------------------------------------------------
  let tokenizer: Tokenizer | undefined;
  let tokenizerJson: Record<string, unknown> | undefined;
  if (fs.existsSync(file("tokenizer.json"))) {
    try {
      tokenizerJson = JSON.parse(fs.readFileSync(file("tokenizer.json"), "utf8")) as Record<string, unknown>;
      tokenizer = Tokenizer.fromFile(file("tokenizer.json"));
      checked.push("tokenizer.json");
    } catch (e) {
      error("tokenizer.json", `the tokenizers library cannot load it (${(e as Error).message.split("\n")[0]}); re-export with pylate-onnx-export`);
    }
  }
  if (tokenizerJson && tokenizerJson["truncation"]) {
    error("tokenizer.json", "has a truncation setting: runtimes tokenize with it before their own truncation, cutting texts short; set \"truncation\" to null");
  }
  if (tokenizerJson && tokenizerJson["padding"]) warning("tokenizer.json", "has a padding setting that runtimes would inherit; set \"padding\" to null");
  if (tokenizer && config) {
    for (const [kind, prefix, id] of [
      ["query", config.query_prefix, config.query_prefix_id],
      ["document", config.document_prefix, config.document_prefix_id],
    ] as const) {
      if (prefix === "") {
        warning("onnx_config.json", `empty ${kind} prefix: NextPlaid cannot serve a prefix-free model (it requires a prefix token); PyLate and colbert-serve can`);
        continue;
      }
      const actual = tokenizer.tokenToId(prefix);
      if (actual === null) error("tokenizer.json", `the ${kind} prefix ${JSON.stringify(prefix)} is not a token: every runtime fails or mis-encodes; re-export with pylate-onnx-export`);
      else if (id !== null && id !== actual) error("onnx_config.json", `${kind}_prefix_id is ${id} but tokenizer.json gives ${JSON.stringify(prefix)} id ${actual}; re-export with pylate-onnx-export`);
    }
    const maskId = tokenizer.tokenToId("[MASK]") ?? tokenizer.tokenToId("<mask>");
    if (config.mask_token_id === 103 && maskId !== null && maskId !== 103) {
      warning("onnx_config.json", `mask_token_id 103 is replaced by NextPlaid with the [MASK]/<mask> id ${maskId}; write the id the model pads queries with`);
    } else if (maskId !== null && Number.isInteger(config.mask_token_id) && config.mask_token_id !== maskId) {
      warning("onnx_config.json", `mask_token_id ${config.mask_token_id} is not the tokenizer's mask token (${maskId}); queries are expanded with it — check that it is intended`);
    }
    if (Array.isArray(config.skiplist_words)) {
      const unk = unknownToken(tokenizerJson!);
      const missing = config.skiplist_words.filter((w) => tokenizer!.tokenToId(w) === null);
      if (missing.length > 0 && unk !== null && !config.skiplist_words.includes(unk)) {
        warning(
          "onnx_config.json",
          `skiplist words ${JSON.stringify(missing.slice(0, 5))}${missing.length > 5 ? "…" : ""} are not tokens: PyLate maps them to ${JSON.stringify(unk)} and drops those rows, NextPlaid keeps them; add ${JSON.stringify(unk)} to skiplist_words`,
        );
      }
    }
  }

  // --- model.onnx: structure, external data, a probe ------------------------------------------
  if (fs.existsSync(file("model.onnx"))) {
    let structureOk = false;
    try {
      const m = readModel(file("model.onnx"));
      m.close();
      if (hasBatchLoop(m.model)) {
        const chunkTokens = Number(m.model.metadata?.["chunk_tokens"] ?? 0);
        checked.push(`model.onnx graph (batches in chunks of ${chunkTokens || "some"} tokens, an ONNX Loop)`);
        warning(
          "model.onnx",
          `runs each batch in chunks inside an ONNX Loop: onnxruntime's quantize_dynamic, graph optimizers and TensorRT/OpenVINO conversions do not see inside it, and GPU runtimes that feed whole batches run them ${chunkTokens || "a few"} tokens at a time; re-export without --chunk-tokens for a plain graph (colbert-serve and colbert-encode chunk CPU batches themselves)`,
        );
      } else checked.push("model.onnx graph (plain: every ONNX tool and GPU runtime takes it)");
      const inits = new Set(m.model.initializers.map((t) => t.name));
      const inputs = m.model.inputs.map((i) => i.name).filter((n) => !inits.has(n));
      for (const name of ["input_ids", "attention_mask"]) {
        if (!inputs.includes(name)) error("model.onnx", `has no "${name}" input (inputs: ${inputs.join(", ")}): NextPlaid feeds inputs by name; re-export with pylate-onnx-export`);
      }
      if (config) {
        const hasTypes = inputs.includes("token_type_ids");
        if (hasTypes && !config.uses_token_type_ids) error("model.onnx", `takes token_type_ids but onnx_config.json says uses_token_type_ids: false: runtimes will not feed it; set it to true`);
        if (!hasTypes && config.uses_token_type_ids) error("model.onnx", `has no token_type_ids input but onnx_config.json says uses_token_type_ids: true: runtimes will feed an unknown input; set it to false`);
      }
      const out = m.model.outputs.find((o) => o.name === "output");
      if (!out) error("model.onnx", `has no output named "output" (outputs: ${m.model.outputs.map((o) => o.name).join(", ")}): NextPlaid reads that name; re-export with pylate-onnx-export`);
      const last = out?.shape?.at(-1);
      if (config && typeof last === "number" && last !== config.embedding_dim) error("onnx_config.json", `embedding_dim is ${config.embedding_dim} but the model outputs ${last} dims; set it to ${last}`);
      for (const [data, bytes] of m.externalData) {
        const name = path.basename(data);
        if (!fs.existsSync(data)) error(name, `missing: model.onnx keeps its weights there; copy it beside model.onnx`);
        else if (fs.statSync(data).size < bytes) error(name, `truncated (${fs.statSync(data).size} of ${bytes} bytes); copy it again`);
        else warning(name, `model.onnx needs it, and NextPlaid's Hub download never fetches it: serve this folder from disk, or re-export (weights inline below 2 GB)`);
      }
      structureOk = !findings.some((f) => f.level === "error" && (f.subject === "model.onnx" || f.subject.endsWith(".data")));
    } catch (e) {
      error("model.onnx", `${(e as Error).message.replace(/; pass .*$/, "")}; re-export with pylate-onnx-export`);
    }
    if (structureOk && config && tokenizerJson) {
      try {
        const tokenizerConfig = fs.existsSync(file("tokenizer_config.json")) ? (JSON.parse(fs.readFileSync(file("tokenizer_config.json"), "utf8")) as object) : {};
        const probe = await selfCheck(file("model.onnx"), tokenizerJson, tokenizerConfig, config);
        checked.push(`model.onnx probe (${probe.rows} rows, unit norms)`);
      } catch (e) {
        error("model.onnx", (e as Error).message.replace(/^Self-check failed: /, "probe: ").replace(/; please report this bug$/, "; re-export with pylate-onnx-export"));
      }
    }
  }

  // --- model_int8.onnx ------------------------------------------------------------------------
  if (fs.existsSync(file("model_int8.onnx"))) {
    try {
      const m = readModel(file("model_int8.onnx"));
      let peak: number | undefined;
      try {
        peak = int8WeightPeak(m.model);
      } finally {
        m.close();
      }
      checked.push(
        hasBatchLoop(m.model)
          ? `model_int8.onnx graph (batches in chunks of ${m.model.metadata?.["chunk_tokens"] ?? "some"} tokens: faster on CPUs, where INT8 runs)`
          : "model_int8.onnx graph (plain: whole batches)",
      );
      const quantized = m.model.initializers.some((t) => t.dataType === DataType.INT8 || t.dataType === DataType.UINT8);
      if (!quantized) warning("model_int8.onnx", `holds no int8 weights: it is not quantized; run colbert-quantize ${dir} --force`);
      if (peak !== undefined && peak > MATMUL_WEIGHT_LEVELS) {
        warning(
          "model_int8.onnx",
          `full-range int8 weights (up to ±${peak}): onnxruntime's INT8 kernels on x86 CPUs without VNNI (AVX2-only) saturate them and lose accuracy; re-quantize with colbert-quantize ${dir} --force (weights within ±${MATMUL_WEIGHT_LEVELS})`,
        );
      }
      if (fs.existsSync(file("model.onnx")) && !findings.some((f) => f.level === "error" && f.subject === "model.onnx")) {
        const cos = await int8Fidelity(file("model.onnx"), file("model_int8.onnx"));
        checked.push(`model_int8.onnx vs model.onnx (mean cosine ${cos.mean.toFixed(5)}, min ${cos.min.toFixed(5)})`);
        if (drifts(cos)) warning("model_int8.onnx", `drifts from FP32 on the probe texts (mean cosine ${cos.mean.toFixed(4)}, min ${cos.min.toFixed(4)}): check retrieval quality, or re-quantize with colbert-quantize ${dir} --force`);
      }
    } catch (e) {
      error("model_int8.onnx", `${(e as Error).message.split("\n")[0]!.replace(/; pass .*$/, "")}; run colbert-quantize ${dir} --force`);
    }
  }

  // --- the checkpoint's true settings ---------------------------------------------------------
  if (opts.source && !config) {
    warning("--source", `the settings were not compared with ${opts.source}: onnx_config.json could not be read as NextPlaid reads it (fix the errors above, then check again)`);
  }
  if (opts.source && config) {
    const log = opts.logger ?? silentLogger;
    const folder = await sourceFolder({ model: opts.source, revision: opts.revision }, log);
    const ck = await loadColbertCheckpoint(folder, { warn: () => {} });
    try {
      const want = onnxConfig(ck, opts.source);
      checked.push(`settings vs ${opts.source}`);
      // Every setting but the names and the skiplist (compared as a set below).
      const keys = ONNX_CONFIG_KEYS.filter((k) => !["model_type", "model_name", "model_class", "skiplist_words", "pad_token_id"].includes(k));
      for (const key of keys) {
        if (JSON.stringify(config[key]) !== JSON.stringify(want[key])) {
          error("onnx_config.json", `${key} is ${JSON.stringify(config[key])} but ${opts.source}'s PyLate setting is ${JSON.stringify(want[key])}: runtimes will not encode as PyLate does; re-export with pylate-onnx-export`);
        }
      }
      const have = new Set(config.skiplist_words);
      const lacking = ck.settings.skiplistWords.filter((w) => !have.has(w));
      if (lacking.length > 0) error("onnx_config.json", `skiplist_words lacks ${JSON.stringify(lacking.slice(0, 5))} from ${opts.source}'s PyLate settings; re-export with pylate-onnx-export`);
    } finally {
      ck.close();
    }
  }

  // Errors first; in the order checked within each level.
  const sorted = [...findings.filter((f) => f.level === "error"), ...findings.filter((f) => f.level === "warning")];
  return { dir, ok: sorted[0]?.level !== "error", findings: sorted, checked };
}

function unknownToken(json: Record<string, unknown>): string | null {
  const model = json["model"] as { unk_token?: unknown; unk_id?: unknown; vocab?: unknown } | undefined;
  if (typeof model?.unk_token === "string") return model.unk_token;
  if (typeof model?.unk_id === "number" && Array.isArray(model.vocab)) {
    const entry = (model.vocab as [string, number][])[model.unk_id];
    return entry ? entry[0] : null;
  }
  return null;
}
