/**
 * Export benchmark: wall time and peak RSS of `pylate-onnx-export` (built dist/, fresh process)
 * on random-weight checkpoints with GTE-ModernColBERT-v1's and colbertv2.0's exact shapes.
 * Each shape twice: --no-quantize (model.onnx only) and the default (model.onnx + model_int8.onnx).
 *   npm run build && node --import tsx bench/export.ts [--runs 3]
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { bertBase, CACHE, machineLine, modernBertBase } from "./checkpoints.js";

const runs = Number(process.argv[process.argv.indexOf("--runs") + 1]) || 3;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
if (!fs.existsSync(path.join(root, "dist", "export", "exporter.js"))) execFileSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });

/** Runs one export in a fresh node process; returns seconds and peak RSS (MB) of that process. */
function exportOnce(model: string, quantize: boolean): { seconds: number; rssMB: number; writerMB: number; bytes: number } {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "bench-export-"));
  const script = `
    const { exportModel } = await import(${JSON.stringify(path.join(root, "dist", "export", "exporter.js"))});
    let writerMB = 0;
    const logger = {
      info: (m) => { if (m.startsWith("Wrote model.onnx")) writerMB = process.resourceUsage().maxRSS / 1024; },
      warn: () => {},
      bar: () => ({ update() {}, stop() {} }),
    };
    const r = await exportModel({ model: ${JSON.stringify(model)}, outputDir: ${JSON.stringify(out)}, logger, force: true, quantize: ${quantize} });
    process.stdout.write(JSON.stringify({ rssMB: process.resourceUsage().maxRSS / 1024, writerMB, dir: r.dir }));`;
  const t0 = performance.now();
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  const wall = (performance.now() - t0) / 1000;
  if (child.status !== 0) throw new Error(child.stderr);
  const r = JSON.parse(child.stdout) as { rssMB: number; writerMB: number; dir: string };
  const bytes = fs.readdirSync(r.dir).reduce((s, f) => s + fs.statSync(path.join(r.dir, f)).size, 0);
  fs.rmSync(out, { recursive: true, force: true });
  return { seconds: wall, rssMB: r.rssMB, writerMB: r.writerMB, bytes };
}

const cases = [
  { name: "ModernBERT-base (GTE-ModernColBERT-v1 shapes)", dir: modernBertBase(), target: "≤ 4 s, ≤ 0.8 GB", python: "45.8 s / 3.26 GB" },
  { name: "BERT-base (colbertv2.0 shapes)", dir: bertBase(), target: "≤ 3 s", python: "23.3 s / 2.45 GB" },
];
console.log(`machine: ${machineLine()}; checkpoints in ${CACHE}`);
for (const c of cases) for (const quantize of [false, true]) {
  const results = Array.from({ length: runs }, () => exportOnce(c.dir, quantize));
  const best = results.reduce((a, b) => (a.seconds < b.seconds ? a : b));
  const median = [...results].sort((a, b) => a.seconds - b.seconds)[Math.floor(runs / 2)]!;
  const rss = Math.max(...results.map((r) => r.rssMB));
  const writer = Math.max(...results.map((r) => r.writerMB));
  console.log(
    `${c.name}, ${quantize ? "default (FP32 + INT8)" : "--no-quantize (FP32 only)"}: wall (process start → exit, incl. self-check) best ${best.seconds.toFixed(2)} s, median ${median.seconds.toFixed(2)} s; ` +
      `peak RSS ${rss.toFixed(0)} MB (${writer.toFixed(0)} MB before the onnxruntime self-check); output ${(best.bytes / 2 ** 20).toFixed(0)} MB; target ${c.target}; Python tool here: ${c.python}`,
  );
}
