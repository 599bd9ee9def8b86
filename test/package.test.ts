/**
 * The package as a consumer sees it: its public types compile in a TypeScript project without
 * @types/node (types: []), through package.json's "exports".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "./helpers/fixtures.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const TSC = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");

test("public type declarations compile without @types/node", () => {
  const work = tempDir("consumer-");
  const pkg = path.join(work, "node_modules", "pylate-onnx-export");
  fs.mkdirSync(pkg, { recursive: true });
  fs.copyFileSync(path.join(ROOT, "package.json"), path.join(pkg, "package.json"));
  const build = spawnSync(process.execPath, [TSC, "-p", path.join(ROOT, "tsconfig.build.json"), "--outDir", path.join(pkg, "dist"), "--emitDeclarationOnly"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
  assert.equal(build.status, 0, build.stdout + build.stderr);
  // The dependencies whose types the declarations name.
  for (const dep of ["onnxruntime-node", "onnxruntime-common", "tokenizers", "@huggingface"]) {
    fs.mkdirSync(path.dirname(path.join(work, "node_modules", dep)), { recursive: true });
    fs.symlinkSync(path.join(ROOT, "node_modules", dep), path.join(work, "node_modules", dep));
  }
  fs.writeFileSync(
    path.join(work, "consumer.ts"),
    `import { ColbertEncoder, exportModel, auditExport, encodeCorpus, type Embedding } from "pylate-onnx-export";
export async function f(): Promise<Embedding[]> {
  await exportModel({ model: "x", outputDir: "y" });
  await auditExport("y");
  const e = await ColbertEncoder.load("y");
  await encodeCorpus(e, { input: "in.txt", jsonl: false, output: "out.npy", format: "npy", type: "document", chunkSize: 64, skipBad: false, force: false });
  return e.encodeQueries(["a"]);
}
`,
  );
  fs.writeFileSync(
    path.join(work, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, types: [], skipLibCheck: false }, files: ["consumer.ts"] }),
  );
  const check = spawnSync(process.execPath, [TSC, "-p", work], { cwd: work, encoding: "utf8", timeout: 120_000 });
  assert.equal(check.status, 0, check.stdout + check.stderr);

  // The server subpath and the index engine: Node's types (a server runs in Node), but not SQLite's.
  fs.mkdirSync(path.join(work, "node_modules", "@types"), { recursive: true });
  fs.symlinkSync(path.join(ROOT, "node_modules", "@types", "node"), path.join(work, "node_modules", "@types", "node"));
  fs.writeFileSync(
    path.join(work, "server-consumer.ts"),
    `import { createServer, startIndexEngine, IndexError, type SearchRequest, type QueryResult } from "pylate-onnx-export/server";
export async function g(q: Float32Array): Promise<QueryResult[]> {
  const indexEngine = await startIndexEngine("./indices");
  createServer({ indexEngine }).listen(8080);
  const request: SearchRequest = { queries: [{ data: q, dim: 128 }], params: { topK: 10, nIvfProbe: 8, nFullScores: 4096 }, alpha: 0.75, fusion: "rrf", filterParameters: [] };
  try {
    return await indexEngine.search("docs", request);
  } catch (e) {
    if (e instanceof IndexError && e.code === "INDEX_NOT_FOUND") return [];
    throw e;
  }
}
`,
  );
  fs.writeFileSync(
    path.join(work, "tsconfig.server.json"),
    JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, types: ["node"], skipLibCheck: false }, files: ["server-consumer.ts"] }),
  );
  const checkServer = spawnSync(process.execPath, [TSC, "-p", path.join(work, "tsconfig.server.json")], { cwd: work, encoding: "utf8", timeout: 120_000 });
  assert.equal(checkServer.status, 0, checkServer.stdout + checkServer.stderr);
});
