/** colbert-serve as a child process for tests: started, read, stopped — and always killed. */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { after } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const running = new Set<ChildProcess>();
after(() => {
  for (const c of running) c.kill("SIGKILL");
});

export interface ServeProcess {
  url: string;
  /** stderr so far. */
  stderr(): string;
  /** Sends `signal` and resolves with the exit code (SIGKILL after `timeoutMs`). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

export async function startServe(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<ServeProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli/serve.ts"), "--port", "0", ...args], { cwd: ROOT, env });
  running.add(child);
  let stderr = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (c) => (running.delete(child), resolve(c))));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`colbert-serve did not start within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
    child.stderr!.on("data", (d) => {
      stderr += d;
      const m = /on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`colbert-serve exited (${code}) before listening:\n${stderr}`));
    });
  });
  return {
    url,
    stderr: () => stderr,
    stop: async (signal = "SIGTERM", ms = 30_000) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), ms);
      child.kill(signal);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
