/**
 * onnxruntime-node is an optional dependency (its install script can fail): without it, every
 * command's --help and --version still work, and a command that would run a model stops with one
 * line whose fix adds onnxruntime-node to this package's own folder (right for a global, tarball
 * or folder install alike).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { VERSION } from "../src/version.js";
import { fixtureModelDir, tempDir } from "./helpers/fixtures.js";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const hide = path.join(ROOT, "test", "helpers", "without-packages.mjs");
const run = (cmd: string, args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", "--import", hide, path.join(ROOT, "src/cli", `${cmd}.ts`), ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000, env: { ...process.env, HIDE_PACKAGES: "onnxruntime-node" } });

for (const cmd of ["export", "quantize", "encode", "serve", "check"]) {
  test(`without onnxruntime-node, ${cmd} --help and --version work`, () => {
    const help = run(cmd, ["--help"]);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /Usage: /);
    const version = run(cmd, ["--version"]);
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), VERSION);
  });
}

test("without onnxruntime-node, an export says in one line how to add it to this package", () => {
  const r = run("export", [fixtureModelDir("bert-tiny-colbert"), "-o", tempDir()]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  assert.ok(r.stderr.includes(`ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "${ROOT}" onnxruntime-node@1.30`), r.stderr);
});
