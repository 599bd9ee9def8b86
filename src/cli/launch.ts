/**
 * What every command does before loading its code: check that this Node.js and the native
 * modules it needs work here, so a broken install is one line saying what to do rather than a
 * module-resolution stack trace. The command module is imported only afterwards (dynamically:
 * static imports would be resolved, and fail, before any check could run).
 */
import { register } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "./run.js";
import { UserError } from "../errors.js";

const MIN_NODE = [20, 19] as const;

function checkNode(): void {
  const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
  if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
    throw new UserError(`Node.js ${process.versions.node} is too old: this tool needs Node.js ${MIN_NODE.join(".")} or newer`);
  }
}

/** This package's folder (where `npm install --prefix` adds a missing dependency it can resolve). */
function packageRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
}

/** onnxruntime-node loads (its package is present and its native library runs here); else the one-line fix. */
async function onnxRuntimeProblem(): Promise<UserError | undefined> {
  try {
    import.meta.resolve("onnxruntime-node");
  } catch {
    return new UserError(
      "onnxruntime-node is not installed: its install script (which downloads CUDA libraries on Linux x64) failed, so npm skipped it. " +
        `Add it without that step: ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "${packageRoot()}" onnxruntime-node@1.30 (the CPU runtime ships inside the package)`,
    );
  }
  try {
    await import("onnxruntime-node");
    return undefined;
  } catch (e) {
    return new UserError(`onnxruntime-node cannot load on this system (${(e as Error).message.split("\n")[0]}); check that your platform is supported (Linux, macOS, Windows on x64/arm64)`);
  }
}

/** `--help` / `--version` (before any `--`): they print and exit without running anything. */
function asksForInfo(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === "--help" || a === "-h" || a === "--version" || a === "-V");
}

/**
 * Lets a command module load without onnxruntime-node, for --help and --version only: the module
 * resolves to a placeholder whose every use throws (nothing runs before those options exit).
 */
function placeholderOnnxRuntime(): void {
  const source = `const fail = () => { throw new Error("onnxruntime-node is not installed"); };
const thing = new Proxy(function () {}, { get: (_t, p) => (p === "then" ? undefined : thing), set: () => true, apply: fail, construct: fail });
export const env = {}; export const InferenceSession = thing; export const Tensor = thing; export default thing;`;
  const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === "onnxruntime-node") return { url: ${JSON.stringify("data:text/javascript," + encodeURIComponent(source))}, shortCircuit: true };
  return next(specifier, context);
}`;
  register("data:text/javascript," + encodeURIComponent(hooks));
}

export function launch(load: () => Promise<{ main: () => Promise<void> }>): void {
  // `… | head` closes stdout early: stop quietly, as Unix tools do.
  process.stdout.on("error", (e: Error & { code?: string }) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  runCli(async () => {
    checkNode();
    const problem = await onnxRuntimeProblem();
    if (problem && !asksForInfo(process.argv.slice(2))) throw problem;
    if (problem) placeholderOnnxRuntime();
    const { main } = await load();
    await main();
  });
}
