/**
 * better-sqlite3 is an optional dependency (a native build that can fail to install): where it is
 * the SQLite backend (Node < 24.15) and missing, `colbert-serve --index-dir` stops with one line
 * saying how to install it, and writes nothing; where Node has node:sqlite, the index API works
 * without it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "./helpers/fixtures.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const hide = path.join(ROOT, "test", "helpers", "without-packages.mjs");

test("without better-sqlite3, colbert-serve --index-dir says how to install it (one line, exit 1) and creates nothing", () => {
  const indexDir = path.join(tempDir(), "indices");
  const args = ["--import", "tsx", "--import", hide, path.join(ROOT, "src/cli/serve.ts"), "--port", "0", "--index-dir", indexDir];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: "utf8", timeout: 60_000, env: { ...process.env, PYLATE_SQLITE: "better-sqlite3", HIDE_PACKAGES: "better-sqlite3" } });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^Error: The index API needs SQLite: .*better-sqlite3.* is not installed here.*npm install better-sqlite3@12/);
  assert.equal(fs.existsSync(indexDir), false);
});

const nodeSqlite = typeof (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule?.("node:sqlite") === "object";

test("with node:sqlite, the index API needs no better-sqlite3", { skip: nodeSqlite ? false : `no node:sqlite in Node ${process.versions.node}`, timeout: 120_000 }, async () => {
  const indexDir = path.join(tempDir(), "indices");
  const script = `
    const { startIndexEngine } = await import(${JSON.stringify(path.join(ROOT, "src/plaid/client.ts"))});
    const e = await startIndexEngine(${JSON.stringify(indexDir)}, { threads: 1 });
    await e.declare("n", {});
    const data = new Float32Array(3 * 4 * 8).map((_, i) => Math.sin(i));
    await e.add("n", { data, doclens: Int32Array.of(4, 4, 4) }, 8, [{ k: "a" }, { k: "b" }, { k: "a" }]);
    console.log(JSON.stringify({ ids: await e.matching("n", "k = ?", ["a"]), docs: (await e.info("n")).num_documents }));
    await e.close();`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--import", hide, "--input-type=module", "-e", script], { cwd: ROOT, encoding: "utf8", timeout: 100_000, env: { ...process.env, PYLATE_SQLITE: "node:sqlite", HIDE_PACKAGES: "better-sqlite3" } });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim().split("\n").pop()!), { ids: [0, 2], docs: 3 });
});
