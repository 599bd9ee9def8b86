/**
 * Random-weight checkpoints with real model shapes, for benchmarks (generated, never committed):
 * - modernbert-base: GTE-ModernColBERT-v1 (ModernBERT-base, PyLate layout, Dense 768→128)
 * - bert-base: colbertv2.0 (BERT-base, Stanford HF_ColBERT layout, linear 768→128)
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { writeSafetensors } from "../src/checkpoint/safetensors.js";
import { cpuFlags } from "../src/quantize/saturation.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const CACHE = path.join(HERE, ".cache");
const FIXTURES = path.join(HERE, "..", "test", "fixtures");

/**
 * The machine, for the record: cores, CPU, RAM, Node, and the SIMD features that pick
 * onnxruntime's kernels (INT8 speed and exactness differ with and without VNNI).
 */
export function machineLine(): string {
  const flags = cpuFlags();
  const simd = flags ? ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"].filter((f) => flags.has(f)).join(" ") || "no avx2" : "SIMD features unknown";
  return `${os.cpus().length} × ${os.cpus()[0]?.model} (${simd}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`;
}

/** xorshift32 uniform values in [-scale, scale). */
function randomF32(n: number, seed: number, scale = 0.02): Uint8Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return new Uint8Array(out.buffer);
}

function ones(n: number): Uint8Array {
  return new Uint8Array(new Float32Array(n).fill(1).buffer);
}

type T = { name: string; dtype: "F32"; shape: number[]; data: Uint8Array };

function tensor(name: string, shape: number[], seed: number, norm = false): T {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, dtype: "F32", shape, data: norm ? ones(n) : randomF32(n, seed) };
}

/** A fixture tokenizer whose vocabulary is padded with filler entries to `size` ids. */
function paddedTokenizer(fixture: string, size: number): object {
  const tok = JSON.parse(fs.readFileSync(path.join(FIXTURES, fixture, "model", "tokenizer.json"), "utf8"));
  const vocab = tok.model.vocab as Record<string, number>;
  const keep = (tok.added_tokens as { id: number }[]).filter((t) => t.id < Object.keys(vocab).length);
  tok.added_tokens = keep;
  for (let id = Object.keys(vocab).length; id < size; id++) vocab[`filler${id}`] = id;
  return tok;
}

function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2));
}

export function modernBertBase(): string {
  const dir = path.join(CACHE, "GTE-ModernColBERT-shaped");
  if (fs.existsSync(path.join(dir, "1_Dense", "model.safetensors"))) return dir;
  const H = 768, I = 1152, L = 22, V = 50368;
  const config = {
    architectures: ["ModernBertModel"], model_type: "modernbert", hidden_size: H, intermediate_size: I,
    num_attention_heads: 12, num_hidden_layers: L, vocab_size: V, local_attention: 128, global_attn_every_n_layers: 3,
    global_rope_theta: 160000.0, local_rope_theta: 10000.0, norm_eps: 1e-5, norm_bias: false, attention_bias: false,
    mlp_bias: false, hidden_activation: "gelu", max_position_embeddings: 8192, pad_token_id: 5, bos_token_id: 3,
    eos_token_id: 4, cls_token_id: 3, sep_token_id: 4,
  };
  const tensors: T[] = [tensor("embeddings.tok_embeddings.weight", [V, H], 1), tensor("embeddings.norm.weight", [H], 0, true)];
  for (let i = 0; i < L; i++) {
    if (i > 0) tensors.push(tensor(`layers.${i}.attn_norm.weight`, [H], 0, true));
    tensors.push(tensor(`layers.${i}.attn.Wqkv.weight`, [3 * H, H], 10 + i));
    tensors.push(tensor(`layers.${i}.attn.Wo.weight`, [H, H], 100 + i));
    tensors.push(tensor(`layers.${i}.mlp_norm.weight`, [H], 0, true));
    tensors.push(tensor(`layers.${i}.mlp.Wi.weight`, [2 * I, H], 200 + i));
    tensors.push(tensor(`layers.${i}.mlp.Wo.weight`, [H, I], 300 + i));
  }
  tensors.push(tensor("final_norm.weight", [H], 0, true));
  fs.mkdirSync(path.join(dir, "1_Dense"), { recursive: true });
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  writeSafetensors(path.join(dir, "1_Dense", "model.safetensors"), [tensor("linear.weight", [128, H], 999)]);
  writeJson(path.join(dir, "config.json"), config);
  const src = path.join(FIXTURES, "modernbert-tiny-colbert", "model");
  for (const f of ["modules.json", "config_sentence_transformers.json", "sentence_bert_config.json", "tokenizer_config.json"]) {
    fs.copyFileSync(path.join(src, f), path.join(dir, f));
  }
  writeJson(path.join(dir, "1_Dense", "config.json"), { in_features: H, out_features: 128, bias: false, activation_function: "torch.nn.modules.linear.Identity", use_residual: false });
  // 50366 ids + the two prefix tokens PyLate adds = 50368 embedding rows, as in the real model.
  writeJson(path.join(dir, "tokenizer.json"), paddedTokenizer("modernbert-tiny-colbert", V - 2));
  return dir;
}

export function bertBase(): string {
  return bertShaped(path.join(CACHE, "colbertv2.0-shaped"), { hidden: 768, intermediate: 3072, layers: 12, vocab: 30522 });
}

/** A Stanford HF_ColBERT (BERT) checkpoint of the given size, random weights (also used by tests that need a slow export). */
export function bertShaped(dir: string, dims: { hidden: number; intermediate: number; layers: number; vocab: number }): string {
  if (fs.existsSync(path.join(dir, "model.safetensors"))) return dir;
  const { hidden: H, intermediate: I, layers: L, vocab: V } = dims;
  const config = {
    architectures: ["HF_ColBERT"], model_type: "bert", hidden_size: H, intermediate_size: I, num_attention_heads: H / 64,
    num_hidden_layers: L, vocab_size: V, max_position_embeddings: 512, type_vocab_size: 2, hidden_act: "gelu",
    layer_norm_eps: 1e-12, pad_token_id: 0,
  };
  const p = "bert.";
  const tensors: T[] = [
    tensor(`${p}embeddings.word_embeddings.weight`, [V, H], 1),
    tensor(`${p}embeddings.position_embeddings.weight`, [512, H], 2),
    tensor(`${p}embeddings.token_type_embeddings.weight`, [2, H], 3),
    tensor(`${p}embeddings.LayerNorm.weight`, [H], 0, true),
    tensor(`${p}embeddings.LayerNorm.bias`, [H], 4),
  ];
  for (let i = 0; i < L; i++) {
    const l = `${p}encoder.layer.${i}.`;
    for (const m of ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]) {
      tensors.push(tensor(`${l}${m}.weight`, [H, H], 10 + i), tensor(`${l}${m}.bias`, [H], 20 + i));
    }
    tensors.push(tensor(`${l}attention.output.LayerNorm.weight`, [H], 0, true), tensor(`${l}attention.output.LayerNorm.bias`, [H], 30 + i));
    tensors.push(tensor(`${l}intermediate.dense.weight`, [I, H], 40 + i), tensor(`${l}intermediate.dense.bias`, [I], 50 + i));
    tensors.push(tensor(`${l}output.dense.weight`, [H, I], 60 + i), tensor(`${l}output.dense.bias`, [H], 70 + i));
    tensors.push(tensor(`${l}output.LayerNorm.weight`, [H], 0, true), tensor(`${l}output.LayerNorm.bias`, [H], 80 + i));
  }
  tensors.push(tensor("linear.weight", [128, H], 999));
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  writeJson(path.join(dir, "config.json"), config);
  const src = path.join(FIXTURES, "stanford-colbert-tiny", "model");
  for (const f of ["tokenizer_config.json", "artifact.metadata"]) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  writeJson(path.join(dir, "tokenizer.json"), paddedTokenizer("stanford-colbert-tiny", V));
  return dir;
}
