/**
 * Downloads the files an export needs from the Hub into the huggingface_hub cache layout
 * (models--org--name/{blobs,refs,snapshots/<commit>}), so Python and this tool share downloads.
 * Blobs are named by their etag (sha256 for LFS files), written under a temp name, checked
 * (size, and sha256 for LFS) and only then renamed into place.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { authHeaders, hubCacheDir, hubEndpoint, isOffline } from "./env.js";
import { stderrLogger, type Logger } from "../util/log.js";
import { UserError } from "../errors.js";

/** Files an export reads, at the top of the repo or of the Transformer module folder. */
const CONFIG_FILES = [
  "config.json",
  "config_sentence_transformers.json",
  "sentence_bert_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "artifact.metadata",
];
const WEIGHT_FILES = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

export interface DownloadOptions {
  revision?: string;
  quiet?: boolean;
  logger?: Logger;
}

export function isHubId(model: string): boolean {
  return !fs.existsSync(model) && /^[\w.-]+(\/[\w.-]+)?$/.test(model) && !model.includes("..");
}

function repoFolder(id: string): string {
  return path.join(hubCacheDir(), `models--${id.replace(/\//g, "--")}`);
}

/** A Hub file name must stay inside the snapshot folder. */
export function safeRelativePath(name: string): string {
  if (!name || name.includes("..") || path.isAbsolute(name) || name.startsWith("/") || name.includes("\\") || name.includes("\0")) {
    throw new UserError(`Refusing file name "${name}" from the Hub: it points outside the model folder`);
  }
  return name;
}

function hubError(status: number, id: string, revision: string, what: string, headers?: Headers): UserError {
  const code = headers?.get("x-error-code");
  // huggingface.co answers an anonymous request for a missing repo with 401 RepoNotFound.
  if (code === "RepoNotFound" || (status === 404 && !code)) {
    return new UserError(`Model not found: ${id}: check the id (set HF_TOKEN if it is private)`);
  }
  if (code === "GatedRepo") return new UserError(`${id} is gated (HTTP ${status}): accept its conditions on the Hub, then set HF_TOKEN or run \`huggingface-cli login\``);
  if (status === 401 || status === 403) {
    return new UserError(`Access to ${id} was refused (HTTP ${status}): it is private or gated; set HF_TOKEN or run \`huggingface-cli login\` with an account that has access`);
  }
  if (status === 404 && code === "RevisionNotFound") return new UserError(`Revision "${revision}" not found in ${id}; check --revision`);
  if (status === 404 && code === "EntryNotFound") return new UserError(`${what} not found in ${id}@${revision}`);
  return new UserError(`The Hub answered HTTP ${status} for ${what} of ${id}; try again later`);
}

/** The Hub could not be reached or did not answer in time (as opposed to answering an error). */
export class HubUnreachable extends UserError {}

/** Seconds the Hub may stay silent (connecting, before the headers, between body chunks): HF_HUB_DOWNLOAD_TIMEOUT, default 10 as in huggingface_hub. */
function hubTimeoutMs(): number {
  const v = Number(process.env["HF_HUB_DOWNLOAD_TIMEOUT"]);
  return (Number.isFinite(v) && v > 0 ? v : 10) * 1000;
}

/**
 * fetch with an idle timeout: aborts when the Hub sends nothing (no connection, no headers, no
 * body bytes) for hubTimeoutMs. `response.idle()` must be called after each body chunk.
 */
async function hubFetch(url: string, init: RequestInit, id: string): Promise<Response & { idle(): void; done(): void }> {
  const controller = new AbortController();
  const ms = hubTimeoutMs();
  let timer = setTimeout(() => controller.abort(), ms);
  const idle = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), ms);
  };
  const done = () => clearTimeout(timer);
  try {
    const res = await fetch(url, { ...init, signal: controller.signal });
    idle();
    if (!res.body || init.method === "HEAD") done();
    return Object.assign(res, { idle, done });
  } catch (e) {
    done();
    if (controller.signal.aborted) {
      throw new HubUnreachable(`The Hub at ${hubEndpoint()} did not answer within ${ms / 1000} s for ${id}; check your network (HF_HUB_DOWNLOAD_TIMEOUT raises the limit), or set HF_HUB_OFFLINE=1 to use the local cache`);
    }
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new HubUnreachable(`Cannot reach the Hub at ${hubEndpoint()} to download ${id} (${cause}); check your network, or set HF_HUB_OFFLINE=1 to use the local cache`);
  }
}

/** A body read that counts as activity for the idle timeout and names a stall clearly. */
async function* readBody(res: Awaited<ReturnType<typeof hubFetch>>, id: string): AsyncIterable<Uint8Array> {
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      res.idle();
      yield chunk;
    }
  } catch (e) {
    throw new HubUnreachable(`The download from ${hubEndpoint()} stalled or broke off for ${id} (${(e as Error).message}); run the command again (it resumes)`);
  } finally {
    res.done();
  }
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}

interface RepoInfo {
  sha: string;
  files: Set<string>;
}

async function repoInfo(id: string, revision: string): Promise<RepoInfo> {
  const res = await hubFetch(`${hubEndpoint()}/api/models/${id}/revision/${encodeURIComponent(revision)}`, { headers: authHeaders() }, id);
  if (!res.ok) {
    res.done();
    throw hubError(res.status, id, revision, "repository info", res.headers);
  }
  let info: { sha?: string; siblings?: { rfilename: string }[] };
  try {
    info = JSON.parse(Buffer.concat(await collect(readBody(res, id))).toString("utf8")) as typeof info;
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`Unexpected answer from the Hub for ${id}; check HF_ENDPOINT`);
  }
  if (!info.sha || !Array.isArray(info.siblings)) throw new UserError(`Unexpected answer from the Hub for ${id}; check HF_ENDPOINT`);
  return { sha: info.sha, files: new Set(info.siblings.map((s) => safeRelativePath(s.rfilename))) };
}

/** Points `snapshotFile` at `blob` with a relative symlink (as huggingface_hub does), replacing any old one. */
function linkSnapshotFile(snapshotFile: string, blob: string): void {
  fs.mkdirSync(path.dirname(snapshotFile), { recursive: true });
  const rel = path.relative(path.dirname(snapshotFile), blob);
  const tmp = `${snapshotFile}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  try {
    fs.symlinkSync(rel, tmp);
  } catch {
    // No symlinks here (e.g. Windows without developer mode): huggingface_hub copies instead.
    fs.copyFileSync(blob, tmp);
  }
  fs.renameSync(tmp, snapshotFile);
}

function normalizeEtag(etag: string | null): string | undefined {
  return etag ? etag.replace(/^W\//, "").replace(/"/g, "") : undefined;
}

async function downloadFile(id: string, commit: string, name: string, log: Logger): Promise<void> {
  const folder = repoFolder(id);
  const snapshotFile = path.join(folder, "snapshots", commit, name);
  if (fs.existsSync(snapshotFile)) return;
  const url = `${hubEndpoint()}/${id}/resolve/${commit}/${name.split("/").map(encodeURIComponent).join("/")}`;
  // HEAD without following redirects gives the ids huggingface_hub names blobs by.
  const head = await hubFetch(url, { method: "HEAD", headers: { ...authHeaders(), "accept-encoding": "identity" }, redirect: "manual" }, id);
  if (head.status >= 400) throw hubError(head.status, id, commit, name, head.headers);
  const etag = normalizeEtag(head.headers.get("x-linked-etag") ?? head.headers.get("etag"));
  if (!etag || !/^[\w-]+$/.test(etag)) throw new UserError(`The Hub sent no usable etag for ${name} of ${id}; try again later`);
  const sizeHeader = head.headers.get("x-linked-size") ?? head.headers.get("content-length");
  const expectedSize = sizeHeader ? Number(sizeHeader) : undefined;
  const blob = path.join(folder, "blobs", etag);
  if (!fs.existsSync(blob)) {
    fs.mkdirSync(path.dirname(blob), { recursive: true });
    const partial = `${blob}.incomplete`;
    // Resume an interrupted download when the server honours the range.
    const have = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
    const headers: Record<string, string> = { ...authHeaders(), "accept-encoding": "identity" };
    if (have > 0) headers["range"] = `bytes=${have}-`;
    const res = await hubFetch(url, { headers }, id);
    if (!res.ok || !res.body) {
      res.done();
      throw hubError(res.status, id, commit, name, res.headers);
    }
    const append = have > 0 && res.status === 206;
    const out = fs.openSync(partial, append ? "a" : "w");
    const total = expectedSize ?? Number(res.headers.get("content-length") ?? 0);
    const bar = log.bar(name, Math.max(1, Math.round(total / 2 ** 20)), " MB");
    let done = append ? have : 0;
    try {
      for await (const chunk of readBody(res, id)) {
        fs.writeSync(out, chunk);
        done += chunk.length;
        bar.update(Math.round(done / 2 ** 20));
      }
    } finally {
      fs.closeSync(out);
      bar.stop();
    }
    const size = fs.statSync(partial).size;
    const bad = (why: string) => {
      fs.rmSync(partial, { force: true });
      return new UserError(`Download of ${name} from ${id} is corrupt (${why}); run the command again`);
    };
    if (expectedSize !== undefined && size !== expectedSize) throw bad(`${size} bytes instead of ${expectedSize}`);
    if (/^[0-9a-f]{64}$/.test(etag)) {
      const hash = crypto.createHash("sha256");
      const fd = fs.openSync(partial, "r");
      const buf = Buffer.alloc(1 << 22);
      try {
        for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
      } finally {
        fs.closeSync(fd);
      }
      if (hash.digest("hex") !== etag) throw bad("sha256 mismatch");
    }
    fs.renameSync(partial, blob);
  }
  linkSnapshotFile(snapshotFile, blob);
}

/** The snapshot already in the cache for `revision` (offline use), if any: one holding one of `markers`. */
function cachedSnapshot(id: string, revision: string, markers = ["config.json", "modules.json"]): string | undefined {
  const folder = repoFolder(id);
  let commit = revision;
  if (!/^[0-9a-f]{40}$/.test(revision)) {
    const ref = path.join(folder, "refs", revision);
    if (!fs.existsSync(ref)) return undefined;
    commit = fs.readFileSync(ref, "utf8").trim();
  }
  const dir = path.join(folder, "snapshots", commit);
  return markers.some((m) => fs.existsSync(path.join(dir, m))) ? dir : undefined;
}

/** Files of `info` needed for an export (weights: safetensors preferred). */
async function neededFiles(id: string, info: RepoInfo, log: Logger): Promise<string[]> {
  const folder = path.join(repoFolder(id), "snapshots", info.sha);
  const want: string[] = [];
  const add = (f: string) => {
    if (info.files.has(f) && !want.includes(f)) want.push(f);
  };
  add("modules.json");
  await Promise.all(want.map((f) => downloadFile(id, info.sha, f, log)));
  const modules = want.includes("modules.json")
    ? (JSON.parse(fs.readFileSync(path.join(folder, "modules.json"), "utf8")) as { path: string; type: string }[])
    : [];
  const transformer = modules.find((m) => m.type.endsWith("models.Transformer"))?.path ?? "";
  const dirs = [""];
  if (transformer) dirs.push(transformer);
  for (const d of dirs) for (const f of CONFIG_FILES) add(d ? `${d}/${f}` : f);
  const weightsIn = (d: string) => {
    const p = (f: string) => (d ? `${safeRelativePath(d)}/${f}` : f);
    const found = WEIGHT_FILES.find((f) => info.files.has(p(f)));
    if (found) add(p(found));
    return found ? p(found) : undefined;
  };
  const weights = [weightsIn(transformer)];
  for (const m of modules.filter((m) => m.type.endsWith("Dense"))) {
    add(`${safeRelativePath(m.path)}/config.json`);
    weights.push(weightsIn(m.path));
  }
  // Sharded weights: the index names the shards.
  for (const w of weights) {
    if (!w?.endsWith(".index.json")) continue;
    await downloadFile(id, info.sha, w, log);
    const index = JSON.parse(fs.readFileSync(path.join(folder, w), "utf8")) as { weight_map?: Record<string, string> };
    const base = path.posix.dirname(w);
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) add(base === "." ? safeRelativePath(shard) : `${base}/${safeRelativePath(shard)}`);
  }
  return want;
}

/** Downloads (or finds in the cache) what an export of `id` needs; returns the snapshot folder. */
export function downloadModel(id: string, opts: DownloadOptions = {}): Promise<{ dir: string; commit: string }> {
  return downloadSnapshot(id, opts, (info, log) => neededFiles(id, info, log));
}

/** Downloads every file of a repo (e.g. a published export folder). */
export function downloadRepo(id: string, opts: DownloadOptions = {}): Promise<{ dir: string; commit: string }> {
  return downloadSnapshot(id, opts, async (info) => [...info.files]);
}

/** Files a runtime reads from a published export (what NextPlaid's entrypoint fetches, and the configs beside them). */
const EXPORT_FILES = ["onnx_config.json", "tokenizer.json", "config_sentence_transformers.json", "tokenizer_config.json", "config.json", "special_tokens_map.json"];

export type Precision = "fp32" | "int8" | "auto";

class NotAnExport extends Error {}

/**
 * A published ONNX export (a repo with onnx_config.json): downloads its configs, tokenizer and the
 * model file for `precision` (auto: model_int8.onnx when the repo has it), with external data.
 * Undefined when the repo is not an export (e.g. a PyLate checkpoint).
 */
export async function downloadOnnxExport(id: string, opts: DownloadOptions & { precision: Precision }): Promise<{ dir: string; commit: string } | undefined> {
  const pick = (has: (f: string) => boolean): string[] => {
    const int8 = opts.precision === "int8" || (opts.precision === "auto" && has("model_int8.onnx"));
    const model = int8 ? "model_int8.onnx" : "model.onnx";
    if (!has(model)) throw new UserError(`${id} has no ${model}; ${int8 ? "serve it in FP32 (--fp32)" : "it is not a complete export"}`);
    return [...EXPORT_FILES.filter(has), model, ...(has(`${model}.data`) ? [`${model}.data`] : [])];
  };
  try {
    return await downloadSnapshot(
      id,
      opts,
      async (info) => {
        if (!info.files.has("onnx_config.json")) throw new NotAnExport();
        return pick((f) => info.files.has(f));
      },
      ["onnx_config.json"],
      (dir) => pick((f) => fs.existsSync(path.join(dir, f))).every((f) => fs.existsSync(path.join(dir, f))),
    );
  } catch (e) {
    if (e instanceof NotAnExport) return undefined;
    throw e;
  }
}

async function downloadSnapshot(
  id: string,
  opts: DownloadOptions,
  select: (info: RepoInfo, log: Logger) => Promise<string[]>,
  cacheMarkers?: string[],
  cacheComplete: (dir: string) => boolean = () => true,
): Promise<{ dir: string; commit: string }> {
  const revision = opts.revision ?? "main";
  const log = opts.logger ?? stderrLogger(opts.quiet);
  const cached = () => {
    const dir = cachedSnapshot(id, revision, cacheMarkers);
    return dir && cacheComplete(dir) ? dir : undefined;
  };
  if (isOffline()) {
    const dir = cached();
    if (!dir) throw new UserError(`HF_HUB_OFFLINE is set and ${id}@${revision} is not in the cache (${hubCacheDir()}); unset HF_HUB_OFFLINE to download it`);
    return { dir, commit: path.basename(dir) };
  }
  let info: RepoInfo;
  try {
    info = await repoInfo(id, revision);
  } catch (e) {
    // Network down but the model already downloaded: use the cache, as huggingface_hub does.
    const dir = e instanceof HubUnreachable ? cached() : undefined;
    if (!dir) throw e;
    log.warn(`Warning: ${(e as Error).message.split(";")[0]}; using the copy of ${id}@${revision} in the cache`);
    return { dir, commit: path.basename(dir) };
  }
  for (const f of await select(info, log)) await downloadFile(id, info.sha, f, log);
  if (revision !== info.sha) {
    const ref = path.join(repoFolder(id), "refs", revision);
    fs.mkdirSync(path.dirname(ref), { recursive: true });
    fs.writeFileSync(ref, info.sha);
  }
  return { dir: path.join(repoFolder(id), "snapshots", info.sha), commit: info.sha };
}
