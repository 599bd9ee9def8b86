/** Small helpers the benches share: deterministic filler texts, latency percentiles. */
import fs from "node:fs";
import path from "node:path";

let words: string[] | undefined;

/** Text `i` of the benches' filler texts: `n` words of the bert-tiny fixture, the same every run. */
export function fillerText(i: number, n: number): string {
  const w = (words ??= fs.readFileSync(path.join(import.meta.dirname, "..", "test", "fixtures", "bert-tiny-colbert", "expected.json"), "utf8").match(/[A-Za-z]{3,}/g)!);
  return Array.from({ length: n }, (_, j) => w[(i * 7919 + j * 31) % w.length]).join(" ");
}

/** "p50 … / p99 … ms (count)" of latencies in ms ("none" when there are none). */
export function percentiles(ms: number[], unit = ""): string {
  const s = [...ms].sort((a, b) => a - b);
  if (s.length === 0) return "none";
  return `p50 ${s[Math.floor(s.length / 2)]!.toFixed(1)} / p99 ${s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]!.toFixed(1)} ms (${s.length}${unit ? ` ${unit}` : ""})`;
}
