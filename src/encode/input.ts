/**
 * Corpus input, read incrementally: plain text (one text per non-blank line) or JSONL (a JSON
 * string, or an object with "text" and an optional "id"). Records are numbered in input order;
 * line numbers are the file's own, for error messages.
 */
import fs from "node:fs";
import readline from "node:readline";
import { UserError } from "../errors.js";

export interface InputRecord {
  /** 0-based position among the input's records (blank lines are not records). */
  index: number;
  /** 1-based line number in the input. */
  line: number;
  text?: string;
  id?: string | number;
  /** Why the line is not a usable record (JSONL only). */
  error?: string;
  /** Input bytes read up to and including this record's line (for an ETA). */
  bytesRead: number;
}

function parseJsonl(raw: string): Pick<InputRecord, "text" | "id" | "error"> {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return { error: "is not JSON (for plain text lines, leave out --jsonl-input)" };
  }
  if (typeof v === "string") return { text: v };
  if (v && typeof v === "object" && typeof (v as { text?: unknown }).text === "string") {
    const id = (v as { id?: unknown }).id;
    if (id !== undefined && typeof id !== "string" && typeof id !== "number") return { error: 'has an "id" that is neither a string nor a number' };
    return { text: (v as { text: string }).text, id: id as string | number | undefined };
  }
  return { error: 'is neither a JSON string nor an object with a "text" field' };
}

/** Records of `file` ("-" for stdin). */
export async function* readRecords(file: string, jsonl: boolean): AsyncGenerator<InputRecord> {
  if (file !== "-" && !fs.existsSync(file)) throw new UserError(`Input file not found: ${file}`);
  const stream = file === "-" ? process.stdin : fs.createReadStream(file);
  const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  let index = 0;
  let bytesRead = 0;
  for await (const raw of lines) {
    line++;
    bytesRead += Buffer.byteLength(raw, "utf8") + 1;
    if (raw.trim() === "") continue;
    yield jsonl ? { index: index++, line, bytesRead, ...parseJsonl(raw) } : { index: index++, line, bytesRead, text: raw };
  }
}

/** The input's size in bytes, for an ETA (undefined for stdin). */
export function inputSize(file: string): number | undefined {
  return file === "-" ? undefined : fs.statSync(file).size;
}
