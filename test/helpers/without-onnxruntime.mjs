// `node --import` this to run as if the optional dependency onnxruntime-node were not installed.
import { register } from "node:module";

const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === "onnxruntime-node") {
    const e = new Error("Cannot find package 'onnxruntime-node' (hidden by the test)");
    e.code = "ERR_MODULE_NOT_FOUND";
    throw e;
  }
  return next(specifier, context);
}`;
register("data:text/javascript," + encodeURIComponent(hooks));
