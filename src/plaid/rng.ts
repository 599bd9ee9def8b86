/** A small seeded PRNG (xoshiro128**, seeded through splitmix32): reproducible sampling for k-means. */
export class Rng {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }
  /** Uniform in [0, n). */
  below(n: number): number {
    return Math.floor((this.nextU32() / 4294967296) * n);
  }
  /** `k` distinct indices of [0, n), in increasing order (partial Fisher–Yates when k is large, rejection when small). */
  sample(n: number, k: number): Int32Array {
    if (k >= n) return Int32Array.from({ length: n }, (_, i) => i);
    let picked: Int32Array;
    if (k * 4 < n) {
      const seen = new Set<number>();
      while (seen.size < k) seen.add(this.below(n));
      picked = Int32Array.from(seen);
    } else {
      const all = Int32Array.from({ length: n }, (_, i) => i);
      for (let i = 0; i < k; i++) {
        const j = i + this.below(n - i);
        const t = all[i]!;
        all[i] = all[j]!;
        all[j] = t;
      }
      picked = all.slice(0, k);
    }
    return picked.sort();
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
