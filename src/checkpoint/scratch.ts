/**
 * Reusable buffers for streaming tensors one at a time (read → convert → transpose → write).
 *
 * Each slot is one allocation of fixed capacity, made once and never freed while the export
 * runs; pages are only touched as far as tensors need them. Freeing many 1–30 MB buffers instead
 * would raise glibc's dynamic mmap threshold, after which onnxruntime's temporary buffers (while
 * it loads the model for the self-check) stay resident: measured +150 MB of peak memory.
 * Tensors above the capacity get their own allocation (big enough to be mmapped and unmapped
 * without moving the threshold).
 */
const CAPACITY = 32 * 2 ** 20 + 4096;

export class Scratch {
  private readonly slots = new Map<string, ArrayBuffer>();

  /** `n` bytes of slot `slot`, valid until the slot's next use. */
  bytes(slot: string, n: number): Uint8Array {
    if (n > CAPACITY) return new Uint8Array(new ArrayBuffer(n));
    let buf = this.slots.get(slot);
    if (!buf) this.slots.set(slot, (buf = new ArrayBuffer(CAPACITY)));
    return new Uint8Array(buf, 0, n);
  }

  f32(slot: string, n: number): Float32Array {
    const b = this.bytes(slot, n * 4);
    return new Float32Array(b.buffer, b.byteOffset, n);
  }
}
