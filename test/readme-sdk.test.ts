/**
 * README.md's Python snippet must run against NextPlaid's official SDK as written: every name it
 * imports, every client method it calls (with its keyword arguments), every model it builds and
 * every result field it reads exist in next_plaid_client 1.6.1 — checked against the SDK's public
 * surface, read from its source by test/fixtures-sdk/generate.py.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";

interface Sdk {
  version: string;
  exports: string[];
  classes: Record<string, { methods: Record<string, string[]>; fields: string[] }>;
}
const sdk = JSON.parse(fs.readFileSync(new URL("./fixtures-sdk/next_plaid_client.json", import.meta.url), "utf8")) as Sdk;
const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8");
const snippets = [...readme.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** The keyword arguments of the call whose "(" is at `open` (top level only). */
function keywords(code: string, open: number): string[] {
  let depth = 0;
  let i = open;
  const start = open + 1;
  for (; i < code.length; i++) {
    if ("([{".includes(code[i]!)) depth++;
    else if (")]}".includes(code[i]!) && --depth === 0) break;
  }
  const inner = code.slice(start, i);
  const out: string[] = [];
  let d = 0;
  let token = "";
  for (const ch of inner + ",") {
    if ("([{".includes(ch)) d++;
    if (")]}".includes(ch)) d--;
    if (ch === "," && d === 0) {
      const m = /^\s*([A-Za-z_]\w*)\s*=(?!=)/.exec(token);
      if (m) out.push(m[1]!);
      token = "";
    } else token += ch;
  }
  return out;
}

test("README shows Python SDK code, and it uses only what next_plaid_client 1.6.1 has", () => {
  assert.equal(sdk.version, "1.6.1");
  assert.ok(snippets.length > 0, "README has a ```python snippet");
  const client = sdk.classes["NextPlaidClient"]!.methods;
  const fields = new Set(Object.values(sdk.classes).flatMap((c) => c.fields));
  for (const code of snippets) {
    for (const m of code.matchAll(/from next_plaid_client import ([\w, ]+)/g)) {
      for (const name of m[1]!.split(",").map((x) => x.trim())) assert.ok(sdk.exports.includes(name), `next_plaid_client exports no ${name}`);
    }
    const calls = [...code.matchAll(/\bclient\.(\w+)\(/g)];
    assert.ok(calls.length >= 4, "the snippet creates, adds, waits and searches");
    for (const m of calls) {
      const method = m[1]!;
      assert.ok(client[method], `NextPlaidClient has no method ${method}() (it has ${Object.keys(client).join(", ")})`);
      for (const kw of keywords(code, m.index! + m[0].length - 1)) assert.ok(client[method]!.includes(kw), `${method}() has no parameter ${kw} (it takes ${client[method]!.join(", ")})`);
    }
    for (const m of code.matchAll(/\b(IndexConfig|SearchParams)\(/g)) {
      for (const kw of keywords(code, m.index! + m[0].length - 1)) assert.ok(sdk.classes[m[1]!]!.fields.includes(kw), `${m[1]} has no field ${kw}`);
    }
    // Attributes read from results (…).name: each is a field of some SDK model.
    for (const m of code.matchAll(/(?:\)|\]|\b[A-Za-z_]\w*)\.([A-Za-z_]\w*)\b(?!\()/g)) {
      const name = m[1]!;
      if (["sleep"].includes(name)) continue;
      assert.ok(fields.has(name), `no SDK model has a field ${name}`);
    }
  }
});

test("the SDK surface check catches a method the SDK lacks", () => {
  const client = sdk.classes["NextPlaidClient"]!.methods;
  assert.equal(client["search_with_encoding"], undefined);
  assert.deepEqual(keywords("client.search('docs', ['q'], params=SearchParams(top_k=5), filter_condition='a = ?')", 13), ["params", "filter_condition"]);
  assert.ok(client["search"]!.includes("filter_parameters") && client["add"]!.includes("metadata"));
});
