/**
 * An index's metadata.db (SQLite: node:sqlite or better-sqlite3, sqlite.ts), laid out as NextPlaid's: table METADATA
 * with `_subset_` = document id and one column per JSON key (types inferred from the first
 * non-null value; new keys add columns), FTS5 keyword search over each row's text
 * (METADATA_FTS, external content METADATA_FTS_TEXT, bm25), and — ours — the PLAID manifest in
 * `_PLAID_`, so that a vector update and its metadata commit in one SQLite transaction.
 */
import fs from "node:fs";
import { openSqlite, type SqlDatabase } from "./sqlite.js";
import { RE2JS } from "re2js";
import { FilterError, validateFilter } from "./filter.js";

import type { MetadataRow } from "./types.js";

export type { MetadataRow };
export type FtsTokenizer = "unicode61" | "trigram";

const COLUMN_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const IN_CHUNK = 900;
/** Longest REGEXP pattern accepted (RE2 compiles in time linear in it, but a program's size is memory). */
const MAX_PATTERN = 4096;

export class MetadataError extends Error {}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

function sqlType(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? "INTEGER" : "REAL";
  if (typeof v === "boolean") return "INTEGER";
  if (typeof v === "string" || v === null || v === undefined) return "TEXT";
  return "BLOB";
}

/** A JSON value as SQLite binds it: booleans 1/0, integers as integers, arrays/objects as JSON text. */
export function toSql(v: unknown): null | number | bigint | string {
  if (v === null || v === undefined) return null;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number") return Number.isSafeInteger(v) ? BigInt(v) : v;
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** The text FTS5 indexes for a metadata object: every value, recursively, in key order. */
export function metadataText(v: unknown): string {
  const parts: string[] = [];
  const walk = (x: unknown) => {
    if (x === null || x === undefined) return;
    if (typeof x === "string") {
      if (x.length > 0) parts.push(x);
    } else if (typeof x === "number" || typeof x === "boolean") parts.push(String(x));
    else if (Array.isArray(x)) x.forEach(walk);
    else if (typeof x === "object") Object.values(x as object).forEach(walk);
  };
  walk(v);
  return parts.join(" ");
}

/** Opening the WAL found none: it was checkpointed and removed, so it is in the database file, synced. Other errors are thrown. */
function noWal(e: unknown): undefined {
  if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  return undefined;
}

export class MetadataDb {
  readonly db: SqlDatabase;
  private regexCache = new Map<string, RE2JS>();

  constructor(
    private readonly file: string,
    readonly tokenizer: FtsTokenizer = "unicode61",
  ) {
    this.db = openSqlite(file);
    this.db.exec("PRAGMA journal_mode = WAL");
    // Commits are durable against a killed process at once, against a power loss once the WAL is
    // synced (durable(): the engine syncs it before removing the files a commit replaced).
    this.db.exec("PRAGMA synchronous = NORMAL");
    this.db.exec("PRAGMA busy_timeout = 5000");
    this.db.function("regexp", (pattern: unknown, text: unknown) => {
      if (typeof pattern !== "string") throw new MetadataError("REGEXP requires a string pattern parameter");
      if (text === null || text === undefined) return 0;
      return this.regex(pattern).matcher(String(text)).find() ? 1 : 0;
    });
    this.db.exec(`CREATE TABLE IF NOT EXISTS "_PLAID_" (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    this.db.exec(`CREATE TABLE IF NOT EXISTS METADATA ("_subset_" INTEGER NOT NULL)`);
    this.db.exec(`CREATE INDEX IF NOT EXISTS "idx_metadata_subset" ON METADATA ("_subset_")`);
    this.db.exec(`CREATE TABLE IF NOT EXISTS "METADATA_FTS_TEXT" (rowid INTEGER PRIMARY KEY, "_fts_content_" TEXT NOT NULL DEFAULT '')`);
    this.db.exec(
      `CREATE VIRTUAL TABLE IF NOT EXISTS "METADATA_FTS" USING fts5("_fts_content_", content='METADATA_FTS_TEXT', content_rowid='rowid', tokenize='${tokenizer === "trigram" ? "trigram" : "unicode61"}')`,
    );
  }

  /**
   * A REGEXP pattern compiled by RE2JS, RE2's linear-time engine: no pattern can backtrack
   * catastrophically (`(a+)+$` on 30 000 characters takes milliseconds). RE2 syntax: no
   * backreferences or lookarounds — such patterns are refused with the parser's reason.
   */
  private regex(pattern: string): RE2JS {
    let re = this.regexCache.get(pattern);
    if (!re) {
      if (pattern.length > MAX_PATTERN) throw new MetadataError(`REGEXP pattern is ${pattern.length} characters; at most ${MAX_PATTERN} are accepted`);
      try {
        re = RE2JS.compile(pattern);
      } catch (e) {
        throw new MetadataError(`Invalid regex pattern '${pattern.slice(0, 200)}': ${(e as Error).message} (REGEXP uses RE2 syntax: no backreferences or lookarounds)`);
      }
      if (this.regexCache.size >= 64) this.regexCache.delete(this.regexCache.keys().next().value!);
      this.regexCache.set(pattern, re);
    }
    return re;
  }

  close(): void {
    this.db.close();
  }

  /**
   * Makes every commit so far survive a power loss: syncs the write-ahead log (SQLite syncs it
   * itself only before a checkpoint, under synchronous = NORMAL), on libuv's pool rather than the
   * caller's thread. SQLite holds no POSIX lock on the log, so opening it here releases none.
   */
  async durable(): Promise<void> {
    const fh = await fs.promises.open(`${this.file}-wal`, "r").catch(noWal);
    if (!fh) return;
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** durable(), blocking (when an index is opened). */
  durableSync(): void {
    let fd: number | undefined;
    try {
      fd = fs.openSync(`${this.file}-wal`, "r");
    } catch (e) {
      noWal(e);
    }
    if (fd === undefined) return;
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn);
  }

  getState(key: string): string | undefined {
    return (this.db.prepare(`SELECT value FROM "_PLAID_" WHERE key = ?`).get(key) as { value: string } | undefined)?.value;
  }

  setState(key: string, value: string): void {
    this.db.prepare(`INSERT OR REPLACE INTO "_PLAID_"(key, value) VALUES (?, ?)`).run(key, value);
  }

  /** User columns and `_subset_`. */
  columns(): string[] {
    return (this.db.prepare(`PRAGMA table_info(METADATA)`).all() as { name: string }[]).map((c) => c.name);
  }

  count(): number {
    return Number((this.db.prepare(`SELECT COUNT(*) AS n FROM METADATA`).get() as { n: number }).n);
  }

  /** Inserts one row per document, ids firstId, firstId + 1, …; new keys become columns. */
  insert(rows: unknown[], firstId: number): void {
    const existing = new Set(this.columns());
    const added = new Map<string, string>();
    for (const row of rows) {
      if (!row || typeof row !== "object" || Array.isArray(row)) continue;
      for (const [key, value] of Object.entries(row)) {
        if (existing.has(key)) continue;
        if (!COLUMN_NAME.test(key)) {
          throw new MetadataError(`Invalid column name '${key}'. Column names must start with a letter or underscore, followed by letters, digits, or underscores.`);
        }
        if (!added.has(key) || (added.get(key) === "TEXT" && value !== null && value !== undefined && sqlType(value) !== "TEXT")) {
          added.set(key, value === null || value === undefined ? (added.get(key) ?? "TEXT") : sqlType(value));
        }
      }
    }
    const lower = new Set([...existing].map((c) => c.toLowerCase()));
    for (const [key, type] of added) {
      if (lower.has(key.toLowerCase())) throw new MetadataError(`Column '${key}' differs from an existing column only by case`);
      lower.add(key.toLowerCase());
      this.db.exec(`ALTER TABLE METADATA ADD COLUMN ${quote(key)} ${type}`);
    }
    const columns = this.columns().filter((c) => c !== "_subset_");
    const insert = this.db.prepare(`INSERT INTO METADATA ("_subset_"${columns.map((c) => ", " + quote(c)).join("")}) VALUES (?${", ?".repeat(columns.length)})`);
    const fts = this.db.prepare(`INSERT OR REPLACE INTO "METADATA_FTS_TEXT"(rowid, "_fts_content_") VALUES (?, ?)`);
    const ftsIndex = this.db.prepare(`INSERT INTO "METADATA_FTS"(rowid, "_fts_content_") VALUES (?, ?)`);
    rows.forEach((row, i) => {
      const obj = row && typeof row === "object" && !Array.isArray(row) ? (row as Record<string, unknown>) : {};
      insert.run(firstId + i, ...columns.map((c) => toSql(obj[c])));
      const text = metadataText(obj);
      fts.run(firstId + i, text);
      ftsIndex.run(firstId + i, text);
    });
  }

  /**
   * Deletes the rows of `ids` (ascending, unique) and renumbers the survivors so ids stay
   * 0..N−1 in order; the keyword index follows.
   */
  deleteAndRenumber(ids: Int32Array): void {
    if (ids.length === 0) return;
    this.db.exec(`CREATE TEMP TABLE IF NOT EXISTS "_deleted_" (id INTEGER PRIMARY KEY)`);
    this.db.exec(`DELETE FROM temp."_deleted_"`);
    const add = this.db.prepare(`INSERT OR IGNORE INTO temp."_deleted_"(id) VALUES (?)`);
    for (const id of ids) add.run(id);
    this.db.exec(`DELETE FROM METADATA WHERE "_subset_" IN (SELECT id FROM temp."_deleted_")`);
    this.db.exec(`UPDATE METADATA SET "_subset_" = "_subset_" - (SELECT COUNT(*) FROM temp."_deleted_" WHERE id < METADATA."_subset_")`);
    this.db.exec(`DELETE FROM "METADATA_FTS_TEXT" WHERE rowid IN (SELECT id FROM temp."_deleted_")`);
    this.db.exec(`CREATE TEMP TABLE "_fts_renumbered_" AS SELECT rowid - (SELECT COUNT(*) FROM temp."_deleted_" WHERE id < c.rowid) AS r, "_fts_content_" AS t FROM "METADATA_FTS_TEXT" c`);
    this.db.exec(`DELETE FROM "METADATA_FTS_TEXT"`);
    this.db.exec(`INSERT INTO "METADATA_FTS_TEXT"(rowid, "_fts_content_") SELECT r, t FROM temp."_fts_renumbered_"`);
    this.db.exec(`DROP TABLE temp."_fts_renumbered_"`);
    this.db.exec(`INSERT INTO "METADATA_FTS"("METADATA_FTS") VALUES ('rebuild')`);
    this.db.exec(`DELETE FROM temp."_deleted_"`);
  }

  /** Validates a filter (FilterError when invalid): the SQL to run and its bound parameters. */
  private prepareCondition(condition: string, parameters: unknown[]): { sql: string; params: unknown[] } {
    const { sql, placeholders } = validateFilter(condition, this.columns());
    if (placeholders !== parameters.length) throw new FilterError(`The condition has ${placeholders} ? placeholders but ${parameters.length} parameters were given`);
    return { sql, params: parameters.map(toSql) };
  }

  /** Ids of the documents matching `condition`, ascending. */
  where(condition: string, parameters: unknown[]): number[] {
    const { sql, params } = this.prepareCondition(condition, parameters);
    try {
      return (this.db.prepare(`SELECT "_subset_" AS id FROM METADATA WHERE ${sql} ORDER BY "_subset_"`).all(...params) as { id: number }[]).map((r) => Number(r.id));
    } catch (e) {
      throw new FilterError((e as Error).message);
    }
  }

  /** Rows in the order of `ids` (missing ids skipped). */
  getByIds(ids: number[]): MetadataRow[] {
    const found = new Map<number, MetadataRow>();
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const part = ids.slice(i, i + IN_CHUNK).filter((x) => Number.isSafeInteger(x));
      if (part.length === 0) continue;
      const rows = this.db.prepare(`SELECT * FROM METADATA WHERE "_subset_" IN (${part.map(() => "?").join(",")})`).all(...part) as MetadataRow[];
      for (const r of rows) found.set(Number(r["_subset_"]), r);
    }
    const out: MetadataRow[] = [];
    for (const id of ids) {
      const r = found.get(id);
      if (r) out.push(r);
    }
    return out;
  }

  /** Rows matching `condition` (all when absent), ascending by id. */
  getWhere(condition: string | undefined, parameters: unknown[], limit?: number): MetadataRow[] {
    const tail = limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(limit))}` : "";
    if (condition === undefined) return this.db.prepare(`SELECT * FROM METADATA ORDER BY "_subset_"${tail}`).all() as MetadataRow[];
    const { sql, params } = this.prepareCondition(condition, parameters);
    try {
      return this.db.prepare(`SELECT * FROM METADATA WHERE ${sql} ORDER BY "_subset_"${tail}`).all(...params) as MetadataRow[];
    } catch (e) {
      throw new FilterError((e as Error).message);
    }
  }

  /** Sets existing columns on the rows matching `condition`; returns how many rows. */
  update(condition: string, parameters: unknown[], updates: Record<string, unknown>): number {
    const keys = Object.keys(updates);
    if (keys.length === 0) return 0;
    const columns = this.columns();
    const byLower = new Map(columns.map((c) => [c.toLowerCase(), c]));
    for (const k of keys) {
      if (k === "_subset_") throw new MetadataError("Cannot update the _subset_ column");
      if (!COLUMN_NAME.test(k)) throw new MetadataError(`Invalid column name '${k}'`);
      if (!byLower.has(k.toLowerCase())) throw new MetadataError(`Unknown column '${k}' in updates`);
    }
    const ids = this.where(condition, parameters);
    if (ids.length === 0) return 0;
    return this.transaction(() => {
      const set = keys.map((k) => `${quote(byLower.get(k.toLowerCase())!)} = ?`).join(", ");
      const values = keys.map((k) => toSql(updates[k]));
      for (let i = 0; i < ids.length; i += IN_CHUNK) {
        const part = ids.slice(i, i + IN_CHUNK);
        this.db.prepare(`UPDATE METADATA SET ${set} WHERE "_subset_" IN (${part.map(() => "?").join(",")})`).run(...values, ...part);
      }
      // The keyword index follows the new values.
      const rows = this.getByIds(ids);
      const old = this.db.prepare(`SELECT "_fts_content_" AS t FROM "METADATA_FTS_TEXT" WHERE rowid = ?`);
      const del = this.db.prepare(`INSERT INTO "METADATA_FTS"("METADATA_FTS", rowid, "_fts_content_") VALUES ('delete', ?, ?)`);
      const put = this.db.prepare(`INSERT OR REPLACE INTO "METADATA_FTS_TEXT"(rowid, "_fts_content_") VALUES (?, ?)`);
      const add = this.db.prepare(`INSERT INTO "METADATA_FTS"(rowid, "_fts_content_") VALUES (?, ?)`);
      for (const r of rows) {
        const id = Number(r["_subset_"]);
        const prev = old.get(id) as { t: string } | undefined;
        if (prev) del.run(id, prev.t);
        const { _subset_: _, ...rest } = r;
        const text = metadataText(rest);
        put.run(id, text);
        add.run(id, text);
      }
      return ids.length;
    });
  }

  /**
   * FTS5 keyword search (the query is an FTS5 MATCH expression, as NextPlaid passes it): ids and
   * −bm25 scores, best first, within `subset` when given.
   */
  keyword(query: string, topK: number, subset?: number[]): { ids: number[]; scores: number[] } {
    if (query.trim() === "" || topK <= 0) return { ids: [], scores: [] };
    const sql = `SELECT rowid AS id, -bm25("METADATA_FTS") AS score FROM "METADATA_FTS" WHERE "METADATA_FTS" MATCH ?`;
    let rows: { id: number; score: number }[] = [];
    if (subset) {
      for (let i = 0; i < subset.length; i += IN_CHUNK) {
        const part = subset.slice(i, i + IN_CHUNK);
        rows.push(...(this.db.prepare(`${sql} AND rowid IN (${part.map(() => "?").join(",")}) ORDER BY score DESC LIMIT ?`).all(query, ...part, topK) as typeof rows));
      }
      rows.sort((a, b) => b.score - a.score);
      rows = rows.slice(0, topK);
    } else {
      rows = this.db.prepare(`${sql} ORDER BY score DESC LIMIT ?`).all(query, topK) as typeof rows;
    }
    return { ids: rows.map((r) => Number(r.id)), scores: rows.map((r) => Math.fround(r.score)) };
  }
}
