/**
 * Handing memory over to a worker thread: an array marked with handOver() moves with the next
 * message that carries it (postMessage's transfer list) instead of being copied. Kept free of
 * other imports: the server's update queue marks its batches, the index client sends them.
 */

/** Arrays whose memory a call hands over to the index thread (see handOver). */
const handedOver = new WeakSet<ArrayBufferView>();

/**
 * Marks `a` (which must own its whole buffer) as given to the next engine call that takes it: the
 * buffer moves to the index thread instead of being copied — `a` is empty afterwards. The update
 * queue does this with each batch it assembles (a copy of tens of MB held the server's event loop).
 */
export function handOver<T extends ArrayBufferView>(a: T): T {
  if (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && !(a.buffer instanceof SharedArrayBuffer)) handedOver.add(a);
  return a;
}

/** The buffers of handed-over arrays among a call's arguments (one level into objects). */
export function transfers(args: unknown[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  const visit = (v: unknown) => {
    if (ArrayBuffer.isView(v) && handedOver.has(v)) out.push(v.buffer as ArrayBuffer);
  };
  for (const a of args) {
    visit(a);
    if (a && typeof a === "object" && !ArrayBuffer.isView(a)) Object.values(a).forEach(visit);
  }
  return [...new Set(out)];
}
