/**
 * SQLite for the metadata layer, from Node's built-in `node:sqlite` where it runs without a flag or
 * a warning (Node ≥ 24.15), else from better-sqlite3 (an optional native dependency: Node 20 has no
 * built-in SQLite, and Node 22's prints an ExperimentalWarning). Both are SQLite 3.5x with FTS5 and
 * JSON functions, so an index's metadata.db is the same file either way. `PYLATE_SQLITE=node:sqlite`
 * or `=better-sqlite3` chooses explicitly.
 *
 * The interface is the small part of better-sqlite3's API that metadata.ts uses.
 */
import { UserError } from "../errors.js";

export type SqlValue = null | number | bigint | string | Uint8Array;
export type SqlRow = Record<string, unknown>;

export interface SqlStatement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): SqlRow | undefined;
  all(...params: unknown[]): SqlRow[];
}

export interface SqlDatabase {
  readonly backend: SqliteBackend;
  readonly open: boolean;
  prepare(sql: string): SqlStatement;
  exec(sql: string): void;
  /** A deterministic scalar SQL function (e.g. REGEXP). */
  function(name: string, fn: (...args: unknown[]) => unknown): void;
  /** Runs `fn` in a transaction (a savepoint when nested): committed when it returns, rolled back when it throws. */
  transaction<T>(fn: () => T): T;
  close(): void;
}

export type SqliteBackend = "node:sqlite" | "better-sqlite3";

/** The backend this Node uses: node:sqlite from 24.15 (silent and flagless), better-sqlite3 before. */
export function preferredBackend(version = process.versions.node, env = process.env): SqliteBackend {
  const chosen = env["PYLATE_SQLITE"];
  if (chosen === "node:sqlite" || chosen === "better-sqlite3") return chosen;
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > 24 || (major === 24 && minor >= 15) ? "node:sqlite" : "better-sqlite3";
}

/** What metadata.ts needs of node:sqlite (typed here: @types/node 20 does not describe it). */
interface DatabaseSync {
  prepare(sql: string): { run(...p: unknown[]): unknown; get(...p: unknown[]): unknown; all(...p: unknown[]): unknown[] };
  exec(sql: string): void;
  function(name: string, options: { deterministic: boolean; useBigIntArguments?: boolean }, fn: (...args: unknown[]) => unknown): void;
  close(): void;
  /** Node ≥ 22.16 / 24: whether a transaction is open. */
  readonly isTransaction?: boolean;
}
interface NodeSqliteModule {
  DatabaseSync: new (file: string, options: { readBigInts: boolean }) => DatabaseSync;
}

type Opener = (file: string) => SqlDatabase;
let opener: { backend: SqliteBackend; open: Opener } | undefined;

const BETTER_SQLITE3_MISSING =
  "The index API needs SQLite: this Node has no silent built-in one (Node ≥ 24.15 does) and better-sqlite3, the optional dependency used instead, is not installed here (its native build needs python3, make and a C++ compiler): run `npm install better-sqlite3@12` in this package's folder (or use Node 24), then start again";

/**
 * Loads the backend (once) and proves it opens a database: an absent better-sqlite3 or one built
 * for another Node (ERR_DLOPEN_FAILED) fails here with a one-line fix, not at the first update.
 */
export async function loadSqlite(backend = preferredBackend()): Promise<SqliteBackend> {
  if (opener?.backend === backend) return backend;
  let open: Opener;
  if (backend === "node:sqlite") {
    const mod = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule?.("node:sqlite") as NodeSqliteModule | undefined;
    if (!mod) throw new UserError(`PYLATE_SQLITE=node:sqlite needs Node ≥ 22.13 (this is ${process.versions.node}); unset it to use better-sqlite3`);
    open = (file) => new NodeSqlite(new mod.DatabaseSync(file, { readBigInts: true }));
  } else {
    let Database: typeof import("better-sqlite3");
    try {
      Database = ((await import("better-sqlite3")) as { default: typeof import("better-sqlite3") }).default;
    } catch {
      throw new UserError(BETTER_SQLITE3_MISSING);
    }
    open = (file) => new BetterSqlite(new Database(file));
  }
  try {
    open(":memory:").close();
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0]!;
    throw new UserError(
      /NODE_MODULE_VERSION|did not self-register|ERR_DLOPEN/.test(msg + String((e as NodeJS.ErrnoException).code))
        ? `better-sqlite3 is installed but was built for another Node.js (${msg.replace(/^The module .* was compiled/, "compiled")}); run \`npm rebuild better-sqlite3\` with this Node (${process.versions.node}), then start again`
        : `SQLite (${backend}) cannot open a database: ${msg}`,
    );
  }
  opener = { backend, open };
  return backend;
}

/** Opens `file` with the loaded backend (loadSqlite first). */
export function openSqlite(file: string): SqlDatabase {
  if (!opener) throw new Error("openSqlite before loadSqlite");
  return opener.open(file);
}

class BetterSqlite implements SqlDatabase {
  readonly backend = "better-sqlite3";
  constructor(private readonly db: import("better-sqlite3").Database) {}
  get open(): boolean {
    return this.db.open;
  }
  prepare(sql: string): SqlStatement {
    const s = this.db.prepare(sql);
    return { run: (...p) => s.run(...p), get: (...p) => s.get(...p) as SqlRow | undefined, all: (...p) => s.all(...p) as SqlRow[] };
  }
  exec(sql: string): void {
    this.db.exec(sql);
  }
  function(name: string, fn: (...args: unknown[]) => unknown): void {
    this.db.function(name, { deterministic: true }, fn as (...a: unknown[]) => number);
  }
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** node:sqlite's integers come as bigint (so that none is refused); as better-sqlite3, they are returned as numbers. */
function numbers(row: SqlRow | undefined): SqlRow | undefined {
  if (!row) return row;
  const out: SqlRow = {};
  for (const k in row) {
    const v = row[k];
    out[k] = typeof v === "bigint" ? Number(v) : v;
  }
  return out;
}

class NodeSqlite implements SqlDatabase {
  readonly backend = "node:sqlite";
  private depth = 0;
  private closed = false;
  constructor(private readonly db: DatabaseSync) {}
  get open(): boolean {
    return !this.closed;
  }
  prepare(sql: string): SqlStatement {
    const s = this.db.prepare(sql);
    return {
      run: (...p) => s.run(...p),
      get: (...p) => numbers(s.get(...p) as SqlRow | undefined),
      all: (...p) => (s.all(...p) as SqlRow[]).map((r) => numbers(r)!),
    };
  }
  exec(sql: string): void {
    this.db.exec(sql);
  }
  function(name: string, fn: (...args: unknown[]) => unknown): void {
    // Integer arguments as bigint: better-sqlite3 accepts any integer, node:sqlite refuses those beyond 2^53 as numbers.
    this.db.function(name, { deterministic: true, useBigIntArguments: true }, fn);
  }
  transaction<T>(fn: () => T): T {
    const outer = this.depth === 0;
    const savepoint = `sp${this.depth}`;
    this.db.exec(outer ? "BEGIN" : `SAVEPOINT ${savepoint}`);
    this.depth++;
    let out: T;
    try {
      out = fn();
      if (out instanceof Promise) throw new TypeError("Transaction function cannot return a promise");
    } catch (e) {
      this.depth--;
      this.rollback(outer, savepoint);
      throw e;
    }
    this.depth--;
    try {
      this.db.exec(outer ? "COMMIT" : `RELEASE ${savepoint}`);
    } catch (e) {
      this.rollback(outer, savepoint);
      throw e;
    }
    return out;
  }

  /** Undoes what is still open (SQLite may already have rolled back, e.g. on SQLITE_FULL): the original error stands. */
  private rollback(outer: boolean, savepoint: string): void {
    try {
      if (outer) {
        if (this.db.isTransaction !== false) this.db.exec("ROLLBACK");
      } else this.db.exec(`ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`);
    } catch {
      /* nothing left to undo */
    }
  }

  close(): void {
    if (!this.closed) this.db.close();
    this.closed = true;
  }
}
