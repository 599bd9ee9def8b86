import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker, type ResourceLimits } from "node:worker_threads";

/**
 * Starts the worker module `name` (without extension) that sits beside `base` (an import.meta.url):
 * the compiled JavaScript, or the TypeScript source when running from sources (tests, tsx). The
 * host process's Node options are not passed on: flags such as `--input-type` (node -e) make a
 * worker fail to start, and none is needed — but profiling ones (`--cpu-prof*`, `--heap-prof*`),
 * so that profiling a server profiles its threads too.
 */
export function startWorker(base: string, name: string, resourceLimits?: ResourceLimits): Worker {
  const execArgv: string[] = [];
  process.execArgv.forEach((a, i, all) => {
    if (/^--(cpu|heap)-prof/.test(a)) execArgv.push(a);
    else if (/^--(cpu|heap)-prof-[a-z]+$/.test(all[i - 1] ?? "")) execArgv.push(a); // the value of `--cpu-prof-dir DIR`
  });
  const js = new URL(`./${name}.js`, base);
  if (fs.existsSync(fileURLToPath(js))) return new Worker(js, { execArgv, resourceLimits });
  const ts = new URL(`./${name}.ts`, base).href;
  const tsx = import.meta.resolve("tsx/esm/api");
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(ts)}); });`, { eval: true, execArgv, resourceLimits });
}
