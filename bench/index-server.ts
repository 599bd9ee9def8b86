/**
 * `colbert-serve --index-dir DIR` in its own process for the index benches (scale.ts, search.ts):
 * started from this checkout's sources (plus `args`, e.g. --model), its stderr teed to `log` when given, with a JSON caller,
 * its peak RSS, and a stop that waits for it to exit.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface IndexServer {
  url: string;
  /** A request with an optional JSON body: its status and parsed JSON answer (undefined when none). */
  call(method: string, route: string, body?: unknown): Promise<{ status: number; json: any }>;
  /** The server's peak RSS so far (VmHWM), in MB. */
  peakRssMb(): number;
  stop(): Promise<void>;
}

export async function startIndexServer(dir: string, opts: { nodeArgs?: string[]; args?: string[]; env?: NodeJS.ProcessEnv; log?: string } = {}): Promise<IndexServer> {
  const args = [...(opts.nodeArgs ?? []), "--import", "tsx", path.join(ROOT, "src/cli/serve.ts"), "--port", "0", "--index-dir", dir, ...(opts.args ?? [])];
  const server = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...opts.env },
  });
  const log = opts.log ? fs.createWriteStream(opts.log) : undefined;
  let err = "";
  const exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    server.stderr!.on("data", (d) => {
      log?.write(d);
      if (err.length < 10_000) err += d;
      const m = /on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    server.once("exit", (c) => reject(new Error(`colbert-serve exited (${c}): ${err}`)));
  });
  return {
    url,
    async call(method, route, body) {
      const res = await fetch(url + route, { method, headers: body === undefined ? {} : { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, json: await res.json().catch(() => undefined) };
    },
    peakRssMb: () => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${server.pid}/status`, "utf8"))?.[1] ?? 0) / 1024,
    async stop() {
      server.kill("SIGTERM");
      await exited;
      log?.end();
    },
  };
}
