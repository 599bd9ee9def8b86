/** Token sequences as the model's int64 inputs: [batch, seq], right-padded. */
import type { TokenizedText } from "./tokenizer.js";

export interface PaddedBatch {
  batch: number;
  seq: number;
  ids: BigInt64Array;
  mask: BigInt64Array;
}

/** Pads `items` to their longest with `padId` (attention 0 there). */
export function padBatch(items: TokenizedText[], padId: number): PaddedBatch {
  const seq = Math.max(...items.map((t) => t.ids.length));
  const batch = items.length;
  const ids = new BigInt64Array(batch * seq).fill(BigInt(padId));
  const mask = new BigInt64Array(batch * seq);
  items.forEach((t, i) => {
    for (let j = 0; j < t.ids.length; j++) {
      ids[i * seq + j] = BigInt(t.ids[j]!);
      mask[i * seq + j] = BigInt(t.mask[j]!);
    }
  });
  return { batch, seq, ids, mask };
}
