/**
 * Index names and the folders that hold them: shared by the engine (which opens them) and the
 * worker client (which lists them without opening any). Node built-ins only.
 */
import fs from "node:fs";
import path from "node:path";

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Why `name` cannot name an index, or undefined when it can. */
export function invalidIndexName(name: string): string | undefined {
  if (name === "") return "Index name cannot be empty";
  if (!NAME.test(name) || name.includes("..")) return `Invalid index name '${name}': use letters, digits, '_', '-' and '.' (at most 128 characters)`;
  return undefined;
}

/** Names of the index folders under `root` (declared or built: each has a config.json), sorted. */
export function indexNames(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && invalidIndexName(e.name) === undefined && fs.existsSync(path.join(root, e.name, "config.json")))
    .map((e) => e.name)
    .sort();
}
