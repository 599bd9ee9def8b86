/**
 * What every command does before loading its code: check that this Node.js and the native
 * modules it needs work here, so a broken install is one line saying what to do rather than a
 * module-resolution stack trace. The command module is imported only afterwards (dynamically:
 * static imports would be resolved, and fail, before any check could run).
 */
import { createRequire } from "node:module";
import { runCli } from "./run.js";
import { UserError } from "../errors.js";

const MIN_NODE = [20, 19] as const;

function checkNode(): void {
  const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
  if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
    throw new UserError(`Node.js ${process.versions.node} is too old: this tool needs Node.js ${MIN_NODE.join(".")} or newer`);
  }
}

/** onnxruntime-node loads (its package is present and its native library runs here). */
async function checkOnnxRuntime(): Promise<void> {
  const require = createRequire(import.meta.url);
  try {
    require.resolve("onnxruntime-node");
  } catch {
    throw new UserError(
      "onnxruntime-node is not installed: its install script (which downloads CUDA libraries on Linux x64) failed, so npm skipped it. " +
        "Reinstall without that step: ONNXRUNTIME_NODE_INSTALL=skip npm install pylate-onnx-export (add -g for a global install; the CPU runtime ships inside the package)",
    );
  }
  try {
    await import("onnxruntime-node");
  } catch (e) {
    throw new UserError(`onnxruntime-node cannot load on this system (${(e as Error).message.split("\n")[0]}); check that your platform is supported (Linux, macOS, Windows on x64/arm64)`);
  }
}

export function launch(load: () => Promise<{ main: () => Promise<void> }>): void {
  // `… | head` closes stdout early: stop quietly, as Unix tools do.
  process.stdout.on("error", (e: Error & { code?: string }) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  runCli(async () => {
    checkNode();
    await checkOnnxRuntime();
    const { main } = await load();
    await main();
  });
}
