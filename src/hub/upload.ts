/**
 * Publishes an export folder: creates the repo if missing (private if asked), then uploads every
 * file (large ones through LFS) plus a generated README.md in one commit.
 */
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { commitIter, createRepo, type CommitOperation } from "@huggingface/hub";
import { authHeaders, hubEndpoint, isOffline, resolveToken } from "./env.js";
import { modelCardInfoFromDir, renderModelCard } from "./modelcard.js";
import { silentLogger, type Logger } from "../util/log.js";
import { UserError } from "../errors.js";

export interface PushOptions {
  private?: boolean;
  sourceModel?: string;
  commitMessage?: string;
  logger?: Logger;
}

function describe(e: unknown): string {
  const status = (e as { statusCode?: number }).statusCode;
  const message = (e as Error).message ?? String(e);
  return status ? `HTTP ${status}: ${message}` : message;
}

/** The repo name and token, checked before any work: an export is not done only to fail its push. */
function pushCredentials(repo: string): string {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo) || repo.includes("..")) throw new UserError(`Invalid Hub repo "${repo}": use org/name or user/name`);
  if (isOffline()) throw new UserError(`HF_HUB_OFFLINE is set: unset it to push to the Hub`);
  const token = resolveToken();
  if (!token) throw new UserError(`Pushing to the Hub needs a token: set HF_TOKEN or run \`huggingface-cli login\``);
  return token;
}

/** Checks --push-to-hub up front: the name, a token, and that the Hub accepts the token. */
export async function checkPushTarget(repo: string): Promise<void> {
  const token = pushCredentials(repo);
  let res: Response;
  try {
    res = await fetch(`${hubEndpoint()}/api/whoami-v2`, { headers: authHeaders(token), signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    const why = (e as Error).name === "TimeoutError" ? "no answer within 10 s" : ((e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message);
    throw new UserError(`Cannot reach the Hub at ${hubEndpoint()} to check the token for --push-to-hub (${why}); check your network`);
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.status === 401) throw new UserError(`The Hub rejects the token (HTTP 401): set a valid HF_TOKEN (with write access) or run \`huggingface-cli login\``);
  if (!res.ok) throw new UserError(`The Hub answered HTTP ${res.status} when checking the token for --push-to-hub; try again later`);
}

export async function pushFolder(dir: string, repo: string, opts: PushOptions = {}): Promise<{ url: string; commit?: string }> {
  const log = opts.logger ?? silentLogger;
  const token = pushCredentials(repo);
  const hubUrl = hubEndpoint();
  const card = renderModelCard(modelCardInfoFromDir(dir, repo, opts.sourceModel));

  try {
    await createRepo({ repo: { type: "model", name: repo }, accessToken: token, hubUrl, private: opts.private ?? false });
    log.info(`Created ${opts.private ? "private " : ""}repo ${repo}`);
  } catch (e) {
    const status = (e as { statusCode?: number }).statusCode;
    if (status === 401 || status === 403) throw new UserError(`The Hub refused to create ${repo} (HTTP ${status}): check that HF_TOKEN has write access to that namespace`);
    if (status !== 409) throw new UserError(`Cannot create ${repo} on the Hub (${describe(e).split("\n")[0]}); check the name and your network`);
  }

  const files = fs.readdirSync(dir).filter((f) => !f.startsWith(".") && f !== "README.md" && fs.statSync(path.join(dir, f)).isFile()).sort();
  const operations: CommitOperation[] = [
    ...files.map((f): CommitOperation => ({ operation: "addOrUpdate", path: f, content: pathToFileURL(path.join(dir, f)) })),
    { operation: "addOrUpdate", path: "README.md", content: new Blob([card]) },
  ];
  const total = files.reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
  log.info(`Uploading ${operations.length} files (${(total / 2 ** 20).toFixed(1)} MB) to ${repo}…`);
  try {
    const it = commitIter({
      repo: { type: "model", name: repo },
      operations,
      title: opts.commitMessage ?? "Upload ONNX export (pylate-onnx-export)",
      accessToken: token,
      hubUrl,
      useXet: false,
    });
    let result;
    for (;;) {
      const step = await it.next();
      if (step.done) {
        result = step.value;
        break;
      }
      if (step.value.event === "phase") log.info(`  ${step.value.phase}…`);
    }
    const url = `${hubUrl}/${repo}`;
    log.info(`Pushed to ${url}`);
    return { url, commit: result?.commit.oid };
  } catch (e) {
    const status = (e as { statusCode?: number }).statusCode;
    if (status === 401 || status === 403) throw new UserError(`The Hub refused the upload to ${repo} (HTTP ${status}): check that HF_TOKEN has write access`);
    throw new UserError(`Upload to ${repo} failed (${describe(e).split("\n")[0]}); run the command again`);
  }
}
