/**
 * Streaming ONNX writer. The graph structure is encoded in memory (it is small); tensor payloads
 * are produced one at a time by their `data()` callbacks and written straight to disk, so peak
 * memory is about one tensor. Models whose protobuf would pass the 2 GB limit get their large
 * tensors in an external data file beside the model (ONNX external data).
 */
import fs from "node:fs";
import path from "node:path";
import { ProtoWriter, varintSize } from "./proto.js";
import type { Attribute, GraphDef, ModelDef, NodeDef, TensorDef, ValueInfo } from "./model.js";
import { removeOnInterrupt } from "../util/cleanup.js";
import { tempPathFor } from "../util/fs.js";

/** Protobuf's hard limit is 2 GiB; stay clearly below it. */
const PROTOBUF_LIMIT = 2_000_000_000;
/** Tensors at least this big go to the external data file when one is used. */
const EXTERNAL_MIN_BYTES = 1024;
/** External data offsets are aligned so runtimes can memory-map them. */
const EXTERNAL_ALIGN = 4096;

export interface WriteOptions {
  /** "auto" (default): external data only when needed; "always"; "never". */
  externalData?: "auto" | "always" | "never";
  /**
   * Tensors whose bytes already lie on disk (`TensorDef.stored`, e.g. read from another model in
   * the same folder) become external-data references to those bytes instead of being copied.
   */
  referenceStored?: boolean;
  /** Called after each tensor payload is written. */
  onTensor?: (done: number, total: number, bytes: number) => void;
}

export interface WriteResult {
  /** Files written (model first), absolute paths. */
  files: string[];
  bytes: number;
}

function encodeValueInfo(v: ValueInfo): ProtoWriter {
  const tensorType = new ProtoWriter().varint(1, v.elemType);
  if (v.shape) {
    const shape = new ProtoWriter();
    for (const d of v.shape) {
      const dim = new ProtoWriter();
      if (typeof d === "number") dim.varint(1, d);
      else dim.string(2, d);
      shape.message(1, dim);
    }
    tensorType.message(2, shape);
  }
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, v.name).message(2, type);
}

/** TensorProto fields other than the payload. */
function encodeTensorHeader(t: TensorDef): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, t.dataType);
  w.string(8, t.name);
  return w;
}

function payloadBytes(t: TensorDef): Uint8Array {
  const data = t.data();
  if (data.byteLength !== t.byteLength) {
    throw new Error(`tensor ${t.name}: produced ${data.byteLength} bytes, declared ${t.byteLength}`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A small tensor fully encoded in memory (attributes). */
function encodeTensorInline(t: TensorDef): ProtoWriter {
  return encodeTensorHeader(t).bytes(9, payloadBytes(t));
}

function encodeAttribute(name: string, a: Attribute): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  switch (a.kind) {
    case "float":
      return w.float(2, a.value).varint(20, 1);
    case "int":
      return w.varint(3, a.value).varint(20, 2);
    case "string":
      return w.string(4, a.value).varint(20, 3);
    case "tensor":
      return w.message(5, encodeTensorInline(a.value)).varint(20, 4);
    case "floats":
      for (const v of a.value) w.float(7, v);
      return w.varint(20, 6);
    case "ints":
      for (const v of a.value) w.varint(8, v);
      return w.varint(20, 7);
    case "graph":
      return w.message(6, encodeSubgraph(a.value)).varint(20, 5);
  }
}

/** GraphProto of a subgraph; its own constants, if any, inline (our weights live in the main graph). */
function encodeSubgraph(g: GraphDef): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, encodeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers ?? []) w.message(5, encodeTensorInline(t));
  for (const i of g.inputs) w.message(11, encodeValueInfo(i));
  for (const o of g.outputs) w.message(12, encodeValueInfo(o));
  return w;
}

function encodeNode(n: NodeDef): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, a] of Object.entries(n.attributes)) w.message(5, encodeAttribute(k, a));
  if (n.domain) w.string(7, n.domain);
  return w;
}

/** ModelProto fields other than the graph: versions, producer, opsets, metadata. */
function encodeModelFields(model: ModelDef): ProtoWriter {
  const m = new ProtoWriter();
  m.varint(1, model.irVersion);
  m.string(2, model.producerName);
  m.string(3, model.producerVersion);
  for (const o of model.opsetImports) {
    const op = new ProtoWriter();
    if (o.domain) op.string(1, o.domain);
    op.varint(2, o.version);
    m.message(8, op);
  }
  for (const [k, v] of Object.entries(model.metadata ?? {})) m.message(14, new ProtoWriter().string(1, k).string(2, v));
  return m;
}

class FileSink {
  readonly fd: number;
  written = 0;
  constructor(readonly file: string) {
    this.fd = fs.openSync(file, "w");
  }
  write(data: Uint8Array): void {
    let off = 0;
    while (off < data.length) off += fs.writeSync(this.fd, data, off, data.length - off);
    this.written += data.length;
  }
  pad(to: number): void {
    if (this.written < to) this.write(new Uint8Array(to - this.written));
  }
  close(): void {
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
  }
}

/**
 * Writes `model` to `file` (and `file + ".data"` when external data is used), atomically: both
 * files are written under temp names and renamed at the end (data file first).
 */
export function writeModel(file: string, model: ModelDef, opts: WriteOptions = {}): WriteResult {
  const dataFileName = path.basename(file) + ".data";
  const referenced = (t: TensorDef) => (opts.referenceStored && t.byteLength >= EXTERNAL_MIN_BYTES ? t.stored : undefined);
  const inlineSize = model.initializers.reduce((s, t) => s + (referenced(t) ? 0 : t.byteLength), 0);
  const mode = opts.externalData ?? "auto";
  const external = mode === "always" || (mode === "auto" && inlineSize > PROTOBUF_LIMIT);

  // Graph fields other than initializers, encoded up front.
  const graphHead = new ProtoWriter();
  for (const n of model.nodes) graphHead.message(1, encodeNode(n));
  graphHead.string(2, model.graphName);
  for (const i of model.inputs) graphHead.message(11, encodeValueInfo(i));
  for (const o of model.outputs) graphHead.message(12, encodeValueInfo(o));
  const headBytes = graphHead.finish();

  // Per-initializer TensorProto header, and where the payload goes.
  interface Planned {
    t: TensorDef;
    header: Uint8Array;
    /** inline raw_data, our external data file, or a reference to bytes already on disk */
    payload: "inline" | "data-file" | "referenced";
    offset: number;
    messageLength: number;
  }
  const planned: Planned[] = [];
  const externalHeader = (t: TensorDef, location: string, offset: number) => {
    const entry = (k: string, v: string) => new ProtoWriter().string(1, k).string(2, v);
    const header = encodeTensorHeader(t);
    header.message(13, entry("location", location));
    header.message(13, entry("offset", String(offset)));
    header.message(13, entry("length", String(t.byteLength)));
    return header.varint(14, 1).finish();
  };
  let dataOffset = 0;
  for (const t of model.initializers) {
    const stored = referenced(t);
    if (stored) {
      const location = path.relative(path.dirname(file), stored.file);
      if (location.startsWith("..") || path.isAbsolute(location)) throw new Error(`tensor ${t.name}: ${stored.file} is outside the folder of ${file}`);
      const header = externalHeader(t, location.split(path.sep).join("/"), stored.offset);
      planned.push({ t, header, payload: "referenced", offset: stored.offset, messageLength: header.length });
    } else if (!external || t.byteLength < EXTERNAL_MIN_BYTES) {
      const header = encodeTensorHeader(t);
      const messageLength = header.length + 1 + varintSize(t.byteLength) + t.byteLength;
      planned.push({ t, header: header.finish(), payload: "inline", offset: 0, messageLength });
    } else {
      const offset = Math.ceil(dataOffset / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
      dataOffset = offset + t.byteLength;
      const header = externalHeader(t, dataFileName, offset);
      planned.push({ t, header, payload: "data-file", offset, messageLength: header.length });
    }
  }
  const graphLength =
    headBytes.length + planned.reduce((s, p) => s + 1 + varintSize(p.messageLength) + p.messageLength, 0);

  const modelHead = encodeModelFields(model);
  modelHead.lengthDelimitedHeader(7, graphLength);

  const tmpModel = tempPathFor(file);
  const dataFile = path.join(path.dirname(file), dataFileName);
  const tmpData = tempPathFor(dataFile);
  const releases = [removeOnInterrupt(tmpModel), removeOnInterrupt(tmpData)];
  const sink = new FileSink(tmpModel);
  const dataSink = external ? new FileSink(tmpData) : undefined;
  try {
    sink.write(modelHead.finish());
    sink.write(headBytes);
    planned.forEach((p, i) => {
      const tagAndLen = new ProtoWriter().lengthDelimitedHeader(5, p.messageLength).finish();
      sink.write(tagAndLen);
      sink.write(p.header);
      if (p.payload === "inline") {
        sink.write(new ProtoWriter().lengthDelimitedHeader(9, p.t.byteLength).finish());
        sink.write(payloadBytes(p.t));
      } else if (p.payload === "data-file") {
        dataSink!.pad(p.offset);
        dataSink!.write(payloadBytes(p.t));
      }
      opts.onTensor?.(i + 1, planned.length, p.t.byteLength);
    });
    const expected = modelHead.length + graphLength;
    if (sink.written !== expected) throw new Error(`ONNX writer size mismatch: ${sink.written} != ${expected}`);
    sink.close();
    dataSink?.close();
    if (dataSink) fs.renameSync(tmpData, dataFile);
    else fs.rmSync(dataFile, { force: true }); // a stale data file from an earlier export
    fs.renameSync(tmpModel, file);
  } catch (e) {
    try {
      fs.closeSync(sink.fd);
    } catch {
      /* already closed */
    }
    if (dataSink) {
      try {
        fs.closeSync(dataSink.fd);
      } catch {
        /* already closed */
      }
    }
    fs.rmSync(tmpModel, { force: true });
    fs.rmSync(tmpData, { force: true });
    throw e;
  } finally {
    releases.forEach((release) => release());
  }
  const files = external ? [file, dataFile] : [file];
  return { files, bytes: sink.written + (dataSink?.written ?? 0) };
}

/**
 * A whole model encoded in memory, initializers inline — for the small compute graphs the index
 * builds at run time (no weights; onnxruntime takes the bytes directly).
 */
export function encodeModel(model: ModelDef): Uint8Array {
  const graph = new ProtoWriter();
  for (const n of model.nodes) graph.message(1, encodeNode(n));
  graph.string(2, model.graphName);
  for (const t of model.initializers) graph.message(5, encodeTensorInline(t));
  for (const i of model.inputs) graph.message(11, encodeValueInfo(i));
  for (const o of model.outputs) graph.message(12, encodeValueInfo(o));
  return encodeModelFields(model).message(7, graph).finish();
}
