/**
 * Metadata filters: a SQL WHERE fragment over metadata columns whose values come only as `?`
 * parameters, validated the way NextPlaid's filtering.rs validates it before it reaches SQLite —
 * no comments, no `;`, no statement keywords, no literals or functions, and every identifier an
 * existing column. Anything else is rejected with a message saying what is wrong. What runs is
 * the SQL rebuilt from the validated tokens, every column quoted (so a column named like an SQL
 * keyword, e.g. `group`, works).
 */

export class FilterError extends Error {}

const FORBIDDEN = ["SELECT", "UNION", "INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER", "TRUNCATE", "EXEC", "EXECUTE", "GRANT", "REVOKE"];
const KEYWORDS = new Set(["AND", "OR", "NOT", "IS", "NULL", "LIKE", "REGEXP", "BETWEEN", "IN"]);

type Token = { kind: "?" | "(" | ")" | "," | "op" | "kw" | "ident" | "eof"; text: string };

function tokenize(condition: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < condition.length) {
    const ch = condition[i]!;
    if (/\s/u.test(ch)) {
      i++;
      continue;
    }
    if (ch === "?" || ch === "(" || ch === ")" || ch === ",") {
      tokens.push({ kind: ch, text: ch });
      i++;
      continue;
    }
    const two = condition.slice(i, i + 2);
    if (two === "!=" || two === "<>" || two === "<=" || two === ">=") {
      tokens.push({ kind: "op", text: two === "<>" ? "!=" : two });
      i += 2;
      continue;
    }
    if (ch === "=" || ch === "<" || ch === ">") {
      tokens.push({ kind: "op", text: ch });
      i++;
      continue;
    }
    if (/[\p{L}_]/u.test(ch)) {
      let j = i + 1;
      while (j < condition.length && /[\p{L}\p{N}_]/u.test(condition[j]!)) j++;
      const word = condition.slice(i, j);
      tokens.push(KEYWORDS.has(word.toUpperCase()) ? { kind: "kw", text: word.toUpperCase() } : { kind: "ident", text: word });
      i = j;
      continue;
    }
    if (ch === '"') {
      const end = condition.indexOf('"', i + 1);
      if (end < 0) throw new FilterError("Unterminated quoted identifier");
      tokens.push({ kind: "ident", text: condition.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    throw new FilterError(`Unexpected character '${ch}' in condition (values must be passed as ? parameters)`);
  }
  tokens.push({ kind: "eof", text: "end of condition" });
  return tokens;
}

export interface ValidFilter {
  /** The condition as SQL to run: the validated tokens, columns quoted with their stored spelling. */
  sql: string;
  placeholders: number;
}

/**
 * Checks `condition` against the grammar and the known `columns` (case-insensitive). Throws
 * FilterError with a one-line reason.
 */
export function validateFilter(condition: string, columns: string[]): ValidFilter {
  const trivial = /^\s*(\d+)\s*=\s*(\d+)\s*$/.exec(condition);
  if (trivial) return { sql: `${Number(trivial[1])} = ${Number(trivial[2])}`, placeholders: 0 };
  if (condition.includes("--") || condition.includes("/*") || condition.includes("*/")) throw new FilterError("SQL comments are not allowed in conditions");
  if (condition.includes(";")) throw new FilterError("Semicolons are not allowed in conditions");
  const upper = condition.toUpperCase();
  for (const kw of FORBIDDEN) if (new RegExp(`\\b${kw}\\b`).test(upper)) throw new FilterError(`SQL keyword '${kw}' is not allowed in conditions`);
  const known = new Map(columns.map((c) => [c.toLowerCase(), c]));
  const tokens = tokenize(condition);
  let pos = 0;
  let placeholders = 0;
  const peek = () => tokens[pos]!;
  const next = () => tokens[pos++]!;
  const describe = (t: Token) => (t.kind === "eof" ? "end of condition" : `'${t.text}'`);
  const expect = (kind: Token["kind"], text?: string) => {
    const t = next();
    if (t.kind !== kind || (text !== undefined && t.text !== text)) throw new FilterError(`Expected ${text ?? (kind === "?" ? "a ? placeholder" : `'${kind}'`)}, found ${describe(t)}`);
    if (kind === "?") placeholders++;
  };
  const isKw = (text: string) => peek().kind === "kw" && peek().text === text;

  const primary = (): void => {
    const t = next();
    if (t.kind === "(") {
      orExpr();
      expect(")");
      return;
    }
    if (t.kind !== "ident") throw new FilterError(`Expected column name, found ${describe(t)}`);
    if (!known.has(t.text.toLowerCase())) throw new FilterError(`Unknown column '${t.text}' in condition`);
    if (isKw("IS")) {
      next();
      if (isKw("NOT")) next();
      expect("kw", "NULL");
      return;
    }
    if (isKw("NOT")) next();
    const op = next();
    if (op.kind === "kw" && op.text === "BETWEEN") {
      expect("?");
      expect("kw", "AND");
      expect("?");
    } else if (op.kind === "kw" && op.text === "IN") {
      expect("(");
      expect("?");
      while (peek().kind === ",") {
        next();
        expect("?");
      }
      expect(")");
    } else if ((op.kind === "kw" && (op.text === "LIKE" || op.text === "REGEXP")) || op.kind === "op") {
      expect("?");
    } else {
      throw new FilterError(`Expected an operator after column '${t.text}', found ${describe(op)}`);
    }
  };
  const unary = () => {
    if (isKw("NOT")) next();
    primary();
  };
  const andExpr = () => {
    unary();
    while (isKw("AND")) {
      next();
      unary();
    }
  };
  function orExpr(): void {
    andExpr();
    while (isKw("OR")) {
      next();
      andExpr();
    }
  }
  orExpr();
  if (peek().kind !== "eof") throw new FilterError(`Unexpected ${describe(peek())} after expression`);
  const sql = tokens
    .slice(0, -1)
    .map((t) => (t.kind === "ident" ? `"${known.get(t.text.toLowerCase())!.replace(/"/g, '""')}"` : t.text))
    .join(" ");
  return { sql, placeholders };
}
