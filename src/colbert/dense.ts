/**
 * PyLate's projection head: the Dense modules listed in modules.json (PyLate's or
 * sentence-transformers' Dense), or a Stanford checkpoint's `linear.weight`.
 * Dense(x) = activation(linear(x)) (+ residual(x) or x when use_residual).
 */
import fs from "node:fs";
import path from "node:path";
import type { WeightStore } from "../checkpoint/types.js";
import { openCheckpointWeights } from "../checkpoint/index.js";
import { Weights } from "../backbones/weights.js";
import { activation, linear } from "../backbones/nn.js";
import type { GraphBuilder, Value } from "../onnx/graph.js";
import { UserError } from "../errors.js";

export interface DenseLayer {
  /** Where it came from, for messages (e.g. "1_Dense"). */
  source: string;
  inFeatures: number;
  outFeatures: number;
  /** transformers ACT2FN-style name ("identity", "tanh", …). */
  activation: string;
  useResidual: boolean;
  /** Tensors: "linear.weight", optional "linear.bias", optional "residual.weight". */
  weights: Weights;
  store?: WeightStore;
}

/** torch activation classes a Dense may name, mapped to graph activations. */
const TORCH_ACTIVATIONS: Record<string, string> = {
  Identity: "identity",
  Tanh: "tanh",
  ReLU: "relu",
  GELU: "gelu",
  Sigmoid: "sigmoid",
  SiLU: "silu",
};

function activationName(dotted: string | undefined, source: string): string {
  if (dotted === undefined) return "tanh"; // sentence-transformers' Dense default
  const cls = dotted.split(".").pop()!;
  const act = TORCH_ACTIVATIONS[cls];
  if (!act) throw new UserError(`${source}: unsupported activation_function "${dotted}"; supported: ${Object.keys(TORCH_ACTIVATIONS).join(", ")}`);
  return act;
}

export async function readDenseModule(dir: string, source: string): Promise<DenseLayer> {
  const configFile = path.join(dir, "config.json");
  if (!fs.existsSync(configFile)) throw new UserError(`Dense module ${source} has no config.json; the checkpoint is incomplete (re-download it)`);
  const c = JSON.parse(fs.readFileSync(configFile, "utf8")) as Record<string, unknown>;
  const store = await openCheckpointWeights(dir);
  const weights = new Weights(store, "", `Dense module ${source}`, `${source}.`);
  const layer: DenseLayer = {
    source,
    inFeatures: Number(c["in_features"]),
    outFeatures: Number(c["out_features"]),
    activation: activationName(c["activation_function"] as string | undefined, source),
    useResidual: c["use_residual"] === true,
    weights,
    store,
  };
  weights.expectShape("linear.weight", [layer.outFeatures, layer.inFeatures]);
  if (layer.useResidual && layer.inFeatures !== layer.outFeatures) weights.expectShape("residual.weight", [layer.outFeatures, layer.inFeatures]);
  return layer;
}

/** Applies the Dense stack to [batch, seq, hidden]. */
export function buildHead(g: GraphBuilder, x: Value, layers: DenseLayer[], warn: (m: string) => void): Value {
  layers.forEach((d, i) => {
    x = g.scope(`dense.${i}`, () => {
      const ctx = { g, w: d.weights, warn };
      let y = activation(g, linear(ctx, x, "linear"), d.activation);
      if (d.useResidual) y = g.add(y, d.inFeatures === d.outFeatures ? x : linear(ctx, x, "residual"));
      return y;
    });
  });
  return x;
}
