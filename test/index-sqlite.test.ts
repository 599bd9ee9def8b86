/**
 * One metadata layer over two SQLite backends (src/plaid/sqlite.ts): node:sqlite where Node has a
 * silent built-in one (≥ 24.15), better-sqlite3 elsewhere. An index written under either opens
 * under the other with the same answers (committed fixtures written by each, test/fixtures-index/),
 * and takes new documents; transactions roll back on both.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { PlaidEngine } from "../src/plaid/engine.js";
import { loadSqlite, openSqlite, preferredBackend, type SqliteBackend } from "../src/plaid/sqlite.js";
import { tempDir } from "./helpers/fixtures.js";
import { FIXTURE_DIM, fixtureDocs, fixtureQueries, fixtureRequests } from "./fixtures-index/corpus.js";

const here = preferredBackend();
const nodeSqlite = typeof (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule?.("node:sqlite") === "object";

test("the backend: node:sqlite from Node 24.15 (no flag, no warning), better-sqlite3 before; PYLATE_SQLITE chooses", () => {
  assert.equal(preferredBackend("20.20.2", {}), "better-sqlite3");
  assert.equal(preferredBackend("22.23.5", {}), "better-sqlite3", "Node 22's node:sqlite prints an ExperimentalWarning");
  assert.equal(preferredBackend("24.14.0", {}), "better-sqlite3");
  assert.equal(preferredBackend("24.15.0", {}), "node:sqlite");
  assert.equal(preferredBackend("25.1.0", {}), "node:sqlite");
  assert.equal(preferredBackend("20.20.2", { PYLATE_SQLITE: "node:sqlite" }), "node:sqlite");
  assert.equal(preferredBackend("24.22.3", { PYLATE_SQLITE: "better-sqlite3" }), "better-sqlite3");
});

for (const written of ["better-sqlite3", "node-sqlite"]) {
  test(`an index written with ${written === "node-sqlite" ? "node:sqlite" : written} opens under ${here} with the same answers, and grows`, async () => {
    const src = path.join(import.meta.dirname, "fixtures-index", written);
    const expected = JSON.parse(fs.readFileSync(path.join(src, "expected.json"), "utf8"));
    const root = tempDir("index-sqlite-");
    fs.cpSync(path.join(src, "docs"), path.join(root, "docs"), { recursive: true });
    const engine = await PlaidEngine.create(root, 1);
    try {
      assert.deepEqual(engine.info("docs"), expected.info);
      const searches = await Promise.all(fixtureRequests(fixtureQueries()).map((r) => engine.search("docs", r)));
      assert.deepEqual(JSON.parse(JSON.stringify(searches)), expected.searches);
      assert.deepEqual(engine.matching("docs", "lang = ? AND year >= ?", ["en", 2020]), expected.matching);
      assert.deepEqual(engine.matching("docs", "title REGEXP ?", ["^doc [0-9]*5$"]), expected.regexp);
      const { docs } = fixtureDocs();
      await engine.add("docs", { data: docs.data.subarray(0, 12 * FIXTURE_DIM), doclens: Int32Array.of(6, 6) }, FIXTURE_DIM, [{ title: "new one", lang: "fr" }, { title: "new two", lang: "fr" }]);
      assert.deepEqual(engine.matching("docs", "lang = ?", ["fr"]), [40, 41]);
      assert.equal(engine.metadataCount("docs").count, 42);
      await engine.deleteWhere("docs", "year < ?", [2012]);
      const left = engine.info("docs").num_documents;
      assert.equal(left, 42 - fixtureDocs().metadata.filter((m) => m.year < 2012).length);
      assert.deepEqual(engine.matching("docs", "lang = ?", ["fr"]), [left - 2, left - 1], "ids renumbered after the delete");
    } finally {
      await engine.close();
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
}

for (const backend of ["better-sqlite3", "node:sqlite"] as SqliteBackend[]) {
  const available = backend === "node:sqlite" ? nodeSqlite : await loadSqlite("better-sqlite3").then(() => true, () => false);
  test(`${backend}: a transaction commits when it returns and rolls back when it throws (nested too); large integers read back`, { skip: available ? false : `${backend} is not usable on Node ${process.versions.node}` }, async () => {
    await loadSqlite(backend);
    const db = openSqlite(":memory:");
    try {
      assert.equal(db.backend, backend);
      db.exec("CREATE TABLE t (x INTEGER)");
      db.transaction(() => db.prepare("INSERT INTO t VALUES (?)").run(1));
      assert.throws(() => db.transaction(() => {
        db.prepare("INSERT INTO t VALUES (?)").run(2);
        throw new Error("no");
      }), /no/);
      db.transaction(() => {
        db.prepare("INSERT INTO t VALUES (?)").run(3);
        assert.throws(() => db.transaction(() => {
          db.prepare("INSERT INTO t VALUES (?)").run(4);
          throw new Error("inner");
        }));
      });
      assert.deepEqual(db.prepare("SELECT x FROM t ORDER BY x").all().map((r) => r["x"]), [1, 3]);
      db.prepare("INSERT INTO t VALUES (?)").run(2n ** 60n);
      assert.equal(typeof db.prepare("SELECT MAX(x) AS m FROM t").get()!["m"], "number");
      db.function("twice", (v: unknown) => Number(v) * 2);
      assert.equal(db.prepare("SELECT twice(21) AS v").get()!["v"], 42);
      assert.equal(db.prepare("SELECT twice(?) AS v").get(2n ** 60n)!["v"], 2 ** 61, "integer arguments beyond 2^53 are accepted");
      // A COMMIT that fails (a deferred constraint) rolls back and leaves the connection usable.
      db.exec("PRAGMA foreign_keys = ON; CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)");
      assert.throws(() => db.transaction(() => db.prepare("INSERT INTO c VALUES (?)").run(5)), /FOREIGN KEY/);
      assert.equal(db.prepare("SELECT COUNT(*) AS n FROM c").get()!["n"], 0);
      db.transaction(() => db.prepare("INSERT INTO p VALUES (?)").run(5));
      db.transaction(() => db.prepare("INSERT INTO c VALUES (?)").run(5));
      assert.equal(db.prepare("SELECT COUNT(*) AS n FROM c").get()!["n"], 1);
    } finally {
      db.close();
      await loadSqlite(here);
    }
  });
}
