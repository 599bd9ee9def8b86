/**
 * ONNX reader: decodes a model file into a ModelDef whose tensor payloads stay on disk and are
 * read back, one at a time, when needed (the quantizer streams a model through this and the
 * writer). Initializers may be raw_data, typed repeated fields, or external data files.
 */
import fs from "node:fs";
import path from "node:path";
import { DataType, dataTypeSize, type Attribute, type Dim, type GraphDef, type ModelDef, type NodeDef, type OpsetImport, type TensorDef, type ValueInfo } from "./model.js";
import { UserError } from "../errors.js";

/** Random-access byte source over an open file, buffered for the many small reads. */
class FileBytes {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  constructor(
    readonly fd: number,
    readonly size: number,
    readonly file: string,
  ) {}

  read(position: number, length: number): Buffer {
    if (position < 0 || position + length > this.size) throw corrupt(this.file, "a field runs past the end of the file");
    if (position >= this.bufStart && position + length <= this.bufStart + this.buf.length) {
      return this.buf.subarray(position - this.bufStart, position - this.bufStart + length);
    }
    const want = Math.max(length, 1 << 20);
    const n = Math.min(want, this.size - position);
    const b = Buffer.alloc(n);
    fs.readSync(this.fd, b, 0, n, position);
    this.buf = b;
    this.bufStart = position;
    return b.subarray(0, length);
  }
}

function corrupt(file: string, why: string): UserError {
  return new UserError(`Not a valid ONNX model: ${file} (${why}); pass a model.onnx written by pylate-onnx-export or another ONNX exporter`);
}

/** A protobuf message region [start, end) of the file. */
class Message {
  constructor(
    private readonly src: FileBytes,
    private pos: number,
    readonly end: number,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.src.read(this.pos++, 1)[0]!;
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return result;
      shift += 7n;
    }
    throw corrupt(this.src.file, "bad varint");
  }

  /** Iterates fields: (field number, wire type, reader of the value). */
  *fields(): Generator<Field> {
    while (this.pos < this.end) {
      const key = Number(this.varint());
      const field = key >>> 3;
      const wire = key & 7;
      if (field === 0) throw corrupt(this.src.file, "field number 0");
      switch (wire) {
        case 0: {
          const v = this.varint();
          yield { field, wire, varint: v };
          break;
        }
        case 1: {
          const b = this.src.read(this.pos, 8);
          this.pos += 8;
          yield { field, wire, fixed: b };
          break;
        }
        case 5: {
          const b = this.src.read(this.pos, 4);
          this.pos += 4;
          yield { field, wire, fixed: b };
          break;
        }
        case 2: {
          const len = Number(this.varint());
          const start = this.pos;
          if (start + len > this.end) throw corrupt(this.src.file, "a field runs past its message");
          this.pos += len;
          yield { field, wire, start, len };
          break;
        }
        default:
          throw corrupt(this.src.file, `unsupported wire type ${wire}`);
      }
    }
    if (this.pos !== this.end) throw corrupt(this.src.file, "message overruns its length");
  }

  sub(f: Field): Message {
    return new Message(this.src, f.start!, f.start! + f.len!);
  }

  bytes(f: Field): Buffer {
    return this.src.read(f.start!, f.len!);
  }

  string(f: Field): string {
    return this.bytes(f).toString("utf8");
  }
}

interface Field {
  field: number;
  wire: number;
  varint?: bigint;
  fixed?: Buffer;
  start?: number;
  len?: number;
}

/** Signed int64 from a varint. */
const int64 = (v: bigint) => Number(BigInt.asIntN(64, v));

/** Packed or unpacked repeated varints. */
function varints(m: Message, f: Field, into: number[]): void {
  if (f.wire === 0) {
    into.push(int64(f.varint!));
    return;
  }
  const packed = m.sub(f);
  while (!packed.done) into.push(int64(packed.varint()));
}

function floats(m: Message, f: Field, into: number[]): void {
  if (f.wire === 5) into.push(f.fixed!.readFloatLE(0));
  else {
    const b = m.bytes(f);
    for (let i = 0; i + 4 <= b.length; i += 4) into.push(b.readFloatLE(i));
  }
}

function readTensor(m: Message, src: FileBytes, modelDir: string, externalFiles?: Map<string, number>): TensorDef {
  const dims: number[] = [];
  let dataType = 0;
  let name = "";
  let raw: Field | undefined;
  const floatData: number[] = [];
  const int64Data: number[] = [];
  const int32Data: number[] = [];
  const external: Record<string, string> = {};
  let location = 0;
  for (const f of m.fields()) {
    switch (f.field) {
      case 1: varints(m, f, dims); break;
      case 2: dataType = Number(f.varint); break;
      case 4: floats(m, f, floatData); break;
      case 5: varints(m, f, int32Data); break;
      case 7: varints(m, f, int64Data); break;
      case 8: name = m.string(f); break;
      case 9: raw = f; break;
      case 13: {
        let k = "";
        let v = "";
        const e = m.sub(f);
        for (const ef of e.fields()) {
          if (ef.field === 1) k = e.string(ef);
          if (ef.field === 2) v = e.string(ef);
        }
        external[k] = v;
        break;
      }
      case 14: location = Number(f.varint); break;
      default: break;
    }
  }
  if (!(dataType in DataType)) throw new UserError(`Tensor "${name}" has data type ${dataType}, which this tool does not handle`);
  const type = dataType as DataType;
  const count = dims.reduce((a, b) => a * b, 1);
  const byteLength = count * dataTypeSize(type);
  let data: () => Uint8Array;
  let stored: TensorDef["stored"];
  if (location === 1) {
    const loc = external["location"] ?? "";
    if (!loc || loc.includes("..") || path.isAbsolute(loc)) throw new UserError(`Refusing external data location "${loc}" of tensor "${name}": it points outside the model folder`);
    const file = path.join(modelDir, loc);
    const offset = Number(external["offset"] ?? 0);
    externalFiles?.set(file, Math.max(externalFiles.get(file) ?? 0, offset + byteLength));
    stored = { file, offset };
    data = () => {
      const out = new Uint8Array(new ArrayBuffer(byteLength));
      const fd = fs.openSync(file, "r");
      try {
        if (fs.readSync(fd, out, 0, byteLength, offset) !== byteLength) throw corrupt(file, `external data of "${name}" is truncated`);
      } finally {
        fs.closeSync(fd);
      }
      return out;
    };
  } else if (raw) {
    if (raw.len !== byteLength) throw corrupt(src.file, `tensor "${name}" has ${raw.len} bytes for dims [${dims}]`);
    const start = raw.start!;
    stored = { file: src.file, offset: start };
    data = () => {
      const out = new Uint8Array(new ArrayBuffer(byteLength));
      fs.readSync(src.fd, out, 0, byteLength, start);
      return out;
    };
  } else if (type === DataType.FLOAT) {
    data = () => new Uint8Array(Float32Array.from(floatData).buffer);
  } else if (type === DataType.INT64) {
    data = () => new Uint8Array(BigInt64Array.from(int64Data.map(BigInt)).buffer);
  } else if (type === DataType.INT32 || type === DataType.BOOL || type === DataType.INT8 || type === DataType.UINT8) {
    data = () => {
      const out = new Uint8Array(byteLength);
      const view = new DataView(out.buffer);
      int32Data.forEach((v, i) => (dataTypeSize(type) === 4 ? view.setInt32(i * 4, v, true) : view.setInt8(i, v)));
      return out;
    };
  } else {
    throw new UserError(`Tensor "${name}" stores its values in a field this tool does not read`);
  }
  return { name, dataType: type, dims, byteLength, data, ...(stored && { stored }) };
}

function readValueInfo(m: Message): ValueInfo {
  let name = "";
  let elemType = DataType.FLOAT;
  let shape: Dim[] | undefined;
  for (const f of m.fields()) {
    if (f.field === 1) name = m.string(f);
    if (f.field === 2) {
      const type = m.sub(f);
      for (const tf of type.fields()) {
        if (tf.field !== 1) continue;
        const tt = type.sub(tf);
        for (const ttf of tt.fields()) {
          if (ttf.field === 1) elemType = Number(ttf.varint) as DataType;
          if (ttf.field === 2) {
            shape = [];
            const sh = tt.sub(ttf);
            for (const df of sh.fields()) {
              if (df.field !== 1) continue;
              const dim = sh.sub(df);
              let d: Dim = "?";
              for (const x of dim.fields()) {
                if (x.field === 1) d = int64(x.varint!);
                if (x.field === 2) d = dim.string(x);
              }
              shape.push(d);
            }
          }
        }
      }
    }
  }
  return shape ? { name, elemType, shape } : { name, elemType };
}

function readAttribute(m: Message, src: FileBytes, modelDir: string): [string, Attribute] {
  let name = "";
  let type = 0;
  let f32 = 0;
  let i64 = 0;
  let s = "";
  let t: TensorDef | undefined;
  let g: GraphDef | undefined;
  const fl: number[] = [];
  const ints: number[] = [];
  for (const f of m.fields()) {
    switch (f.field) {
      case 1: name = m.string(f); break;
      case 2: f32 = f.fixed!.readFloatLE(0); break;
      case 3: i64 = int64(f.varint!); break;
      case 4: s = m.string(f); break;
      case 5: t = readTensor(m.sub(f), src, modelDir); break;
      case 6: g = readGraph(m.sub(f), src, modelDir); break;
      case 11: throw new UserError(`Attribute "${name}" holds a list of subgraphs, which this tool does not handle`);
      case 7: floats(m, f, fl); break;
      case 8: varints(m, f, ints); break;
      case 20: type = Number(f.varint); break;
      default: break;
    }
  }
  switch (type) {
    case 1: return [name, { kind: "float", value: f32 }];
    case 2: return [name, { kind: "int", value: i64 }];
    case 3: return [name, { kind: "string", value: s }];
    case 4: return [name, { kind: "tensor", value: t! }];
    case 6: return [name, { kind: "floats", value: fl }];
    case 7: return [name, { kind: "ints", value: ints }];
    case 5: return [name, { kind: "graph", value: g! }];
    default: throw new UserError(`Attribute "${name}" has a type (${type}) this tool does not handle`);
  }
}

/** The body of a Loop, Scan or If. */
function readGraph(m: Message, src: FileBytes, modelDir: string): GraphDef {
  const g: GraphDef = { name: "", inputs: [], outputs: [], nodes: [] };
  for (const f of m.fields()) {
    switch (f.field) {
      case 1: g.nodes.push(readNode(m.sub(f), src, modelDir)); break;
      case 2: g.name = m.string(f); break;
      case 5: (g.initializers ??= []).push(readTensor(m.sub(f), src, modelDir)); break;
      case 11: g.inputs.push(readValueInfo(m.sub(f))); break;
      case 12: g.outputs.push(readValueInfo(m.sub(f))); break;
      default: break;
    }
  }
  return g;
}

function readNode(m: Message, src: FileBytes, modelDir: string): NodeDef {
  const node: NodeDef = { name: "", opType: "", inputs: [], outputs: [], attributes: {} };
  for (const f of m.fields()) {
    switch (f.field) {
      case 1: node.inputs.push(m.string(f)); break;
      case 2: node.outputs.push(m.string(f)); break;
      case 3: node.name = m.string(f); break;
      case 4: node.opType = m.string(f); break;
      case 5: {
        const [k, a] = readAttribute(m.sub(f), src, modelDir);
        node.attributes[k] = a;
        break;
      }
      case 7: node.domain = m.string(f); break;
      default: break;
    }
  }
  return node;
}

export interface ReadModel {
  model: ModelDef;
  /** External data files the initializers live in, with the bytes each must hold at least. */
  externalData: Map<string, number>;
  close(): void;
}

/** Opens `file` and decodes its structure; payloads are read lazily until close(). */
export function readModel(file: string): ReadModel {
  if (!fs.existsSync(file)) throw new UserError(`ONNX model not found: ${file}`);
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) throw corrupt(file, "empty file");
    const src = new FileBytes(fd, size, file);
    const top = new Message(src, 0, size);
    const dir = path.dirname(file);
    const model: ModelDef = {
      irVersion: 0,
      opsetImports: [],
      producerName: "",
      producerVersion: "",
      graphName: "",
      inputs: [],
      outputs: [],
      nodes: [],
      initializers: [],
      metadata: {},
    };
    let sawGraph = false;
    const externalData = new Map<string, number>();
    for (const f of top.fields()) {
      switch (f.field) {
        case 1: model.irVersion = Number(f.varint); break;
        case 2: model.producerName = top.string(f); break;
        case 3: model.producerVersion = top.string(f); break;
        case 8: {
          const op: OpsetImport = { domain: "", version: 0 };
          const m = top.sub(f);
          for (const of of m.fields()) {
            if (of.field === 1) op.domain = m.string(of);
            if (of.field === 2) op.version = Number(of.varint);
          }
          model.opsetImports.push(op);
          break;
        }
        case 14: {
          const m = top.sub(f);
          let k = "";
          let v = "";
          for (const mf of m.fields()) {
            if (mf.field === 1) k = m.string(mf);
            if (mf.field === 2) v = m.string(mf);
          }
          model.metadata![k] = v;
          break;
        }
        case 7: {
          sawGraph = true;
          const g = top.sub(f);
          for (const gf of g.fields()) {
            switch (gf.field) {
              case 1: model.nodes.push(readNode(g.sub(gf), src, dir)); break;
              case 2: model.graphName = g.string(gf); break;
              case 5: model.initializers.push(readTensor(g.sub(gf), src, dir, externalData)); break;
              case 11: model.inputs.push(readValueInfo(g.sub(gf))); break;
              case 12: model.outputs.push(readValueInfo(g.sub(gf))); break;
              default: break;
            }
          }
          break;
        }
        default: break;
      }
    }
    if (!sawGraph || model.nodes.length === 0 || model.opsetImports.length === 0) throw corrupt(file, "no graph");
    return { model, externalData, close: () => fs.closeSync(fd) };
  } catch (e) {
    fs.closeSync(fd);
    if (e instanceof UserError) throw e;
    throw corrupt(file, (e as Error).message);
  }
}
