/**
 * better-sqlite3 is an optional dependency (a native build that can fail to install): without it,
 * `colbert-serve --index-dir` stops with one line saying how to install it, and writes nothing.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "./helpers/fixtures.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");

test("without better-sqlite3, colbert-serve --index-dir says how to install it (one line, exit 1) and creates nothing", () => {
  const indexDir = path.join(tempDir(), "indices");
  const hide = path.join(ROOT, "test", "helpers", "without-better-sqlite3.mjs");
  const args = ["--import", "tsx", "--import", hide, path.join(ROOT, "src/cli/serve.ts"), "--port", "0", "--index-dir", indexDir];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^Error: The index API needs better-sqlite3.*npm install better-sqlite3@12/);
  assert.equal(fs.existsSync(indexDir), false);
});
