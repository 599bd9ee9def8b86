/**
 * #21: the three forms of an export on full-size shapes, in one run — the plain graph fed whole
 * batches (NextPlaid, any onnxruntime loop), the plain graph with our runtime's CPU pieces
 * (DIR@1024), and the graph with the batch loop inside (fed whole batches) — FP32 and INT8.
 * Exports the shapes' checkpoints three ways (default, --chunk-tokens 1024, --chunk-tokens 0),
 * then runs bench/ab.ts on them; also batch-1 query latency.
 *   node --import tsx bench/graph-forms.ts [modernbert|bert] [--rounds 6]
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { exportModel } from "../src/export/exporter.js";
import { silentLogger } from "../src/util/log.js";
import { bertBase, modernBertBase } from "./checkpoints.js";

const argv = process.argv.slice(2);
const which = argv[0] === "bert" ? "bert" : "modernbert";
const rounds = argv.includes("--rounds") ? argv[argv.indexOf("--rounds") + 1]! : "6";
const ckpt = which === "bert" ? bertBase() : modernBertBase();
const out = path.join(os.tmpdir(), `graph-forms-${which}`);
const forms: Record<string, number | undefined> = { default: undefined, loop: 1024, plain: 0 };
const dirs: Record<string, string> = {};
for (const [name, chunkTokens] of Object.entries(forms)) {
  const parent = path.join(out, name);
  fs.mkdirSync(parent, { recursive: true });
  dirs[name] = (await exportModel({ model: ckpt, outputDir: parent, logger: silentLogger, chunkTokens })).dir;
}
const ab = (args: string[]) => {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "ab.ts"), ...args, "--rounds", rounds], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  process.stdout.write(r.stdout);
};
console.log(`# ${which}: FP32 — plain whole batches | plain + runtime pieces | loop graph`);
ab([dirs["default"]!, `${dirs["default"]!}@1024`, dirs["loop"]!]);
console.log(`# ${which}: INT8 — plain whole batches | plain + runtime pieces | loop graph (the default model_int8.onnx)`);
ab([dirs["plain"]!, `${dirs["plain"]!}@1024`, dirs["default"]!, "--int8"]);
console.log(`# ${which}: batch-1 query latency (32 tokens), FP32 plain vs loop, INT8 plain vs loop`);
ab([dirs["default"]!, dirs["loop"]!, "--docs", "64", "--batch", "1", "--seq", "32"]);
ab([dirs["plain"]!, dirs["default"]!, "--int8", "--docs", "64", "--batch", "1", "--seq", "32"]);
