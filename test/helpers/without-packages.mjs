// `node --import` this to run as if the optional dependencies named in HIDE_PACKAGES (comma-separated,
// e.g. "better-sqlite3" or "onnxruntime-node") were not installed: importing one fails as a missing package does.
import { register } from "node:module";

const hidden = (process.env.HIDE_PACKAGES ?? "").split(",").filter(Boolean);
const hooks = `
const hidden = new Set(${JSON.stringify(hidden)});
export async function resolve(specifier, context, next) {
  if (hidden.has(specifier)) {
    const e = new Error("Cannot find package '" + specifier + "' (hidden by the test)");
    e.code = "ERR_MODULE_NOT_FOUND";
    throw e;
  }
  return next(specifier, context);
}`;
register("data:text/javascript," + encodeURIComponent(hooks));
