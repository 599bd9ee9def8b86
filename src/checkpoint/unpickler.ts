/**
 * A restricted unpickler for PyTorch's data.pkl. It interprets the pickle opcodes as data only:
 * the few globals a state dict needs (OrderedDict, tensor rebuild functions, storage types) are
 * mapped to local constructors; any other global is refused before anything is built. Nothing
 * is ever executed.
 */
import { UserError } from "../errors.js";
import type { DType } from "./types.js";

/** A storage reference from a persistent id ('storage', StorageType, key, location, numel). */
export interface StorageRef {
  kind: "storage";
  key: string;
  dtype: DType;
}

export interface TensorRef {
  kind: "tensor";
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

class Global {
  constructor(readonly fullName: string) {}
}
class Mark {}
const MARK = new Mark();

const STORAGE_DTYPES: Record<string, DType> = {
  "torch.FloatStorage": "F32",
  "torch.HalfStorage": "F16",
  "torch.BFloat16Storage": "BF16",
  "torch.DoubleStorage": "F64",
  "torch.LongStorage": "I64",
  "torch.IntStorage": "I32",
  "torch.ShortStorage": "I16",
  "torch.CharStorage": "I8",
  "torch.ByteStorage": "U8",
  "torch.BoolStorage": "BOOL",
};

const CALLABLES = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
]);

type Value = unknown;

function call(fn: Global, args: Value[]): Value {
  switch (fn.fullName) {
    case "collections.OrderedDict":
      return new Map<Value, Value>();
    case "torch._utils._rebuild_tensor":
    case "torch._utils._rebuild_tensor_v2": {
      const [storage, offset, shape, stride] = args as [StorageRef, number, number[], number[]];
      if (!storage || (storage as StorageRef).kind !== "storage") throw new Error("tensor without storage");
      return { kind: "tensor", storage, offset: Number(offset), shape: (shape as number[]).map(Number), stride: (stride as number[]).map(Number) } satisfies TensorRef;
    }
    case "torch._utils._rebuild_parameter":
    case "torch._utils._rebuild_parameter_with_state":
      return args[0];
    default:
      throw new Error(`cannot call ${fn.fullName}`);
  }
}

export function unpickle(data: Uint8Array, file: string): Value {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const refuse = (name: string) =>
    new UserError(`Refusing to load ${file}: its pickle references ${name}, which is not a tensor (possibly a malicious file); use a safetensors checkpoint`);
  const bad = (why: string) => new UserError(`Unreadable PyTorch checkpoint ${file}: ${why}; re-download it or use a safetensors checkpoint`);
  const stack: Value[] = [];
  const memo = new Map<number, Value>();
  let p = 0;
  const popMark = (): Value[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw bad("malformed pickle (no mark)");
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const global = (name: string): Global => {
    if (!CALLABLES.has(name) && !(name in STORAGE_DTYPES)) throw refuse(name);
    return new Global(name);
  };
  const setItems = (target: Value, items: Value[]) => {
    if (!(target instanceof Map)) throw bad("malformed pickle (SETITEM on a non-dict)");
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const u8 = () => buf[p++]!;
  const str = (n: number) => {
    const s = buf.toString("utf8", p, p + n);
    p += n;
    return s;
  };
  const line = () => {
    const end = buf.indexOf(0x0a, p);
    if (end < 0) throw bad("malformed pickle");
    const s = buf.toString("latin1", p, end);
    p = end + 1;
    return s;
  };

  while (p < buf.length) {
    const op = u8();
    switch (op) {
      case 0x80: p++; break; // PROTO
      case 0x95: p += 8; break; // FRAME
      case 0x2e: return stack.pop(); // STOP
      case 0x28: stack.push(MARK); break; // MARK
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(buf.readUInt16LE(p)); p += 2; break; // BININT2
      case 0x4a: stack.push(buf.readInt32LE(p)); p += 4; break; // BININT
      case 0x8a: { // LONG1
        const n = u8();
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[p + i]!);
        if (n > 0 && buf[p + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(Number(v));
        break;
      }
      case 0x47: stack.push(buf.readDoubleBE(p)); p += 8; break; // BINFLOAT
      case 0x58: { const n = buf.readUInt32LE(p); p += 4; stack.push(str(n)); break; } // BINUNICODE
      case 0x8c: { const n = u8(); stack.push(str(n)); break; } // SHORT_BINUNICODE
      case 0x8d: { const n = Number(buf.readBigUInt64LE(p)); p += 8; stack.push(str(n)); break; } // BINUNICODE8
      case 0x55: { const n = u8(); stack.push(buf.toString("latin1", p, p + n)); p += n; break; } // SHORT_BINSTRING
      case 0x54: { const n = buf.readUInt32LE(p); p += 4; stack.push(buf.toString("latin1", p, p + n)); p += n; break; } // BINSTRING
      case 0x43: { const n = u8(); stack.push(buf.subarray(p, p + n)); p += n; break; } // SHORT_BINBYTES
      case 0x42: { const n = buf.readUInt32LE(p); p += 4; stack.push(buf.subarray(p, p + n)); p += n; break; } // BINBYTES
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([stack.pop()]); break; // TUPLE1
      case 0x86: { const b = stack.pop(); const a = stack.pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = stack.pop(); const b = stack.pop(); const a = stack.pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { const items = popMark(); const m = new Map(); setItems(m, items); stack.push(m); break; } // DICT
      case 0x61: { const v = stack.pop(); (stack[stack.length - 1] as Value[]).push(v); break; } // APPEND
      case 0x65: { const items = popMark(); (stack[stack.length - 1] as Value[]).push(...items); break; } // APPENDS
      case 0x73: { const v = stack.pop(); const k = stack.pop(); setItems(stack[stack.length - 1], [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(stack[stack.length - 1], items); break; } // SETITEMS
      case 0x71: memo.set(u8(), stack[stack.length - 1]); break; // BINPUT
      case 0x72: memo.set(buf.readUInt32LE(p), stack[stack.length - 1]); p += 4; break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, stack[stack.length - 1]); break; // MEMOIZE
      case 0x68: stack.push(memo.get(u8())); break; // BINGET
      case 0x6a: stack.push(memo.get(buf.readUInt32LE(p))); p += 4; break; // LONG_BINGET
      case 0x63: { const module = line(); const name = line(); stack.push(global(`${module}.${name}`)); break; } // GLOBAL
      case 0x93: { const name = stack.pop(); const module = stack.pop(); stack.push(global(`${String(module)}.${String(name)}`)); break; } // STACK_GLOBAL
      case 0x52: case 0x81: { // REDUCE, NEWOBJ
        const args = stack.pop() as Value[];
        const fn = stack.pop();
        if (!(fn instanceof Global) || !CALLABLES.has(fn.fullName)) throw bad("malformed pickle (call of a non-callable)");
        try {
          stack.push(call(fn, args));
        } catch (e) {
          if (e instanceof UserError) throw e;
          throw bad(`malformed pickle (${(e as Error).message})`);
        }
        break;
      }
      case 0x62: stack.pop(); break; // BUILD: object state (e.g. a state dict's _metadata) is not needed
      case 0x51: { // BINPERSID
        const pid = stack.pop() as Value[];
        if (!Array.isArray(pid) || pid[0] !== "storage" || !(pid[1] instanceof Global)) throw bad("unsupported persistent id");
        const dtype = STORAGE_DTYPES[pid[1].fullName];
        if (!dtype) throw refuse(pid[1].fullName);
        stack.push({ kind: "storage", key: String(pid[2]), dtype } satisfies StorageRef);
        break;
      }
      default:
        throw bad(`unsupported pickle opcode 0x${op.toString(16)}`);
    }
  }
  throw bad("truncated pickle");
}
