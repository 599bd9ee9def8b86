/**
 * In-memory description of an ONNX model whose tensor payloads are produced lazily, one at a
 * time, while the file is written (see writer.ts). Only what this project needs of onnx.proto.
 */

/** TensorProto.DataType values. */
export enum DataType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
  FLOAT16 = 10,
}

export function dataTypeSize(t: DataType): number {
  switch (t) {
    case DataType.FLOAT:
    case DataType.INT32:
      return 4;
    case DataType.INT64:
      return 8;
    case DataType.FLOAT16:
      return 2;
    case DataType.UINT8:
    case DataType.INT8:
    case DataType.BOOL:
      return 1;
  }
}

/** A dimension: a fixed size or a symbolic name such as "batch". */
export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: DataType;
  /** undefined: shape not stated (e.g. a loop-carried value whose length grows). */
  shape?: Dim[];
}

/** Typed tensor payload (little-endian, row-major). */
export type TensorBytes = Float32Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array;

export interface TensorDef {
  name: string;
  dataType: DataType;
  dims: number[];
  /** Bytes the payload has; must equal product(dims) * element size. */
  byteLength: number;
  /** Produces the payload when the writer reaches this tensor (called once). */
  data: () => TensorBytes;
  /** Where the payload's bytes already lie on disk, little-endian as ONNX stores them (set by the reader). */
  stored?: { file: string; offset: number };
}

export type Attribute =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "string"; value: string }
  | { kind: "ints"; value: number[] }
  | { kind: "floats"; value: number[] }
  | { kind: "tensor"; value: TensorDef }
  | { kind: "graph"; value: GraphDef };

/**
 * A subgraph (the body of Loop, Scan, If). It may read any value of the graphs around it, their
 * initializers included: weights stay in the main graph.
 */
export interface GraphDef {
  name: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  nodes: NodeDef[];
  /** Constants of its own (other tools write them; ours keeps every tensor in the main graph). */
  initializers?: TensorDef[];
}

export interface NodeDef {
  name: string;
  opType: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, Attribute>;
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export interface ModelDef {
  irVersion: number;
  opsetImports: OpsetImport[];
  producerName: string;
  producerVersion: string;
  graphName: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  nodes: NodeDef[];
  initializers: TensorDef[];
  /** Written as ModelProto.metadata_props. */
  metadata?: Record<string, string>;
}

/** Every node of `nodes` and, depth first, of the subgraphs their attributes hold. */
export function* allNodes(nodes: NodeDef[]): Generator<NodeDef> {
  for (const n of nodes) {
    yield n;
    for (const a of Object.values(n.attributes)) if (a.kind === "graph") yield* allNodes(a.value.nodes);
  }
}

/** A tensor whose payload is already in memory. */
export function tensorFromArray(name: string, dataType: DataType, dims: number[], data: TensorBytes): TensorDef {
  const expected = dims.reduce((a, b) => a * b, 1) * dataTypeSize(dataType);
  if (data.byteLength !== expected) {
    throw new Error(`tensor ${name}: ${data.byteLength} bytes for dims [${dims}] (expected ${expected})`);
  }
  return { name, dataType, dims, byteLength: expected, data: () => data };
}
