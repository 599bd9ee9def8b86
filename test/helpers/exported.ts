/** Fixture exports shared by the tests of one process (exported once, on first use). */
import fs from "node:fs";
import path from "node:path";
import { exportModel } from "../../src/export/exporter.js";
import { silentLogger } from "../../src/util/log.js";
import { fixtureModelDir, tempDir } from "./fixtures.js";

const cache = new Map<string, Promise<string>>();

export function exportedFixture(name: string): Promise<string> {
  if (!cache.has(name)) {
    cache.set(name, exportModel({ model: fixtureModelDir(name), outputDir: tempDir(), logger: silentLogger }).then((r) => r.dir));
  }
  return cache.get(name)!;
}

/** A private copy of a fixture's export (for tests that change or add files), in a fresh temp folder. */
export async function exportedFixtureCopy(name: string, folderName = "export"): Promise<string> {
  const dir = path.join(tempDir(), folderName);
  fs.cpSync(await exportedFixture(name), dir, { recursive: true });
  return dir;
}
