// `node --import` this to run as if the optional dependency better-sqlite3 were not installed.
import { register } from "node:module";

const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === "better-sqlite3") {
    const e = new Error("Cannot find package 'better-sqlite3' (hidden by the test)");
    e.code = "ERR_MODULE_NOT_FOUND";
    throw e;
  }
  return next(specifier, context);
}`;
register("data:text/javascript," + encodeURIComponent(hooks));
