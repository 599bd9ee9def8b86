/**
 * Writes test/fixtures-index/<backend>/: a small index (an index folder with its metadata.db)
 * written through the SQLite backend this process uses, and expected.json with what searches and
 * metadata queries answer on it. test/index-sqlite.test.ts opens the folder written by the *other*
 * backend and checks the same answers: a metadata.db is the same file under node:sqlite and
 * better-sqlite3. Run once per backend (node:sqlite needs Node ≥ 24.15):
 *
 *   node --import tsx test/fixtures-index/generate.ts                              # Node 20: better-sqlite3
 *   /path/to/node24 --import tsx test/fixtures-index/generate.ts                   # Node 24: node:sqlite
 *
 * With --answers, the folder stays as it was written (older formats included: its raw file is
 * float32) and only expected.json is computed again — after a change to search arithmetic.
 */
import fs from "node:fs";
import path from "node:path";
import { PlaidEngine } from "../../src/plaid/engine.js";
import { preferredBackend } from "../../src/plaid/sqlite.js";
import { fixtureQueries, fixtureRequests, FIXTURE_DIM, fixtureDocs } from "./corpus.js";

const backend = preferredBackend();
const out = path.join(import.meta.dirname, backend.replace(":", "-"));
const answersOnly = process.argv.includes("--answers");
const before = answersOnly ? JSON.parse(fs.readFileSync(path.join(out, "expected.json"), "utf8")) : undefined;
if (!answersOnly) fs.rmSync(out, { recursive: true, force: true });
const engine = await PlaidEngine.create(out, 1);
if (!answersOnly) {
  engine.declare("docs", { seed: 7 });
  const { docs, metadata } = fixtureDocs();
  await engine.add("docs", docs, FIXTURE_DIM, metadata);
}
const expected = {
  backend,
  node: before?.node ?? process.versions.node,
  info: engine.info("docs"),
  searches: await Promise.all(fixtureRequests(fixtureQueries()).map((r) => engine.search("docs", r))),
  matching: engine.matching("docs", "lang = ? AND year >= ?", ["en", 2020]),
  regexp: engine.matching("docs", "title REGEXP ?", ["^doc [0-9]*5$"]),
};
await engine.close();
fs.writeFileSync(path.join(out, "expected.json"), JSON.stringify(expected, null, 1) + "\n");
console.log(`wrote ${out} (${backend}, Node ${process.versions.node})`);
