/**
 * A small vocabulary for building ONNX graphs: values are tensor names, every op call appends one
 * node and returns its output name. Backbones are written against this (and nn.ts), so they read
 * like the PyTorch forward they mirror.
 */
import { DataType, tensorFromArray, type Attribute, type Dim, type GraphDef, type ModelDef, type NodeDef, type TensorDef, type ValueInfo } from "./model.js";

export type Value = string;

export const OPSET = 17;
export const IR_VERSION = 8;

export class GraphBuilder {
  readonly nodes: NodeDef[] = [];
  readonly initializers: TensorDef[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private readonly used = new Set<string>();
  private readonly constants = new Map<string, Value>();
  private scopes: string[] = [];
  /** Where new nodes go: the main graph, or the subgraph being built. */
  private target: NodeDef[] = this.nodes;

  /** Runs `fn` with node names prefixed by `name` (e.g. "layer.3/attn"). */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** Marks names an existing graph already uses, so that new ones never collide with them. */
  reserve(names: Iterable<string>): void {
    for (const n of names) this.used.add(n);
  }

  /** Appends nodes built elsewhere (their value names reserved beforehand) where new nodes go. */
  append(nodes: NodeDef[]): void {
    this.target.push(...nodes);
  }

  /** A name no value of the model has yet (for subgraph inputs). */
  unique(base: string): string {
    const prefix = this.scopes.length > 0 ? this.scopes.join("/") + "/" : "";
    let name = prefix + base;
    for (let i = 1; this.used.has(name); i++) name = `${prefix}${base}_${i}`;
    this.used.add(name);
    return name;
  }

  input(name: string, elemType: DataType, shape: Dim[]): Value {
    this.used.add(name);
    this.inputs.push({ name, elemType, shape });
    return name;
  }

  /** Declares `value` as a graph output called `name`. */
  output(value: Value, name: string, elemType: DataType, shape: Dim[]): void {
    if (value !== name) {
      this.used.add(name);
      this.target.push({ name: this.unique("output"), opType: "Identity", inputs: [value], outputs: [name], attributes: {} });
    }
    this.outputs.push({ name, elemType, shape });
  }

  /** Adds an initializer (its payload is produced lazily when the model is written). */
  initializer(t: TensorDef): Value {
    if (this.used.has(t.name)) throw new Error(`duplicate tensor name ${t.name}`);
    this.used.add(t.name);
    this.initializers.push(t);
    return t.name;
  }

  /** Appends a node with several outputs. */
  opN(opType: string, inputs: Value[], outputs: number, attributes: Record<string, Attribute> = {}): Value[] {
    const name = this.unique(opType);
    const outs = Array.from({ length: outputs }, (_, i) => (outputs === 1 ? name : `${name}:${i}`));
    outs.forEach((o) => this.used.add(o));
    this.target.push({ name, opType, inputs, outputs: outs, attributes });
    return outs;
  }

  /**
   * Builds a subgraph (the body of a Loop or Scan): the nodes appended while `build` runs go to it.
   * Constants and weights stay in the main graph, which the body reads by name; names stay unique
   * across both, as ONNX requires. `build` returns the body's outputs.
   */
  subgraph(name: string, inputs: ValueInfo[], build: () => ValueInfo[]): GraphDef {
    const outer = this.target;
    const nodes: NodeDef[] = [];
    this.target = nodes;
    try {
      const outputs = build();
      return { name, inputs, outputs, nodes };
    } finally {
      this.target = outer;
    }
  }

  op(opType: string, inputs: Value[], attributes: Record<string, Attribute> = {}): Value {
    return this.opN(opType, inputs, 1, attributes)[0]!;
  }

  /** A float32 constant; small constants are deduplicated by value. */
  constF32(values: number[] | Float32Array, dims: number[] = [values.length]): Value {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    return this.constant(DataType.FLOAT, dims, data, "f");
  }

  scalarF32(v: number): Value {
    return this.constF32([v], []);
  }

  constI64(values: number[], dims: number[] = [values.length]): Value {
    return this.constant(DataType.INT64, dims, BigInt64Array.from(values.map(BigInt)), "i");
  }

  scalarI64(v: number): Value {
    return this.constI64([v], []);
  }

  scalarBool(v: boolean): Value {
    return this.constant(DataType.BOOL, [], Uint8Array.of(v ? 1 : 0), "b");
  }

  private constant(type: DataType, dims: number[], data: Float32Array | BigInt64Array | Uint8Array, tag: string): Value {
    const key = data.length <= 16 ? `${tag}[${dims}]${Array.from(data as ArrayLike<number | bigint>).join(",")}` : undefined;
    const known = key && this.constants.get(key);
    if (known) return known;
    const name = this.unique("const");
    this.initializers.push(tensorFromArray(name, type, dims, data));
    if (key) this.constants.set(key, name);
    return name;
  }

  // --- element-wise and shape ops -------------------------------------------------------------
  add(a: Value, b: Value): Value {
    return this.op("Add", [a, b]);
  }
  sub(a: Value, b: Value): Value {
    return this.op("Sub", [a, b]);
  }
  mul(a: Value, b: Value): Value {
    return this.op("Mul", [a, b]);
  }
  div(a: Value, b: Value): Value {
    return this.op("Div", [a, b]);
  }
  matmul(a: Value, b: Value): Value {
    return this.op("MatMul", [a, b]);
  }
  cast(x: Value, to: DataType): Value {
    return this.op("Cast", [x], { to: { kind: "int", value: to } });
  }
  reshape(x: Value, shape: number[]): Value {
    return this.op("Reshape", [x, this.constI64(shape)]);
  }
  transpose(x: Value, perm: number[]): Value {
    return this.op("Transpose", [x], { perm: { kind: "ints", value: perm } });
  }
  unsqueeze(x: Value, axes: number[]): Value {
    return this.op("Unsqueeze", [x, this.constI64(axes)]);
  }
  gather(data: Value, indices: Value, axis = 0): Value {
    return this.op("Gather", [data, indices], { axis: { kind: "int", value: axis } });
  }
  softmax(x: Value, axis = -1): Value {
    return this.op("Softmax", [x], { axis: { kind: "int", value: axis } });
  }
  /** Splits the last axis into `parts` equal chunks (torch.chunk). */
  chunk(x: Value, parts: number, axis = -1): Value[] {
    return this.opN("Split", [x], parts, { axis: { kind: "int", value: axis } });
  }
  where(cond: Value, a: Value, b: Value): Value {
    return this.op("Where", [cond, a, b]);
  }
  /** Dimension `axis` of `x` as a 1-element int64 tensor. */
  dim(x: Value, axis: number): Value {
    const shape = this.op("Shape", [x]);
    return this.gather(shape, this.constI64([axis]), 0);
  }

  toModel(graphName: string, producerVersion: string, metadata?: Record<string, string>): ModelDef {
    return {
      irVersion: IR_VERSION,
      opsetImports: [{ domain: "", version: OPSET }],
      producerName: "pylate-onnx-export",
      producerVersion,
      graphName,
      inputs: this.inputs,
      outputs: this.outputs,
      nodes: this.nodes,
      initializers: this.initializers,
      metadata,
    };
  }
}
