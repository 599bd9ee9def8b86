/**
 * IEEE 754 half precision (float16) for the original embeddings an index keeps on disk to retrain
 * its codec: 2 bytes per dimension instead of 4, lossless for the float32 → float16 → float32 round
 * trip of any value already in float16. Node has no Float16Array before 24 (and only behind a flag
 * there), so the bits are converted here: rounding to nearest, ties to even, as hardware does.
 */

/** The float32 value of every float16 bit pattern. */
let table: Float32Array | undefined;

function halfTable(): Float32Array {
  if (table) return table;
  table = new Float32Array(65_536);
  for (let h = 0; h < 65_536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) table[h] = sign * m * 2 ** -24;
    else if (e === 31) table[h] = m ? NaN : sign * Infinity;
    else table[h] = sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return table;
}

/** The float16 bits nearest to each float32 value (ties to even; overflow → ±Infinity). */
export function toHalf(values: Float32Array, out = new Uint16Array(values.length)): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    const sign = (b >>> 16) & 0x8000;
    const exp = (b >>> 23) & 0xff;
    const mant = b & 0x7fffff;
    let h: number;
    if (exp === 0xff) h = sign | 0x7c00 | (mant ? 0x200 : 0);
    else {
      const e = exp - 112; // rebias 127 → 15
      if (e >= 31) h = sign | 0x7c00;
      else if (e <= 0) {
        // Subnormal (or zero) in float16.
        if (e < -10) h = sign;
        else {
          const m = mant | 0x800000;
          const shift = 14 - e;
          const rem = m & ((1 << shift) - 1);
          const halfway = 1 << (shift - 1);
          h = m >>> shift;
          if (rem > halfway || (rem === halfway && h & 1)) h++;
          h |= sign;
        }
      } else {
        h = (e << 10) | (mant >>> 13);
        const rem = mant & 0x1fff;
        if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // may carry into the exponent: still right
        h |= sign;
      }
    }
    out[i] = h;
  }
  return out;
}

/** float16 bits → float32 values. */
export function fromHalf(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const t = halfTable();
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]!]!;
  return out;
}
