/**
 * Sensitive fixtures (test/fixtures-derived/sensitive.py: attention and feed-forward weights scaled
 * so activations are O(1)) with mutation controls: our export matches PyTorch within 2e-6, and an
 * export that gets one detail wrong (GELU flavour, LayerNorm eps, each RoPE theta, the sliding
 * window, a Dense activation, bias or residual) misses by at least 10x that. A parity test can
 * therefore only pass if each of those details is right.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { exportModel } from "../src/export/exporter.js";
import { openSafetensors, writeSafetensors } from "../src/checkpoint/safetensors.js";
import { silentLogger } from "../src/util/log.js";
import { FP32_TOLERANCE, runModel, tempDir, type Expected } from "./helpers/fixtures.js";

const DERIVED = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures-derived");
const TOLERANCE = FP32_TOLERANCE;
const REPORT = JSON.parse(fs.readFileSync(path.join(DERIVED, "sensitive-mutations.json"), "utf8")) as {
  cases: Record<string, { mutations: { what: string; config: Record<string, unknown>; pytorch_moves_by: number }[] }>;
};

/** max |ours − PyTorch| over every row of the case's raw batch (padding rows included). */
async function diffOf(modelDir: string, expectedFile: string): Promise<number> {
  const exp = JSON.parse(fs.readFileSync(expectedFile, "utf8")) as Pick<Expected, "raw_batch">;
  const r = await exportModel({ model: modelDir, outputDir: tempDir(), quantize: false, logger: silentLogger });
  const out = await runModel(path.join(r.dir, "model.onnx"), exp.raw_batch, r.onnxConfig.uses_token_type_ids);
  let max = 0;
  exp.raw_batch.output.forEach((seq, b) => seq.forEach((row, s) => row.forEach((v, d) => (max = Math.max(max, Math.abs(v - out[b]![s]![d]!))))));
  return max;
}

/** A private copy of a derived checkpoint with `edit` applied. */
function mutant(name: string, edit: (dir: string) => void): string {
  const dir = path.join(tempDir(), name);
  fs.cpSync(path.join(DERIVED, name, "model"), dir, { recursive: true });
  edit(dir);
  return dir;
}

function editJson(file: string, patch: Record<string, unknown>): void {
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), ...patch }));
}

for (const [name, c] of Object.entries(REPORT.cases)) {
  test(`${name}: matches PyTorch within ${TOLERANCE}; each wrong detail misses by ≥ ${10 * TOLERANCE}`, async () => {
    const expectedFile = path.join(DERIVED, name, "expected.json");
    const right = await diffOf(path.join(DERIVED, name, "model"), expectedFile);
    assert.ok(right <= TOLERANCE, `max |diff| ${right}`);
    for (const m of c.mutations) {
      const wrong = await diffOf(mutant(name, (d) => editJson(path.join(d, "config.json"), m.config)), expectedFile);
      assert.ok(wrong >= 10 * TOLERANCE, `${m.what}: the wrong variant is only ${wrong} away`);
    }
  });
}

test(`bert-three-dense: a Dense layer's activation, bias or residual done wrong misses by ≥ ${10 * TOLERANCE}`, async () => {
  const name = "bert-three-dense";
  const expectedFile = path.join(DERIVED, name, "expected.json");
  assert.ok((await diffOf(path.join(DERIVED, name, "model"), expectedFile)) <= TOLERANCE);
  const mutations: [string, (dir: string) => void][] = [
    ["Tanh read as Identity", (d) => editJson(path.join(d, "2_Dense", "config.json"), { activation_function: "torch.nn.modules.linear.Identity" })],
    ["ReLU read as GELU", (d) => editJson(path.join(d, "3_Dense", "config.json"), { activation_function: "torch.nn.modules.activation.GELU" })],
    ["residual projection dropped", (d) => editJson(path.join(d, "2_Dense", "config.json"), { use_residual: false })],
    ["identity residual dropped", (d) => editJson(path.join(d, "3_Dense", "config.json"), { use_residual: false })],
    [
      "bias dropped",
      (d) => {
        const file = path.join(d, "2_Dense", "model.safetensors");
        const store = openSafetensors(file);
        const tensors = store
          .names()
          .filter((n) => n !== "linear.bias")
          .map((n) => ({ name: n, dtype: "F32" as const, shape: store.info(n).shape, data: new Uint8Array(store.readF32(n).buffer) }));
        store.close();
        writeSafetensors(file, tensors);
      },
    ],
  ];
  for (const [what, edit] of mutations) {
    const wrong = await diffOf(mutant(name, edit), expectedFile);
    assert.ok(wrong >= 10 * TOLERANCE, `${what}: the wrong variant is only ${wrong} away`);
  }
});
