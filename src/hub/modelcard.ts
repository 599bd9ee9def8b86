/** README.md model card for a pushed export folder. */
import fs from "node:fs";
import path from "node:path";
import type { OnnxConfig } from "../colbert/onnx-config.js";
import { hubEndpoint } from "./env.js";
import { readModel } from "../onnx/reader.js";
import { UserError } from "../errors.js";

export interface ModelCardInfo {
  repo: string;
  sourceModel: string;
  config: OnnxConfig;
  files: { name: string; bytes: number }[];
  /** Tokens per chunk of model.onnx's batch loop (export/chunks.ts); 0: none. */
  chunkTokens: number;
  /** The same for model_int8.onnx (0: none or absent). */
  int8ChunkTokens?: number;
}

/** The chunk size pylate-onnx-export recorded in the model's metadata; 0 when absent or unreadable. */
function chunkTokensOf(modelFile: string): number {
  try {
    const read = readModel(modelFile);
    read.close();
    return Number(read.model.metadata?.["chunk_tokens"] ?? 0) || 0;
  } catch {
    return 0;
  }
}

export function modelCardInfoFromDir(dir: string, repo: string, sourceModel?: string): ModelCardInfo {
  const cfgFile = path.join(dir, "onnx_config.json");
  if (!fs.existsSync(cfgFile)) throw new UserError(`${dir} has no onnx_config.json: push a folder written by pylate-onnx-export`);
  const config = JSON.parse(fs.readFileSync(cfgFile, "utf8")) as OnnxConfig;
  const files = fs
    .readdirSync(dir)
    .filter((f) => !f.startsWith(".") && f !== "README.md" && fs.statSync(path.join(dir, f)).isFile())
    .sort()
    .map((name) => ({ name, bytes: fs.statSync(path.join(dir, name)).size }));
  return { repo, sourceModel: sourceModel ?? config.model_name, config, files, chunkTokens: chunkTokensOf(path.join(dir, "model.onnx")),
    int8ChunkTokens: fs.existsSync(path.join(dir, "model_int8.onnx")) ? chunkTokensOf(path.join(dir, "model_int8.onnx")) : 0,
  };
}

const size = (n: number) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MB` : `${(n / 1024).toFixed(1)} kB`);

export function renderModelCard(info: ModelCardInfo): string {
  const c = info.config;
  const isHubSource = /^[\w.-]+\/[\w.-]+$/.test(info.sourceModel);
  const source = isHubSource ? `[${info.sourceModel}](${hubEndpoint()}/${info.sourceModel})` : `\`${info.sourceModel}\``;
  const has = (f: string) => info.files.some((x) => x.name === f);
  const fileRows = info.files
    .map((f) => {
      const what =
        f.name === "model.onnx" ? "FP32 model" : f.name === "model_int8.onnx" ? "INT8 model (dynamic quantization)" : f.name === "model.onnx.data" ? "FP32 weights (external data)" : "";
      return `| \`${f.name}\` | ${size(f.bytes)} | ${what} |`;
    })
    .join("\n");
  return `---
library_name: onnx
tags:
- ColBERT
- PyLate
- onnx
- sentence-similarity
- feature-extraction
pipeline_tag: sentence-similarity
${isHubSource ? `base_model: ${info.sourceModel}\n` : ""}---

# ${info.repo.split("/").pop()}

ONNX export of the PyLate ColBERT model ${source}, made with
\`pylate-onnx-export\` (no Python involved: the graph is built from the checkpoint's weights and
checked against the source model's behaviour).

| | |
|---|---|
| backbone | ${c.model_class} |
| embedding dim | ${c.embedding_dim} per token |
| query / document length | ${c.query_length} / ${c.document_length} tokens |
| query / document prefix | \`${JSON.stringify(c.query_prefix)}\` / \`${JSON.stringify(c.document_prefix)}\` |
| query expansion | ${c.do_query_expansion ? "yes" : "no"} |
| precision | FP32${has("model_int8.onnx") ? " and INT8" : ""} |

## Files

| file | size | |
|---|---|---|
${fileRows}

Inputs: \`input_ids\`, \`attention_mask\`${c.uses_token_type_ids ? ", `token_type_ids`" : ""} (int64, [batch, sequence]).
Output: \`output\` (float32, [batch, sequence, ${c.embedding_dim}]), every row L2-normalised.
\`onnx_config.json\` holds the settings a ColBERT runtime needs (prefix ids, lengths, skiplist, mask token).
${
    info.chunkTokens > 0
      ? `model.onnx runs each batch a few rows at a time (chunks of about ${info.chunkTokens} tokens, an ONNX Loop over the
int64 initializer \`chunk_tokens\`): faster on CPUs, where a chunk's activations stay in cache. On a GPU, whole batches are
faster: raise \`chunk_tokens\` (e.g. to 2^62) — \`colbert-serve\` does so for GPU providers by itself.
`
      : `model.onnx is a plain graph (transformer → Dense → L2 normalisation): every ONNX tool, optimizer and GPU runtime takes it.
`
  }${
    (info.int8ChunkTokens ?? 0) > 0 && info.chunkTokens === 0
      ? `model_int8.onnx (dynamic INT8, which runs on CPUs) runs each batch in chunks of about ${info.int8ChunkTokens} tokens
inside the graph (an ONNX Loop): on CPUs that is faster, also in runtimes that feed whole batches (NextPlaid's \`--int8\`).
`
      : ""
  }
## Usage

Encode with the runtime that ships with the exporter (PyLate-exact tokenization, query expansion,
skiplist, optional token pooling):

\`\`\`sh
colbert-encode --model ./${info.repo.split("/").pop()} --type query <<< "what is late interaction?"
colbert-serve --model ./${info.repo.split("/").pop()} --port 8080${has("model_int8.onnx") ? " --int8" : ""}   # NextPlaid-compatible /encode
\`\`\`

With [NextPlaid](https://github.com/lightonai/next-plaid), point its model setting at this repository
(\`${info.repo}\`); it reads \`onnx_config.json\`, \`tokenizer.json\` and \`model.onnx\`${has("model_int8.onnx") ? " / `model_int8.onnx`" : ""}.
`;
}
