/**
 * The text preprocessing sentence-transformers applies before tokenizing (PyLate inherits it):
 * `str(text).strip()`, then `.lower()` when the model's `do_lower_case` is set.
 */

/**
 * Python's `str.isspace()` characters (bidirectional class WS, B or S, or category Zs). JavaScript's
 * `trim()` differs: it strips U+FEFF, which Python keeps, and keeps U+0085 and U+001C–U+001F,
 * which Python strips.
 */
const PY_SPACE = "\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const LEADING = new RegExp(`^[${PY_SPACE}]+`);
const TRAILING = new RegExp(`[${PY_SPACE}]+$`);

/** Python's `str.strip()` with no argument. */
export function pythonStrip(text: string): string {
  return text.replace(LEADING, "").replace(TRAILING, "");
}

/**
 * What the tokenizer is given for a text. Lower-casing uses JavaScript's full Unicode mapping
 * (final sigma included, as Python's); characters newer than the Python build's Unicode tables
 * may lower-case where that Python leaves them.
 */
export function preprocessText(text: string, doLowerCase: boolean): string {
  const stripped = pythonStrip(text);
  return doLowerCase ? stripped.toLowerCase() : stripped;
}
