/** Hugging Face Hub settings from the environment, as huggingface_hub reads them. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export function hubEndpoint(): string {
  return (process.env["HF_ENDPOINT"] || "https://huggingface.co").replace(/\/+$/, "");
}

function hfHome(): string {
  return process.env["HF_HOME"] || path.join(process.env["XDG_CACHE_HOME"] || path.join(os.homedir(), ".cache"), "huggingface");
}

/** HF_TOKEN, else the file `huggingface-cli login` writes. Never printed. */
export function resolveToken(): string | undefined {
  const env = process.env["HF_TOKEN"] || process.env["HUGGING_FACE_HUB_TOKEN"];
  if (env) return env.trim();
  const file = process.env["HF_TOKEN_PATH"] || path.join(hfHome(), "token");
  try {
    const t = fs.readFileSync(file, "utf8").trim();
    return t || undefined;
  } catch {
    return undefined;
  }
}

export function hubCacheDir(): string {
  return process.env["HF_HUB_CACHE"] || process.env["HUGGINGFACE_HUB_CACHE"] || path.join(hfHome(), "hub");
}

export function isOffline(): boolean {
  const v = (process.env["HF_HUB_OFFLINE"] ?? "").toLowerCase();
  return v === "1" || v === "true" || v === "yes" || v === "on";
}

export function authHeaders(token = resolveToken()): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}
